"""What the doctor says: findings with a stable code, and the reports that carry them.

A finding answers four questions an operator asks about a node's images: what was seen
(``evidence``: file:line, an event's message, numbers), why it happens (``cause``, plain
words), how bad it is (``severity``), and what to type (``fix``: an exact ``mlnode``
command where mlnode can do it, otherwise the exact other command or setting).

Codes are stable and never reused. The lint codes (E1xx, W2xx, I3xx, :mod:`mlnode.lint`)
keep theirs when the doctor reports a lint finding; the doctor's own are ``D`` + three
digits, grouped by subject in :data:`DOCTOR_CODES`. The JSON shape (schema
``mlnode.doctor/v1``) is documented in docs/doctor.md; :func:`report_json` is its one
producer, and the HTML page is rendered from that JSON, not from these objects.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnode.lint.findings import CODES as LINT_CODES
from mlnode.lint.findings import Severity as LintSeverity

__all__ = [
    "DOCTOR_CODES",
    "SCHEMA",
    "ClusterReport",
    "Finding",
    "FleetImage",
    "ImageFs",
    "NodeReport",
    "PullRow",
    "Setting",
    "Severity",
    "code_severity",
    "report_json",
]

SCHEMA = "mlnode.doctor/v1"


class Severity(enum.StrEnum):
    ERROR = "error"  # images cannot work here until this is changed (or pulls are failing)
    WARNING = "warning"  # works now, fails under the next big pull or restart
    INFO = "info"  # a fact worth knowing (the deadline in effect, a cheaper layer format)


# The doctor's own codes. D1xx disk and GC, D2xx pulls, D3xx runtime, kubelet and the
# node's mlnode services, D4xx cluster and fleet. Never reuse a code.
DOCTOR_CODES: dict[str, tuple[Severity, str]] = {
    # disk and garbage collection
    "D101": (Severity.WARNING, "image filesystem shared with the OS root filesystem"),
    "D102": (Severity.INFO, "image filesystem shared with the kubelet's (nodefs)"),
    "D103": (Severity.ERROR, "the largest image does not fit in the headroom"),
    "D104": (Severity.WARNING, "usage at or above the image GC high threshold"),
    "D105": (Severity.ERROR, "usage past the eviction threshold (DiskPressure)"),
    "D106": (Severity.ERROR, "the kubelet sees capacity 0 on the image filesystem"),
    "D107": (Severity.WARNING, "image GC could not free what it wanted"),
    "D108": (Severity.INFO, "image filesystem usage"),
    "D109": (Severity.INFO, "what holds the image filesystem: images in use, pinned, unused"),
    "D110": (Severity.WARNING, "image GC cannot reach its low threshold: too much is in use"),
    # pulls
    "D201": (Severity.ERROR, "pull cancelled by the runtime's progress timeout"),
    "D202": (Severity.WARNING, "pull cancelled because its pod went away or the kubelet restarted"),
    "D203": (Severity.ERROR, "pull refused: registry authentication"),
    "D204": (Severity.ERROR, "pull failed: image or tag not found"),
    "D205": (Severity.ERROR, "pull failed: no space left on the image filesystem"),
    "D206": (Severity.WARNING, "pull failed for another reason"),
    "D207": (Severity.WARNING, "download in flight is stalled"),
    "D208": (Severity.INFO, "download in flight"),
    "D209": (Severity.WARNING, "pulls refused by the kubelet's registry QPS limit"),
    "D210": (Severity.WARNING, "image pull back-off"),
    "D211": (Severity.ERROR, "pull cancelled: context canceled, cause not determined"),
    # runtime, kubelet, mlnode's own services
    "D302": (Severity.WARNING, "the running kubelet's config differs from its files"),
    "D303": (Severity.INFO, "the kubelet's live config could not be read"),
    "D304": (Severity.WARNING, "the node mirror is not healthy"),
    "D305": (Severity.WARNING, "the mlnode agent is not healthy"),
    "D306": (Severity.INFO, "big image with gzip layers: zstd unpacks faster"),
    "D307": (Severity.ERROR, "the kubelet fails to start (journal)"),
    "D308": (Severity.WARNING, "the runtime cancelled a pull for no progress (journal)"),
    "D309": (Severity.WARNING, "image GC failed (journal)"),
    "D310": (Severity.INFO, "the journal could not be read"),
    "D311": (Severity.INFO, "the runtime could not be asked"),
    # cluster and fleet
    "D401": (Severity.WARNING, "node at risk: its largest image does not fit in its headroom"),
    "D402": (Severity.INFO, "images that dominate the fleet's disk"),
    "D403": (Severity.WARNING, "a setting differs across nodes of one pool"),
    "D404": (Severity.WARNING, "node did not answer"),
    "D405": (Severity.ERROR, "node condition: DiskPressure or not Ready"),
    "D406": (Severity.WARNING, "kubelet or runtime versions differ across nodes of one pool"),
    "D407": (Severity.INFO, "evictions for ephemeral storage"),
}

_FROM_LINT = {
    LintSeverity.ERROR: Severity.ERROR,
    LintSeverity.WARNING: Severity.WARNING,
    LintSeverity.INFO: Severity.INFO,
}


def code_severity(code: str) -> Severity:
    """The severity of a doctor code or of a lint code the doctor passes on."""
    if code in DOCTOR_CODES:
        return DOCTOR_CODES[code][0]
    return _FROM_LINT[LINT_CODES[code][0]]


@dataclass(frozen=True)
class Finding:
    code: str
    title: str  # one line: what is wrong (or what is so, for info)
    cause: str  # why, in plain words
    fix: str  # the exact command or setting; "" when nothing needs to change
    evidence: tuple[str, ...] = ()  # what was seen: file:line, event text, numbers
    node: str | None = None  # the node it is about; None for a fleet finding
    subject: str | None = None  # the image, layer digest or setting it is about

    def __post_init__(self) -> None:
        if self.code not in DOCTOR_CODES and self.code not in LINT_CODES:
            raise ValueError(f"unknown finding code {self.code}")

    @property
    def severity(self) -> Severity:
        return code_severity(self.code)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "node": self.node,
            "subject": self.subject,
            "evidence": list(self.evidence),
            "cause": self.cause,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Setting:
    """An effective value and where it came from ("default for kubelet 1.30", a file:line,
    "configz")."""

    value: Any
    source: str


@dataclass(frozen=True)
class ImageFs:
    capacity_bytes: int
    available_bytes: int
    path: str | None = None  # the runtime's image directory, as the node names it
    image_bytes: int | None = None  # what the runtime's images take (stats usedBytes)
    shared_with_os: bool | None = None
    shared_with_nodefs: bool | None = None
    source: str = ""  # "statvfs /var/lib/containerd", "stats/summary"

    @property
    def usage_percent(self) -> int:
        """The kubelet's arithmetic: 100 - floor(available*100/capacity)."""
        if self.capacity_bytes <= 0:
            return 0
        return 100 - (self.available_bytes * 100) // self.capacity_bytes


