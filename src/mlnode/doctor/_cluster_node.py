"""One node of a cluster, analysed from what the API server shows of it. Pure.

Inputs: the core/v1 Node, the kubelet's configz (``{"kubeletconfig": {...}}``) and
stats/summary documents (None when the node did not answer), and the node's Events.

- thresholds: configz's fields (the live, merged config), else the defaults of the Node's
  kubelet version, each with its source;
- the pull deadline: the runtime's default for the version in ``containerRuntimeVersion``;
  the runtime's own config is not visible through the API, and the source says so;
- the image filesystem: stats/summary ``node.runtime.imageFs``; it shares nodefs
  (``node.fs``) when the two report the same capacity and available bytes;
- the largest image: ``status.images`` (sizes as the runtime reports them: compressed on
  containerd).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlnode.doctor._classify import event_findings
from mlnode.doctor._disk import disk_findings, footprint_bytes, headroom_bytes
from mlnode.doctor._events import runtime_from_node_info
from mlnode.doctor._model import Finding, ImageFs, NodeReport, Setting
from mlnode.doctor._pull_texts import recommended_deadline
from mlnode.doctor._settings import THRESHOLD_KEYS, configz_values, runtime_deadline_default
from mlnode.errors import InvalidValue, VersionError
from mlnode.knowledge.table import KUBELET_SETTINGS, kubelet_setting
from mlnode.units import parse_bytes
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
)

__all__ = [
    "POOL_LABELS",
    "NodeFacts",
    "analyse_node",
    "node_runtime",
    "pool_of",
]

# Where clusters name a node's pool, first match wins (--pool-label overrides).
POOL_LABELS = (
    "node.kubernetes.io/pool",
    "nodepool",
    "node-pool",
    "pool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "kubernetes.azure.com/agentpool",
    "node.kubernetes.io/instance-type",
)


@dataclass(frozen=True)
class NodeFacts:
    node: Mapping[str, Any]
    configz: Mapping[str, Any] | None
    summary: Mapping[str, Any] | None
    events: Sequence[Any]  # doctor._events.KubeEvent
    errors: tuple[str, ...] = ()  # what did not answer, one line each


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def pool_of(node: Mapping[str, Any], labels_order: Sequence[str] = POOL_LABELS) -> str | None:
    labels = _get(node, "metadata", "labels") or {}
    for key in labels_order:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return f"{key}={value}"
    return None


def node_runtime(node: Mapping[str, Any]) -> RuntimeSpec | None:
    """``containerd://1.7.13`` → containerd@1.7.13 (None when unknown or unparsable)."""
    text = _get(node, "status", "nodeInfo", "containerRuntimeVersion")
    return runtime_from_node_info(text if isinstance(text, str) else None)


def _kubelet_version(node: Mapping[str, Any]) -> Version | None:
    text = _get(node, "status", "nodeInfo", "kubeletVersion")
    if not isinstance(text, str):
        return None
    try:
        return parse_kubernetes_version(text.split("+")[0], option="kubeletVersion")
    except (VersionError, InvalidValue):
        return None


def _thresholds(configz: Mapping[str, Any] | None, k8s: Version | None) -> dict[str, Setting]:
    live = _get(configz, "kubeletconfig") if configz is not None else None
    out: dict[str, Setting] = {}
    if isinstance(live, Mapping):
        for key, value in configz_values(live).items():
            if key in THRESHOLD_KEYS:
                out[key] = Setting(value, f"configz {kubelet_setting(key).field}")
    for row in KUBELET_SETTINGS:
        if row.key in THRESHOLD_KEYS and row.key not in out and row.default is not None:
            where = f"kubelet {k8s}" if k8s else "the kubelet"
            out[row.key] = Setting(row.default, f"default of {where} (configz not read)")
    if "eviction_hard" in out and not isinstance(out["eviction_hard"].value, Mapping):
        del out["eviction_hard"]
    return out


def _imagefs(summary: Mapping[str, Any] | None) -> ImageFs | None:
    image = _get(summary, "node", "runtime", "imageFs")
    cap, avail = _get(image, "capacityBytes"), _get(image, "availableBytes")
    if not isinstance(cap, int) or not isinstance(avail, int):
        return None
    fs = _get(summary, "node", "fs")
    shared = (
        isinstance(fs, Mapping)
        and fs.get("capacityBytes") == cap
        and fs.get("availableBytes") == avail
    )
    used = _get(image, "usedBytes")
    return ImageFs(
        capacity_bytes=cap,
        available_bytes=avail,
        image_bytes=used if isinstance(used, int) else None,
        shared_with_nodefs=shared,
        source="stats/summary node.runtime.imageFs",
    )


