"""Why a pull failed: the kubelet's ``Failed`` events, paired and explained.

The kubelet reports a failed pull as a ``Failed`` event ``Failed to pull image "IMG": ERR``
on the pod (:mod:`mlnode.testing._kube_events` holds the recorded formats per version).
:func:`pull_failures` pairs each with the ``Pulling`` before it (so the elapsed time is
known); :func:`classify` explains one, :func:`classify_failures` a node's worth, one
finding per image, node and cause with the counts, not one per event.

Rules, first match wins (``ERR`` is the text after ``Failed to pull image "IMG": ``):

======================================================  ==================  =====
ERR contains (case-insensitive)                         cause               code
======================================================  ==================  =====
``Timed out on waiting up to`` (CRI-O's own cancel)     PROGRESS_TIMEOUT    D201
``no space left on device``                             DISK_FULL           D205
``pull QPS exceeded`` (the kubelet's registryPullQPS)   QPS                 D209
``failed to authorize``, ``pull access denied``,        AUTH                D203
``unauthorized``, ``401``/``403`` status, ``denied:``
``not found``, ``manifest unknown``, ``name unknown``   NOT_FOUND           D204
``context canceled`` / ``code = Canceled``              see below
``dial tcp``, ``i/o timeout``, ``connection refused``,  UNREACHABLE         D206
``no such host``, ``connection reset``, ``TLS
handshake timeout``, ``deadline exceeded``
anything else                                           OTHER               D206
======================================================  ==================  =====

A cancelled pull (``context canceled``) has several causes; in this order:

1. POD_GONE (D202): the pod has a ``Killing``, ``Evicted`` or ``Preempting`` event inside
   the pull window [Pulling, Failed + 60 s]: the kubelet cancelled the pod's sync, and the
   pull with it.
2. KUBELET_RESTART (D202): the node has a ``Starting`` event ("Starting kubelet.") in that
   window: the pull's gRPC call died with the old kubelet.
3. CANCELED_UNKNOWN (D211): the runtime applies no progress deadline here (containerd
   1.6 has none; 0 turns it off): something else cancelled it.
4. PROGRESS_TIMEOUT (D201): the deadline (the one given, else the runtime version's
   default from :func:`mlnode.knowledge.table.runtime_settings_for`) is > 0 and the pull
   ran at least that long (Pulling → Failed, event times are whole seconds: 2 s slack).
   Elapsed unknown: "likely" the deadline, nothing else explains it.
5. CANCELED_UNKNOWN (D211): it ran shorter than the deadline, so the deadline did not
   fire.

The window's 60 s after the failure: the kubelet records the pull's ``Failed`` first and
kills the deleted pod's containers (``Killing``) after; a restarted kubelet's ``Starting``
comes seconds after the old one's last event.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlnode.doctor._events import KubeEvent, node_event_findings
from mlnode.doctor._model import Finding
from mlnode.doctor._pull_texts import (
    Deadline,
    cause_text,
    effective_deadline,
    fix_text,
    flag_duration,
    go_duration,
)
from mlnode.versions import RuntimeSpec

__all__ = [
    "PullCause",
    "PullFailure",
    "classify",
    "classify_failures",
    "node_event_findings",
    "parse_failed_message",
    "pull_failures",
]


class PullCause(enum.StrEnum):
    PROGRESS_TIMEOUT = "progress-timeout"
    POD_GONE = "pod-gone"
    KUBELET_RESTART = "kubelet-restart"
    AUTH = "auth"
    NOT_FOUND = "not-found"
    DISK_FULL = "disk-full"
    QPS = "qps"
    UNREACHABLE = "unreachable"
    CANCELED_UNKNOWN = "canceled-unknown"
    OTHER = "other"


CODES: dict[PullCause, str] = {
    PullCause.PROGRESS_TIMEOUT: "D201",
    PullCause.POD_GONE: "D202",
    PullCause.KUBELET_RESTART: "D202",
    PullCause.AUTH: "D203",
    PullCause.NOT_FOUND: "D204",
    PullCause.DISK_FULL: "D205",
    PullCause.QPS: "D209",
    PullCause.UNREACHABLE: "D206",  # no code of its own in DOCTOR_CODES (asked: D212)
    PullCause.CANCELED_UNKNOWN: "D211",
    PullCause.OTHER: "D206",
}


@dataclass(frozen=True)
class PullFailure:
    """A ``Failed`` event for a pull, paired with the ``Pulling`` before it."""

    node: str
    namespace: str | None
    pod: str | None
    image: str
    message: str  # the event's message, verbatim
    failed_at: datetime | None
    started_at: datetime | None
    count: int

    @property
    def elapsed_seconds(self) -> float | None:
        if self.failed_at is None or self.started_at is None:
            return None
        seconds = (self.failed_at - self.started_at).total_seconds()
        return seconds if seconds >= 0 else None

    @property
    def error(self) -> str:
        """The runtime's error text inside the message."""
        parsed = parse_failed_message(self.message)
        return parsed[1] if parsed else self.message