@dataclass(frozen=True)
class PullRow:
    """A download in flight: a layer (or config) being written into the content store."""

    ref: str  # containerd's ingest ref
    digest: str | None
    offset_bytes: int
    total_bytes: int
    rate_bytes_per_second: float | None
    stalled_seconds: float | None  # how long no byte arrived (None: not known)
    image: str | None = None  # the image it belongs to, when known
    source: str = "containerd"  # "containerd", "mirror", "containerd+mirror"


@dataclass(frozen=True)
class NodeReport:
    name: str
    findings: tuple[Finding, ...] = ()
    reachable: bool = True
    pool: str | None = None
    ready: bool | None = None
    kubelet_version: str | None = None
    runtime: str | None = None  # "containerd@1.7.13"
    pull_deadline: Setting | None = None  # seconds; 0 = off; value None = no deadline
    imagefs: ImageFs | None = None
    thresholds: Mapping[str, Setting] = field(default_factory=dict)  # lint's effective keys
    largest_image_ref: str | None = None
    largest_image_bytes: int | None = None
    headroom_bytes: int | None = None  # what a pull may use before eviction (see docs)
    images_count: int | None = None
    pulls: tuple[PullRow, ...] = ()
    errors: tuple[str, ...] = ()  # what could not be read, one line each
    ephemeral_allocatable_bytes: int | None = None  # Node status.allocatable (cluster)
    # every image the node holds as (ref, footprint bytes), for the fleet's dominant images;
    # not in the JSON (up to 50 per node × every node)
    image_footprints: tuple[tuple[str, int], ...] = ()

    @property
    def at_risk(self) -> bool:
        return (
            self.largest_image_bytes is not None
            and self.headroom_bytes is not None
            and self.largest_image_bytes > self.headroom_bytes
        )