def _images(node: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``status.images`` as (a tagged name, else the digest name; size as reported)."""
    out: list[tuple[str, int]] = []
    for image in _get(node, "status", "images") or []:
        size = image.get("sizeBytes") if isinstance(image, Mapping) else None
        names = image.get("names") if isinstance(image, Mapping) else None
        if not isinstance(size, int) or not isinstance(names, list) or not names:
            continue
        tagged = [n for n in names if isinstance(n, str) and "@" not in n] or names
        out.append((str(tagged[0]), size))
    return out


def _largest(images: Sequence[tuple[str, int]]) -> tuple[str, int] | None:
    return max(images, key=lambda i: i[1]) if images else None


def _allocatable_ephemeral(node: Mapping[str, Any]) -> int | None:
    text = _get(node, "status", "allocatable", "ephemeral-storage")
    try:
        return parse_bytes(str(text)) if text is not None else None
    except ValueError:
        return None


def _condition_findings(name: str, node: Mapping[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    for cond in _get(node, "status", "conditions") or []:
        if not isinstance(cond, Mapping):
            continue
        kind, status = cond.get("type"), cond.get("status")
        bad = (kind == "DiskPressure" and status == "True") or (
            kind == "Ready" and status != "True"
        )
        if bad:
            out.append(
                Finding(
                    "D405",
                    f"{kind} is {status}",
                    str(cond.get("message") or cond.get("reason") or "no message"),
                    "see the disk findings of this node; on the node: `mlnode doctor`",
                    evidence=(
                        f"{kind}={status} since {cond.get('lastTransitionTime')}"
                        f" ({cond.get('reason')})",
                    ),
                    node=name,
                )
            )
    return out


def _unanswered(name: str, errors: tuple[str, ...]) -> Finding:
    if any("HTTP 403" in e or "forbidden" in e for e in errors):
        cause = (
            "the doctor's credentials may not read the kubelet through the API server"
            " (RBAC: get nodes/proxy)"
        )
        fix = "kubectl apply -k deploy/kubernetes/doctor  (the read-only ClusterRole)"
    else:
        cause = (
            "its live config and disk numbers are not known; it may be down or overloaded,"
            " or the API server cannot reach it (port 10250)"
        )
        fix = f"kubectl get --raw /api/v1/nodes/{name}/proxy/healthz"
    return Finding(
        "D404",
        "the kubelet did not answer through the API server: " + errors[0],
        cause,
        fix,
        evidence=errors,
        node=name,
    )


def analyse_node(facts: NodeFacts, *, pool_labels: Sequence[str] = POOL_LABELS) -> NodeReport:
    name = str(_get(facts.node, "metadata", "name") or "?")
    k8s = _kubelet_version(facts.node)
    runtime = node_runtime(facts.node)
    limits = _thresholds(facts.configz, k8s)
    deadline: Setting | None = None
    if runtime is not None:
        value, source = runtime_deadline_default(runtime)
        deadline = Setting(value, source + "; the runtime's config is not visible through the API")
    findings = _condition_findings(name, facts.node)
    seconds = deadline.value if deadline is not None else None
    findings.extend(
        event_findings(
            name,
            facts.events,
            runtime=runtime,
            # not configured as far as the API shows: the classifier takes the version's
            # default from the same table and says since when it is the default
            deadline_seconds=None,
            deadline_source="",
            recommended_deadline_seconds=recommended_deadline(seconds),
        )
    )
    fs = _imagefs(facts.summary)
    images = _images(facts.node)
    largest = _largest(images)
    compressed = runtime is not None and runtime.kind is RuntimeKind.CONTAINERD
    if fs is not None:
        findings.extend(
            f
            for f in disk_findings(
                name, fs, limits, largest=(*largest, compressed) if largest else None
            )
            if f.code != "D108"
        )
    if facts.errors:
        findings.append(_unanswered(name, facts.errors))
    ready = next(
        (
            c.get("status") == "True"
            for c in _get(facts.node, "status", "conditions") or []
            if isinstance(c, Mapping) and c.get("type") == "Ready"
        ),
        None,
    )
    return NodeReport(
        name=name,
        findings=tuple(findings),
        reachable=not facts.errors,
        pool=pool_of(facts.node, pool_labels),
        ready=ready,
        kubelet_version=str(k8s) if k8s else None,
        runtime=str(runtime) if runtime else None,
        pull_deadline=deadline,
        imagefs=fs,
        thresholds=limits,
        largest_image_ref=largest[0] if largest else None,
        largest_image_bytes=footprint_bytes(largest[1], compressed=compressed) if largest else None,
        headroom_bytes=headroom_bytes(fs, limits) if fs is not None else None,
        images_count=len(images),
        errors=facts.errors,
        ephemeral_allocatable_bytes=_allocatable_ephemeral(facts.node),
        image_footprints=tuple(
            (ref, footprint_bytes(size, compressed=compressed)) for ref, size in images
        ),
    )