_COMBINED = "(combined from similar events): "
# Go's %q of an image reference: image names hold no quote or backslash, but be exact.
_FAILED = re.compile(r'^Failed to pull image "((?:[^"\\]|\\.)*)": (.*)$', re.DOTALL)
_PULLING = re.compile(r'^Pulling image "((?:[^"\\]|\\.)*)"$', re.DOTALL)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _strip(message: str) -> str:
    return message[len(_COMBINED) :] if message.startswith(_COMBINED) else message


def parse_failed_message(message: str) -> tuple[str, str] | None:
    """``Failed to pull image "IMG": ERR`` → (IMG, ERR); None for any other message."""
    m = _FAILED.match(_strip(message))
    return (_unquote(m.group(1)), m.group(2)) if m else None


def _pulling_image(message: str) -> str | None:
    m = _PULLING.match(_strip(message))
    return _unquote(m.group(1)) if m else None


_Key = tuple[str, str | None, str | None, str]


def _pair(
    failed: KubeEvent, pullings: Sequence[KubeEvent]
) -> tuple[datetime | None, datetime | None]:
    """(started, failed) of one attempt. The event correlator keeps one object per message
    with first/last times, so: the last failure and the last Pulling at or before it;
    when a retry's Pulling is newer than the last failure (the retry still runs), the
    first failure and the first Pulling before it."""
    if failed.last_seen is not None:
        before_last = [
            p.last_seen for p in pullings if p.last_seen and p.last_seen <= failed.last_seen
        ]
        if before_last:
            return max(before_last), failed.last_seen
    if failed.first_seen is not None:
        before_first = [
            p.first_seen for p in pullings if p.first_seen and p.first_seen <= failed.first_seen
        ]
        if before_first:
            return max(before_first), failed.first_seen
    return None, failed.last_seen


def pull_failures(events: Sequence[KubeEvent]) -> list[PullFailure]:
    """Every failed pull in ``events``, paired with its Pulling; oldest first."""
    pullings: dict[_Key, list[KubeEvent]] = {}
    failed: list[tuple[_Key, KubeEvent]] = []
    for e in events:
        if not e.node or e.kind != "Pod":
            continue
        if e.reason == "Pulling":
            image = _pulling_image(e.message)
            if image is not None:
                pkey: _Key = (e.node, e.object_namespace, e.object_name, image)
                pullings.setdefault(pkey, []).append(e)
        elif e.reason == "Failed":
            parsed = parse_failed_message(e.message)
            if parsed is not None:
                failed.append(((e.node, e.object_namespace, e.object_name, parsed[0]), e))
    out: list[PullFailure] = []
    for key, e in failed:
        started, failed_at = _pair(e, pullings.get(key, ()))
        out.append(
            PullFailure(
                node=key[0],
                namespace=key[1],
                pod=key[2] or None,
                image=key[3],
                message=_strip(e.message),
                failed_at=failed_at,
                started_at=started,
                count=e.count,
            )
        )
    floor = datetime.min.replace(tzinfo=UTC)
    out.sort(key=lambda f: f.failed_at or floor)
    return out


_CRIO_TIMEOUT = re.compile(r"Timed out on waiting up to (\S+?) for image pull progress updates")
_MATCHERS: tuple[tuple[PullCause, tuple[str, ...]], ...] = (
    (PullCause.DISK_FULL, ("no space left on device",)),
    (PullCause.QPS, ("pull qps exceeded",)),
    (
        PullCause.AUTH,
        (
            "failed to authorize",
            "pull access denied",
            "unauthorized",
            "401 ",
            "403 forbidden",
            "status: 403",
            "denied:",
            "authentication required",
        ),
    ),
    (PullCause.NOT_FOUND, ("not found", "manifest unknown", "name unknown")),
)
_CANCELED = ("context canceled", "code = canceled")
_UNREACHABLE = (
    "dial tcp",
    "i/o timeout",
    "connection refused",
    "no such host",
    "connection reset",
    "tls handshake timeout",
    "deadline exceeded",
    "network is unreachable",
    "no route to host",
)
_WINDOW_AFTER = timedelta(seconds=60)
_SLACK_SECONDS = 2.0
_GONE_REASONS = frozenset({"Killing", "Evicted", "Preempting"})


