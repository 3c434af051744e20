"""The words of the pull findings: the deadline in effect, each cause, each fix.

Kept apart from :mod:`mlnode.doctor._classify` (which decides) so the rules stay short to
read; :mod:`mlnode.doctor._journal` uses the same deadline and fix texts. The runtime's
setting (name, TOML table, default, since which version) always comes from
:func:`mlnode.knowledge.table.runtime_settings_for`, never from a version test here.

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from mlnode.errors import InvalidValue
from mlnode.knowledge.table import RUNTIME_SETTINGS, runtime_settings_for
from mlnode.units import format_go_duration, parse_go_duration
from mlnode.versions import RuntimeKind, RuntimeSpec

if TYPE_CHECKING:
    from mlnode.doctor._classify import PullFailure
    from mlnode.doctor._events import KubeEvent
    from mlnode.knowledge.table import RuntimeSetting

__all__ = [
    "DEADLINE_KEY",
    "Deadline",
    "FailureParts",
    "cause_text",
    "deadline_row",
    "effective_deadline",
    "fix_text",
    "flag_duration",
    "go_duration",
    "recommended_deadline",
    "runtime_setting_line",
]

DEADLINE_KEY = "image_pull_progress_deadline_seconds"
_CRIO_TIMEOUT = re.compile(r"Timed out on waiting up to (\S+?) for image pull progress updates")


class FailureParts(Protocol):
    """What the fix texts read of a failed pull (a PullFailure, or the journal's)."""

    @property
    def image(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def pod(self) -> str | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def failed_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Deadline:
    """The pull-progress deadline in effect: seconds (0 = off, None = the runtime has none),
    where that came from, and the runtime's row for the setting (None: no such setting)."""

    seconds: float | None
    source: str
    row: RuntimeSetting | None
    is_default: bool = False


def go_duration(seconds: float) -> str:
    """Whole seconds as Go prints them (``5m0s``)."""
    return format_go_duration(round(seconds))


def flag_duration(seconds: float) -> str:
    """The short form mlnode's flags are written with: ``15m0s`` → ``15m``, ``1h0m0s`` →
    ``1h``, ``1m30s`` stays."""
    text = go_duration(seconds)
    for zeros in ("h0m0s", "m0s"):
        if text.endswith(zeros) and len(text) > len(zeros):
            return text[: -len(zeros)] + zeros[0]
    return text


def recommended_deadline(deadline_seconds: float | None) -> float:
    """What the doctor proposes after a progress timeout: 3 × the deadline that fired, at
    least 15 minutes, in whole minutes (``mlnode plan`` fits one to the registry and link)."""
    base = 3.0 * deadline_seconds if deadline_seconds else 0.0
    minutes = max(15, int(-(-base // 60)))
    return float(minutes * 60)


def deadline_row(runtime: RuntimeSpec | None) -> RuntimeSetting | None:
    if runtime is None:
        return None
    if runtime.version is None:  # only a row that holds for every version applies
        rows: tuple[RuntimeSetting, ...] = tuple(
            r
            for r in RUNTIME_SETTINGS
            if r.runtime is runtime.kind and not r.span.since and not r.span.until
        )
    else:
        rows = runtime_settings_for(runtime.kind, runtime.version)
    return next((r for r in rows if r.key == DEADLINE_KEY), None)


def _since(row: RuntimeSetting) -> str:
    return "/".join(str(v) for v in row.span.since)


def effective_deadline(
    runtime: RuntimeSpec | None,
    deadline_seconds: float | None,
    deadline_source: str,
    error: str = "",
) -> Deadline:
    """The deadline a pull met. CRI-O's own timeout message names the value it used."""
    row = deadline_row(runtime)
    m = _CRIO_TIMEOUT.search(error)
    if m is not None:
        try:
            said = parse_go_duration(m.group(1))
        except InvalidValue:
            said = None
        if said is not None:
            return Deadline(said, "the runtime's own message", row)
    if deadline_seconds is not None:
        return Deadline(float(deadline_seconds), deadline_source or "as given", row)
    if row is not None:
        source = f"the default of {_runtime_word(runtime)}: {row.source}"
        return Deadline(float(row.default), source, row, is_default=True)
    if runtime is None:
        return Deadline(None, "runtime not known", None)
    first = _first_version(runtime.kind)
    exists = f"; the setting exists from {first}" if first else ""
    return Deadline(None, f"{_runtime_word(runtime)} has no pull progress timeout{exists}", None)


def _first_version(kind: RuntimeKind) -> str | None:
    """The first release(s) with a pull progress deadline setting, from the table."""
    rows = [r for r in RUNTIME_SETTINGS if r.runtime is kind and r.key == DEADLINE_KEY]
    starts = sorted((r.span.since for r in rows if r.span.since), key=lambda s: s[0].key())
    return "/".join(str(v) for v in starts[0]) if starts else None


def _toml_key(part: str, quote: str) -> str:
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f"{quote}{part}{quote}"


def runtime_setting_line(row: RuntimeSetting, seconds: float) -> str:
    """``image_pull_progress_timeout = "15m0s" under [plugins."io.containerd.grpc.v1.cri"]``
    (containerd 2.x writes its tables with single quotes), or cri-dockerd's flag."""
    value = go_duration(seconds)
    if not row.table:
        return f"--{row.name}={value}"
    quote = "'" if row.config_version == 3 else '"'
    table = ".".join(_toml_key(p, quote) for p in row.table)
    return f'{row.name} = "{value}" under [{table}]'


def _config_file(row: RuntimeSetting) -> str:
    if row.runtime is RuntimeKind.CRIO:
        return "a drop-in under /etc/crio/crio.conf.d/, then restart crio"
    if row.runtime is RuntimeKind.CONTAINERD:
        return "/etc/containerd/config.toml, then restart containerd"
    return "cri-docker.service's ExecStart, then restart it"


def _registry(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


def _runtime_word(runtime: RuntimeSpec | None) -> str:
    if runtime is None:
        return "the runtime"
    name = {RuntimeKind.CRIO: "CRI-O"}.get(runtime.kind, runtime.kind.value)
    return f"{name} {runtime.version}" if runtime.version else name


def _timeout_cause(
    failure: PullFailure, deadline: Deadline, runtime: RuntimeSpec | None, likely: bool
) -> str:
    value = "its deadline" if deadline.seconds is None else go_duration(deadline.seconds)
    row = deadline.row
    crio = row is not None and row.runtime is RuntimeKind.CRIO
    what = "no progress event arrives" if crio else "no byte arrives from the registry"
    silent = "no progress event" if crio else "no byte"
    origin = (
        f"its default since {_since(row)}"
        if deadline.is_default and row is not None and row.span.since
        else deadline.source
    )
    text = f"{_runtime_word(runtime)} cancels a pull when {what} for {value} ({origin}); "
    elapsed = failure.elapsed_seconds
    if likely or elapsed is None:
        text += (
            "the kubelet's events do not show when this pull started, and nothing else"
            " (pod deletion, kubelet restart) explains the cancel, so it was likely this"
            " deadline; "
        )
    else:
        text += (
            f"this pull ended {go_duration(elapsed)} after it started: for its last {value}"
            f" {silent} arrived (a stalled layer or registry); "
        )
    return text + (
        "the kubelet retries after a back-off and the retry starts again at byte 0 (a"
        " cancelled pull's partial download is discarded), so a big image that stalls"
        " once per attempt never arrives"
    )


def cause_text(
    cause: str,
    failure: PullFailure,
    deadline: Deadline,
    runtime: RuntimeSpec | None,
    *,
    likely: bool,
    shown: KubeEvent | None,
) -> str:
    err = failure.error
    if cause == "progress-timeout":
        return _timeout_cause(failure, deadline, runtime, likely)
    if cause == "pod-gone":
        reason = shown.reason if shown is not None else "Killing"
        return (
            f"the pod went away while its image was being pulled ({reason} event): the kubelet"
            " cancels a terminating pod's sync and its pull with it; nothing is wrong with the"
            " node, but the next pod's pull starts again at byte 0"
        )
    if cause == "kubelet-restart":
        return (
            'the kubelet restarted while the image was being pulled ("Starting kubelet."'
            " inside the pull's window): the pull's gRPC call ended with the old kubelet and"
            " the new one starts the pull again from byte 0"
        )
    if cause == "canceled-unknown":
        if deadline.seconds is None or deadline.seconds == 0:
            off = (
                f"{deadline.source}"
                if deadline.seconds is None
                else f"{_runtime_word(runtime)}'s pull progress deadline is 0, off"
                f" ({deadline.source})"
            )
            reason = (
                f"{off}, so something else cancelled it: the pod deleted or the"
                " kubelet restarted (their events may have expired: events live 1 h by"
                " default), or a client of the runtime"
            )
        else:
            reason = (
                f"the pull ran {go_duration(failure.elapsed_seconds or 0)}, shorter than the"
                f" {go_duration(deadline.seconds)} deadline, so the deadline did not cancel"
                " it; no Killing or kubelet Starting event explains it either"
            )
        return f"the runtime answered 'context canceled': {reason}"
    return {
        "auth": f"the registry refused the pull's credentials (or none were sent): {err}",
        "not-found": f"the registry has no such repository, tag or digest: {err}",
        "disk-full": "the image filesystem filled while layers were written or unpacked (an"
        " image needs its compressed size in the content store and its unpacked size in"
        f" snapshots at once): {err}",
        "qps": "the kubelet's own client-side limit (registryPullQPS, default 5 per second,"
        " burst 10) refused the pull before it reached the runtime; it retries after a"
        " back-off",
        "unreachable": f"the node could not reach the registry {_registry(failure.image)}: {err}",
    }.get(cause, f"the runtime reported: {err}")


def _timeout_fix(deadline: Deadline, runtime: RuntimeSpec | None, recommended: float) -> str:
    fix = f"mlnode apply --image-pull-progress-deadline {flag_duration(recommended)}"
    row = deadline.row or deadline_row(runtime)
    if row is not None:
        fix += f" (by hand: {runtime_setting_line(row, recommended)} in {_config_file(row)})"
    return fix


def fix_text(
    cause: str,
    failure: FailureParts,
    deadline: Deadline,
    runtime: RuntimeSpec | None,
    *,
    recommended_seconds: float,
) -> str:
    image = failure.image
    pod = f"-n {failure.namespace} {failure.pod}" if failure.pod else "POD"
    since = failure.started_at or failure.failed_at
    when = f' --since "{since:%Y-%m-%d %H:%M:%S} UTC"' if since else ""
    unit = "crio" if runtime is not None and runtime.kind is RuntimeKind.CRIO else "containerd"
    if cause == "progress-timeout":
        return _timeout_fix(deadline, runtime, recommended_seconds)
    fixes = {
        "pod-gone": "",
        "kubelet-restart": f"journalctl -u kubelet{when} (why the kubelet restarted)",
        "canceled-unknown": f"journalctl -u kubelet -u {unit}{when} (who cancelled the pull)",
        "auth": f"kubectl get pod {pod} -o jsonpath='{{.spec.imagePullSecrets}}' (the pull"
        f" secrets), then on the node: crictl pull --creds USER:PASSWORD {image}",
        "not-found": f"skopeo inspect docker://{image} (does the tag exist?), then correct the"
        " image in the pod spec",
        "disk-full": "mlnode gc on the node (removes unused images, least recently used first;"
        " never one in use, pinned or being pulled), then keep headroom ahead of the next pull:"
        " mlnode agent (docs/agent.md)",
        "qps": "mlnode apply --registry-qps 0 (0 = no client-side limit; the registry still"
        " sees every pull)",
        "unreachable": f"curl -v https://{_registry(image)}/v2/ from the node (DNS, proxy,"
        " firewall)",
    }
    return fixes.get(cause, f"journalctl -u {unit}{when}")
