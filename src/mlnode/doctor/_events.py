"""Kubernetes Events, normalised: the doctor reads the kubelet's story from them.

:func:`parse_event` takes one object as the API answers it (``GET /api/v1/events`` items,
which carry no ``kind``, or ``kubectl get events -o json`` items, which do) and returns a
:class:`KubeEvent`, or None for anything that is not an Event. Both Event APIs are read:

* core/v1 ``Event``: ``involvedObject``, ``source{component,host}``, ``firstTimestamp``,
  ``lastTimestamp``, ``count``; newer writers add ``eventTime``, ``series`` and
  ``reportingComponent``/``reportingInstance``;
* events.k8s.io/v1 ``Event``: ``regarding``, ``note``, ``deprecatedSource``,
  ``deprecatedFirstTimestamp``/``deprecatedLastTimestamp``/``deprecatedCount``,
  ``eventTime``, ``series{count,lastObservedTime}``, ``reportingController``.

The node an event is about is ``source.host`` (the kubelet writes its node name there),
else ``reportingInstance``, else the involved object's name when that object is a Node.
Times are UTC; a malformed time reads as None rather than failing the whole list: an
operator's cluster holds events from many writers.

:func:`node_event_findings` (re-exported by :mod:`mlnode.doctor._classify`, where the
merger looks for it) turns a node's events into one finding per kind, with counts:

=======================================  =====  ====================================
reason (and message)                     code   what it says
=======================================  =====  ====================================
FreeDiskSpaceFailed, ImageGCFailed       D107   bytes wanted vs eligible (both
                                                wordings), why images were not
                                                eligible
InvalidDiskCapacity                      D106   GC cannot run: capacity 0
BackOff "Back-off pulling image %q"      D210   per image: count and pods (crash
                                                back-off is left out)
Evicted about ephemeral storage          D407   node pressure vs a pod's own limit
                                                (memory evictions left out)
=======================================  =====  ====================================

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlnode.doctor._model import Finding
from mlnode.errors import VersionError
from mlnode.units import format_bytes
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = [
    "KubeEvent",
    "events_by_node",
    "gc_numbers",
    "node_event_findings",
    "parse_event",
    "parse_kube_time",
    "runtime_from_node_info",
]


@dataclass(frozen=True)
class KubeEvent:
    """One Event, normalised."""

    namespace: str
    name: str
    reason: str
    message: str
    type: str  # "Normal" / "Warning"
    kind: str  # the involved object's kind: "Pod", "Node"
    object_name: str
    object_namespace: str | None
    field_path: str | None  # spec.containers{trainer}
    node: str | None  # source.host, or involvedObject.name for kind Node
    count: int
    first_seen: datetime | None  # UTC
    last_seen: datetime | None  # UTC
    component: str | None  # source.component / reportingController

    @property
    def seen(self) -> datetime | None:
        """The latest time this event was observed (last, else first)."""
        return self.last_seen or self.first_seen

    @property
    def container(self) -> str | None:
        """The container named in ``field_path`` (``spec.containers{name}``)."""
        if self.field_path is None:
            return None
        m = _CONTAINER_PATH.search(self.field_path)
        return m.group(1) if m else None


_CONTAINER_PATH = re.compile(r"(?:containers|initContainers|ephemeralContainers)\{([^}]*)\}")
# RFC 3339 as the API writes it: metav1.Time "2026-11-30T10:00:00Z", metav1.MicroTime
# "2026-11-30T10:00:00.123456Z"; an offset instead of Z is accepted too.
_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def parse_kube_time(value: object) -> datetime | None:
    """An API timestamp as an aware UTC datetime; None for null, "" or anything malformed."""
    if not isinstance(value, str):
        return None
    m = _TIME.match(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    try:
        t = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        return None
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        try:
            t = t - offset if m.group(9) == "+" else t + offset
        except OverflowError:
            return None
    return t


def _map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_event(obj: Mapping[str, Any]) -> KubeEvent | None:
    """One Event object (either API) as a :class:`KubeEvent`; None when it is not one."""
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("kind")
    if kind is not None and kind != "Event":
        return None
    new_api = "regarding" in obj or str(obj.get("apiVersion", "")).startswith("events.k8s.io/")
    involved = _map(obj, "regarding" if new_api else "involvedObject")
    reason = _str(obj, "reason")
    if not involved or reason is None:
        return None
    meta = _map(obj, "metadata")
    source = _map(obj, "deprecatedSource" if new_api else "source")
    series = _map(obj, "series")
    message = _str(obj, "note" if new_api else "message") or ""
    prefix = "deprecated" if new_api else ""
    first = parse_kube_time(obj.get(f"{prefix}FirstTimestamp" if new_api else "firstTimestamp"))
    last = parse_kube_time(obj.get(f"{prefix}LastTimestamp" if new_api else "lastTimestamp"))
    event_time = parse_kube_time(obj.get("eventTime"))
    observed = parse_kube_time(series.get("lastObservedTime"))
    first = first or event_time
    last = observed or last or event_time or first
    count = _int(obj.get("deprecatedCount" if new_api else "count"))
    series_count = _int(series.get("count"))
    if series_count is not None and (count is None or series_count > count):
        count = series_count
    object_kind = _str(involved, "kind") or ""
    object_name = _str(involved, "name") or ""
    node = _str(source, "host") or _str(obj, "reportingInstance")
    if node is None and object_kind == "Node":
        node = object_name or None
    return KubeEvent(
        namespace=_str(meta, "namespace") or "",
        name=_str(meta, "name") or "",
        reason=reason,
        message=message,
        type=_str(obj, "type") or "Normal",
        kind=object_kind,
        object_name=object_name,
        object_namespace=_str(involved, "namespace"),
        field_path=_str(involved, "fieldPath"),
        node=node,
        count=max(1, count or 1),
        first_seen=first,
        last_seen=last,
        component=_str(source, "component")
        or _str(obj, "reportingController")
        or _str(obj, "reportingComponent"),
    )


def events_by_node(events: Iterable[KubeEvent]) -> dict[str, list[KubeEvent]]:
    """Events grouped by node, each list in time order (unknown times first); events that
    name no node are left out."""
    out: dict[str, list[KubeEvent]] = {}
    for e in events:
        if e.node:
            out.setdefault(e.node, []).append(e)
    floor = datetime.min.replace(tzinfo=UTC)
    for items in out.values():
        items.sort(key=lambda e: (e.first_seen or floor, e.last_seen or floor))
    return out


# --- node events: GC, capacity, back-off, evictions ---------------------------------

# "Failed to garbage collect required amount of images. Attempted to free %d bytes, but
# only found %d bytes eligible to free." (1.24-1.35, image_gc_manager.go); 1.20: "failed
# to garbage collect required amount of images. Wanted to free %d bytes, but freed %d
# bytes"; with deletion errors: "wanted to free %d bytes, but freed %d bytes space with
# errors in image deletion: ..." (freeSpace). ImageGCFailed carries the same texts.
_GC_NUMBERS = (
    re.compile(r"Attempted to free (\d+) bytes, but only found (\d+) bytes eligible", re.I),
    re.compile(r"Wanted to free (\d+) bytes, but freed (\d+) bytes", re.I),
)
_PULL_BACKOFF = re.compile(r'^Back-off pulling image "((?:[^"\\]|\\.)*)"')
_EPHEMERAL = (
    "ephemeral-storage",
    "ephemeral local storage",
    "local ephemeral storage",
    "emptydir volume",
)
_LIMIT_WORDS = (
    "exceeded its local ephemeral storage limit",
    "exceeds the total limit",
    "exceeds the limit",
)


def gc_numbers(message: str) -> tuple[int, int] | None:
    """(bytes wanted, bytes eligible or freed) from a GC failure message."""
    for pattern in _GC_NUMBERS:
        m = pattern.search(message)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _stamp(t: datetime | None) -> str:
    return "unknown" if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _total(events: Sequence[KubeEvent]) -> int:
    return sum(e.count for e in events)


def _gc_finding(node: str, events: Sequence[KubeEvent]) -> Finding:
    latest = max(events, key=lambda e: e.seen or datetime.min.replace(tzinfo=UTC))
    numbers = gc_numbers(latest.message)
    evidence = [
        f"event {e.reason} (x{e.count}, last {_stamp(e.seen)}): {e.message}" for e in events
    ]
    if numbers is not None:
        wanted, found = numbers
        evidence.append(
            f"wanted to free {format_bytes(wanted)}, only {format_bytes(found)} eligible"
        )
        title = (
            f"image GC on {node} could not free {format_bytes(wanted)}: only"
            f" {format_bytes(found)} of images eligible (x{_total(events)})"
        )
    else:
        title = f"image GC on {node} failed (x{_total(events)})"
    return Finding(
        code="D107",
        title=title,
        cause=(
            "the kubelet removes only images that no container uses (any container holds its"
            " image, running or exited), that are not pinned (the sandbox image, the runtime's"
            " pinned_images) and that it first saw longer than imageMinimumGCAge ago (default"
            " 2m); it counts an image at the size the runtime reports (for containerd the"
            " compressed content), so what it can free is less than the disk the unpacked"
            " image takes"
        ),
        fix=(
            "crictl ps -a (exited containers hold their images: crictl rm them), then crictl"
            " rmi --prune; mlnode doctor shows the headroom against the largest image"
        ),
        evidence=tuple(evidence),
        node=node,
    )


def _capacity_finding(node: str, events: Sequence[KubeEvent]) -> Finding:
    return Finding(
        code="D106",
        title=f"the kubelet on {node} read capacity 0 for the image filesystem (x{_total(events)})",
        cause=(
            "image GC cannot run while the image filesystem's capacity reads 0; once right"
            " after the kubelet starts it is harmless (stats not yet collected), repeated it"
            " means the runtime reports no usable image filesystem"
        ),
        fix="crictl imagefsinfo (what the runtime reports), then journalctl -u kubelet",
        evidence=tuple(
            f"event {e.reason} (x{e.count}, last {_stamp(e.seen)}): {e.message}" for e in events
        ),
        node=node,
    )


def _backoff_finding(node: str, events: Sequence[KubeEvent]) -> Finding:
    per_image: dict[str, list[KubeEvent]] = {}
    for e in events:
        m = _PULL_BACKOFF.match(e.message)
        if m:
            per_image.setdefault(m.group(1), []).append(e)
    evidence = []
    for image, items in sorted(per_image.items()):
        pods = sorted({f"{e.object_namespace}/{e.object_name}" for e in items})
        evidence.append(f"{image}: back-off x{_total(items)}, pods {', '.join(pods)}")
    images = sorted(per_image)
    return Finding(
        code="D210",
        title=f"image pull back-off on {node}: {', '.join(images)} (x{_total(events)})",
        cause=(
            "after a failed pull the kubelet waits before the next attempt, 10 s doubling up"
            " to 5 min; the failure that started it is the pull finding for the same image"
        ),
        fix="kubectl describe pod -n NAMESPACE POD (the last pull error), then the pull finding",
        evidence=tuple(evidence),
        node=node,
        subject=images[0] if len(images) == 1 else None,
    )


def _eviction_finding(node: str, events: Sequence[KubeEvent]) -> Finding:
    limit = [e for e in events if any(w in e.message for w in _LIMIT_WORDS)]
    pressure = [e for e in events if e not in limit]
    evidence = [
        f"event Evicted on pod {e.object_namespace}/{e.object_name} (x{e.count}, last"
        f" {_stamp(e.seen)}): {e.message.strip()}"
        for e in events
    ]
    parts = []
    if pressure:
        parts.append(
            f"{_total(pressure)} for node pressure: the node ran low on ephemeral storage"
            " and evicted pods to reclaim it (with imagefs on nodefs, big images compete"
            " with pods' writable layers, logs and emptyDirs for one disk)"
        )
    if limit:
        parts.append(
            f"{_total(limit)} for a pod's own limit: a container or emptyDir wrote more than"
            " its ephemeral-storage limit"
        )
    return Finding(
        code="D407",
        title=f"{_total(events)} eviction{'s' if _total(events) > 1 else ''} for ephemeral"
        f" storage on {node}",
        cause="; ".join(parts),
        fix=(
            "mlnode doctor (the thresholds and headroom in effect)"
            + ("; raise resources.limits.ephemeral-storage of the pods named" if limit else "")
        ),
        evidence=tuple(evidence),
        node=node,
    )


def node_event_findings(node: str, events: Sequence[KubeEvent]) -> list[Finding]:
    """FreeDiskSpaceFailed/ImageGCFailed → D107, InvalidDiskCapacity → D106, pull BackOff →
    D210, ephemeral-storage evictions → D407: one finding per kind, with counts."""
    mine = [e for e in events if e.node in (None, node)]
    gc = [e for e in mine if e.reason in ("FreeDiskSpaceFailed", "ImageGCFailed")]
    capacity = [e for e in mine if e.reason == "InvalidDiskCapacity"]
    backoff = [e for e in mine if e.reason == "BackOff" and _PULL_BACKOFF.match(e.message)]
    evicted = [
        e for e in mine if e.reason == "Evicted" and any(w in e.message.lower() for w in _EPHEMERAL)
    ]
    out: list[Finding] = []
    if gc:
        out.append(_gc_finding(node, gc))
    if capacity:
        out.append(_capacity_finding(node, capacity))
    if backoff:
        out.append(_backoff_finding(node, backoff))
    if evicted:
        out.append(_eviction_finding(node, evicted))
    return out


_RUNTIME_SCHEMES = {
    "containerd": RuntimeKind.CONTAINERD,
    "cri-o": RuntimeKind.CRIO,
    "crio": RuntimeKind.CRIO,
}
_LEADING_VERSION = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)")


def runtime_from_node_info(text: str | None) -> RuntimeSpec | None:
    """``status.nodeInfo.containerRuntimeVersion`` as a runtime: ``containerd://1.7.13``,
    ``containerd://1.7.12-0ubuntu2~22.04.1`` (the distribution suffix dropped),
    ``cri-o://1.30.11``. ``docker://24.0.7`` is Docker Engine behind cri-dockerd (the
    kubelet has had no dockershim since 1.24), whose own version the node does not
    report: cri-dockerd without a version. None for anything else."""
    if not text or "://" not in text:
        return None
    scheme, _, rest = text.strip().partition("://")
    if scheme == "docker":
        return RuntimeSpec(RuntimeKind.CRI_DOCKERD)
    kind = _RUNTIME_SCHEMES.get(scheme.lower())
    m = _LEADING_VERSION.match(rest)
    if kind is None or m is None:
        return None
    try:
        return RuntimeSpec(kind, Version.parse(m.group(1)))
    except VersionError:
        return None