@dataclass(frozen=True)
class FleetImage:
    ref: str
    size_bytes: int
    nodes: int  # on how many nodes it is

    @property
    def total_bytes(self) -> int:
        return self.size_bytes * self.nodes


@dataclass(frozen=True)
class ClusterReport:
    nodes: tuple[NodeReport, ...]
    findings: tuple[Finding, ...] = ()  # fleet-wide (node None) or cross-node findings
    dominant_images: tuple[FleetImage, ...] = ()
    server: str | None = None
    duration_seconds: float | None = None


def _setting_json(s: Setting | None) -> dict[str, Any] | None:
    return None if s is None else {"value": s.value, "source": s.source}


def _imagefs_json(fs: ImageFs | None) -> dict[str, Any] | None:
    if fs is None:
        return None
    return {
        "path": fs.path,
        "capacity_bytes": fs.capacity_bytes,
        "available_bytes": fs.available_bytes,
        "image_bytes": fs.image_bytes,
        "usage_percent": fs.usage_percent,
        "shared_with_os": fs.shared_with_os,
        "shared_with_nodefs": fs.shared_with_nodefs,
        "source": fs.source,
    }


def _pull_json(p: PullRow) -> dict[str, Any]:
    return {
        "ref": p.ref,
        "digest": p.digest,
        "image": p.image,
        "offset_bytes": p.offset_bytes,
        "total_bytes": p.total_bytes,
        "rate_bytes_per_second": p.rate_bytes_per_second,
        "stalled_seconds": p.stalled_seconds,
        "source": p.source,
    }


def node_json(n: NodeReport) -> dict[str, Any]:
    return {
        "name": n.name,
        "reachable": n.reachable,
        "pool": n.pool,
        "ready": n.ready,
        "kubelet_version": n.kubelet_version,
        "runtime": n.runtime,
        "pull_deadline_seconds": _setting_json(n.pull_deadline),
        "imagefs": _imagefs_json(n.imagefs),
        "thresholds": {k: _setting_json(v) for k, v in sorted(n.thresholds.items())},
        "largest_image": (
            None
            if n.largest_image_bytes is None
            else {"ref": n.largest_image_ref, "size_bytes": n.largest_image_bytes}
        ),
        "headroom_bytes": n.headroom_bytes,
        "at_risk": n.at_risk,
        "images_count": n.images_count,
        "ephemeral_allocatable_bytes": n.ephemeral_allocatable_bytes,
        "pulls": [_pull_json(p) for p in n.pulls],
        "errors": list(n.errors),
        "findings": [f.to_json() for f in n.findings],
    }


def _counts(findings: Sequence[Finding]) -> dict[str, int]:
    out = {s.value: 0 for s in Severity}
    for f in findings:
        out[f.severity.value] += 1
    return out


def all_findings(report: NodeReport | ClusterReport) -> tuple[Finding, ...]:
    if isinstance(report, NodeReport):
        return report.findings
    return tuple(f for n in report.nodes for f in n.findings) + report.findings


def report_json(report: NodeReport | ClusterReport, *, generated_at: str) -> dict[str, Any]:
    """The one JSON producer (schema ``mlnode.doctor/v1``, docs/doctor.md)."""
    if isinstance(report, NodeReport):
        nodes: tuple[NodeReport, ...] = (report,)
        fleet: dict[str, Any] | None = None
        scope = "node"
    else:
        nodes = report.nodes
        scope = "cluster"
        fleet = {
            "server": report.server,
            "duration_seconds": report.duration_seconds,
            "findings": [f.to_json() for f in report.findings],
            "dominant_images": [
                {
                    "ref": i.ref,
                    "size_bytes": i.size_bytes,
                    "nodes": i.nodes,
                    "total_bytes": i.total_bytes,
                }
                for i in report.dominant_images
            ],
        }
    findings = all_findings(report)
    return {
        "schema": SCHEMA,
        "scope": scope,
        "generated_at": generated_at,
        "summary": {
            **_counts(findings),
            "nodes": len(nodes),
            "nodes_at_risk": sum(1 for n in nodes if n.at_risk),
            "nodes_unreachable": sum(1 for n in nodes if not n.reachable),
        },
        "nodes": [node_json(n) for n in nodes],
        "fleet": fleet,
    }