def _in_window(t: datetime | None, failure: PullFailure) -> bool:
    if t is None or failure.failed_at is None:
        return False
    start = failure.started_at or failure.failed_at
    return start <= t <= failure.failed_at + _WINDOW_AFTER


def _pod_gone(failure: PullFailure, events: Sequence[KubeEvent]) -> KubeEvent | None:
    for e in events:
        if (
            e.reason in _GONE_REASONS
            and e.kind == "Pod"
            and e.object_name == failure.pod
            and e.object_namespace == failure.namespace
            and (_in_window(e.first_seen, failure) or _in_window(e.last_seen, failure))
        ):
            return e
    return None


def _kubelet_started(failure: PullFailure, events: Sequence[KubeEvent]) -> KubeEvent | None:
    for e in events:
        if (
            e.reason == "Starting"
            and e.message.startswith("Starting kubelet")
            and (e.node in (None, failure.node))
            and (_in_window(e.first_seen, failure) or _in_window(e.last_seen, failure))
        ):
            return e
    return None


def _cause_of(
    failure: PullFailure, events: Sequence[KubeEvent], deadline: Deadline
) -> tuple[PullCause, KubeEvent | None, bool]:
    """(cause, the event that shows it, likely) for one failure."""
    err = failure.error.lower()
    if _CRIO_TIMEOUT.search(failure.error):
        return PullCause.PROGRESS_TIMEOUT, None, False
    for cause, needles in _MATCHERS:
        if any(n in err for n in needles):
            return cause, None, False
    if any(n in err for n in _CANCELED):
        gone = _pod_gone(failure, events)
        if gone is not None:
            return PullCause.POD_GONE, gone, False
        restart = _kubelet_started(failure, events)
        if restart is not None:
            return PullCause.KUBELET_RESTART, restart, False
        if not deadline.seconds:
            return PullCause.CANCELED_UNKNOWN, None, False
        elapsed = failure.elapsed_seconds
        if elapsed is None:
            return PullCause.PROGRESS_TIMEOUT, None, True
        if elapsed + _SLACK_SECONDS >= deadline.seconds:
            return PullCause.PROGRESS_TIMEOUT, None, False
        return PullCause.CANCELED_UNKNOWN, None, False
    if any(n in err for n in _UNREACHABLE):
        return PullCause.UNREACHABLE, None, False
    return PullCause.OTHER, None, False


def _when(t: datetime | None) -> str:
    return "unknown" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _evidence(
    failure: PullFailure, deadline: Deadline, runtime: RuntimeSpec | None, shown: KubeEvent | None
) -> tuple[str, ...]:
    where = f"pod {failure.namespace}/{failure.pod}" if failure.pod else "pod (unknown)"
    elapsed = failure.elapsed_seconds
    lines = [
        f"event Failed (x{failure.count}) on {where}: {failure.message}",
        f"Pulling at {_when(failure.started_at)}, Failed at {_when(failure.failed_at)}"
        + ("" if elapsed is None else f", elapsed {go_duration(elapsed)}"),
        f"runtime {runtime if runtime else 'unknown'}; pull progress deadline "
        + ("none" if deadline.seconds is None else go_duration(deadline.seconds))
        + f" ({deadline.source})",
    ]
    if shown is not None:
        lines.append(
            f"event {shown.reason} on {shown.kind} {shown.object_name} at"
            f" {_when(shown.seen)}: {shown.message}"
        )
    return tuple(lines)


_TITLES: dict[PullCause, str] = {
    PullCause.PROGRESS_TIMEOUT: "pull of {image} on {node} cancelled by the runtime's progress"
    " timeout ({deadline})",
    PullCause.POD_GONE: "pull of {image} on {node} cancelled: its pod was deleted or evicted",
    PullCause.KUBELET_RESTART: "pull of {image} on {node} cancelled: the kubelet restarted",
    PullCause.AUTH: "pull of {image} on {node} refused by the registry (authentication)",
    PullCause.NOT_FOUND: "pull of {image} on {node} failed: image or tag not found",
    PullCause.DISK_FULL: "pull of {image} on {node} failed: no space left on the image filesystem",
    PullCause.QPS: "pull of {image} on {node} refused by the kubelet's registry QPS limit",
    PullCause.UNREACHABLE: "pull of {image} on {node} failed: registry unreachable",
    PullCause.CANCELED_UNKNOWN: "pull of {image} on {node} cancelled (context canceled), cause"
    " not determined",
    PullCause.OTHER: "pull of {image} on {node} failed",
}


def cause_of(
    failure: PullFailure,
    *,
    runtime: RuntimeSpec | None,
    node_events: Sequence[KubeEvent],
    deadline_seconds: float | None,
    deadline_source: str,
) -> PullCause:
    """The cause alone (what :func:`classify` decides, without the texts)."""
    deadline = effective_deadline(runtime, deadline_seconds, deadline_source, failure.error)
    return _cause_of(failure, node_events, deadline)[0]


def classify(
    failure: PullFailure,
    *,
    runtime: RuntimeSpec | None,
    node_events: Sequence[KubeEvent],
    deadline_seconds: float | None,
    deadline_source: str,
    recommended_deadline_seconds: float,
) -> Finding:
    """One failed pull explained: D201..D206, D209 or D211.

    ``deadline_seconds`` is the pull deadline in effect on the node as read from its
    config (0 = off); None = not read, so the runtime version's default applies (from
    :func:`mlnode.knowledge.table.runtime_settings_for`; none when the version has none).
    """
    deadline = effective_deadline(runtime, deadline_seconds, deadline_source, failure.error)
    cause, shown, likely = _cause_of(failure, node_events, deadline)
    title = _TITLES[cause].format(
        image=failure.image,
        node=failure.node,
        deadline="none" if deadline.seconds is None else go_duration(deadline.seconds),
    )
    if likely:
        title = title.replace("cancelled by", "likely cancelled by")
    if failure.count > 1:
        title += f" (x{failure.count})"
    recommended = recommended_deadline_seconds
    if deadline.seconds and recommended <= deadline.seconds:
        recommended = 2 * deadline.seconds  # the deadline in effect was already that long
    return Finding(
        code=CODES[cause],
        title=title,
        cause=cause_text(cause.value, failure, deadline, runtime, likely=likely, shown=shown),
        fix=fix_text(cause.value, failure, deadline, runtime, recommended_seconds=recommended),
        evidence=_evidence(failure, deadline, runtime, shown),
        node=failure.node,
        subject=failure.image,
    )


def classify_failures(
    failures: Sequence[PullFailure],
    *,
    runtime: RuntimeSpec | None,
    node_events: Sequence[KubeEvent],
    deadline_seconds: float | None,
    deadline_source: str,
    recommended_deadline_seconds: float,
) -> list[Finding]:
    """Every failure classified, then one finding per (node, image, code): the latest
    failure's explanation with the total count and the pods it hit."""
    groups: dict[tuple[str, str, str], list[tuple[PullFailure, Finding]]] = {}
    for f in failures:
        finding = classify(
            f,
            runtime=runtime,
            node_events=node_events,
            deadline_seconds=deadline_seconds,
            deadline_source=deadline_source,
            recommended_deadline_seconds=recommended_deadline_seconds,
        )
        groups.setdefault((f.node, f.image, finding.code), []).append((f, finding))
    out: list[Finding] = []
    floor = datetime.min.replace(tzinfo=UTC)
    for items in groups.values():
        items.sort(key=lambda pair: pair[0].failed_at or floor)
        finding = items[-1][1]
        if len(items) > 1:
            total = sum(f.count for f, _ in items)
            pods = sorted({f"{f.namespace}/{f.pod}" for f, _ in items if f.pod})
            title = re.sub(r" \(x\d+\)$", "", finding.title) + f" (x{total})"
            finding = dataclasses.replace(
                finding,
                title=title,
                evidence=(
                    *finding.evidence,
                    f"{total} failures in {len(items)} events, pods: {', '.join(pods)}",
                ),
            )
        out.append(finding)
    return out


def event_findings(
    node: str,
    events: Sequence[KubeEvent],
    *,
    runtime: RuntimeSpec | None,
    deadline_seconds: float | None,
    deadline_source: str,
    recommended_deadline_seconds: float,
) -> list[Finding]:
    """Everything one node's events say: its failed pulls classified (one finding per
    image and cause) and then :func:`node_event_findings`. ``events`` may hold other
    nodes' events; only this node's are read."""
    mine = [e for e in events if e.node == node]
    failures = pull_failures(mine)
    return classify_failures(
        failures,
        runtime=runtime,
        node_events=mine,
        deadline_seconds=deadline_seconds,
        deadline_source=deadline_source,
        recommended_deadline_seconds=recommended_deadline_seconds,
    ) + node_event_findings(node, mine)


__all__ += ["CODES", "cause_of", "event_findings", "flag_duration"]
