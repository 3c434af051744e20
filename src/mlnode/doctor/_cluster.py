"""``mlnode doctor --cluster``: every node through the API server, concurrently with a bound,
then the fleet's view.

Calls (ports.ClusterReader; RBAC in deploy/kubernetes/doctor/): one paged list of Nodes, one
paged list of Events (all namespaces), and per node ``configz`` then ``stats/summary``
through the node proxy, on at most ``concurrency`` worker threads, each call given up after
``node_timeout_seconds``. A node whose configz does not answer in time is not asked for its
summary (one timeout per dead node, not two) and is reported (D404), never waited for.

Fleet findings (pure, :func:`fleet_findings`): nodes at risk (D401), the images that take
the most disk across the fleet (D402), settings (D403) and versions (D406) that differ among
the nodes of one pool.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlnode.doctor._cluster_node import POOL_LABELS, NodeFacts, analyse_node
from mlnode.doctor._model import ClusterReport, Finding, FleetImage, NodeReport
from mlnode.doctor._settings import setting_text
from mlnode.errors import KubeError, KubeUnavailable
from mlnode.knowledge.table import kubelet_setting
from mlnode.ports import ClusterReader
from mlnode.units import format_bytes

__all__ = ["ClusterRequest", "diagnose_cluster", "fleet_findings", "parse_selector"]


#: one requirement of a label selector: (key, "=" | "!=" | "exists" | "!exists", value)
Requirement = tuple[str, str, str]


@dataclass(frozen=True)
class ClusterRequest:
    concurrency: int = 32
    node_timeout_seconds: float = 10.0
    pool_labels: tuple[str, ...] = POOL_LABELS
    dominant_images: int = 10
    selector: tuple[Requirement, ...] = ()  # only the Nodes whose labels match


_LABEL = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)$")


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """``kubectl -l``'s equality-based selectors: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
    comma-separated (set-based ``in``/``notin`` are not supported). ValueError, one line."""
    out: list[Requirement] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"empty requirement in {text!r}")
        if "!=" in part:
            key, _, value = part.partition("!=")
            op = "!="
        elif "=" in part:
            key, _, value = part.partition("==" if "==" in part else "=")
            op = "="
        elif part.startswith("!"):
            key, op, value = part[1:], "!exists", ""
        else:
            key, op, value = part, "exists", ""
        key, value = key.strip(), value.strip()
        if not _LABEL.match(key) or (value and not _LABEL.match(value)):
            raise ValueError(f"not a label requirement: {part!r} (k=v, k!=v, k or !k)")
        out.append((key, op, value))
    return tuple(out)


def _matches(node: Mapping[str, Any], selector: Sequence[Requirement]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, op, value in selector:
        have = labels.get(key)
        if (
            (op == "=" and have != value)
            or (op == "!=" and have == value)
            or (op == "exists" and have is None)
            or (op == "!exists" and have is not None)
        ):
            return False
    return True


def _one_line(e: KubeError) -> str:
    return " ".join(str(e).split())


def _node_facts(
    reader: ClusterReader, node: Mapping[str, Any], events: Sequence[Any], timeout: float
) -> NodeFacts:
    name = str(node.get("metadata", {}).get("name", ""))
    errors: list[str] = []
    configz: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None
    try:
        configz = reader.node_proxy(name, "configz", timeout_seconds=timeout)
    except KubeUnavailable as e:
        errors.append(f"configz: {_one_line(e)}")
    except KubeError as e:  # 403 without nodes/proxy: the summary will be refused too
        errors.append(f"configz: {_one_line(e)}")
    if not errors:
        try:
            summary = reader.node_proxy(name, "stats/summary", timeout_seconds=timeout)
        except KubeError as e:
            errors.append(f"stats/summary: {_one_line(e)}")
    return NodeFacts(
        node=node, configz=configz, summary=summary, events=events, errors=tuple(errors)
    )


def diagnose_cluster(
    reader: ClusterReader,
    req: ClusterRequest,
    *,
    server: str | None = None,
    on_node: Callable[[int, int], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> ClusterReport:
    """Raises KubeError/KubeUnavailable only when the Node list itself fails (exit 8)."""
    from mlnode.doctor._events import events_by_node, parse_event

    start = monotonic()
    nodes = [n for n in reader.list_nodes() if _matches(n, req.selector)]
    event_errors: list[str] = []
    try:
        raw_events = reader.list_events()
    except KubeError as e:
        raw_events = []
        event_errors.append(f"events: {_one_line(e)}")
    parsed = [ev for ev in (parse_event(o) for o in raw_events) if ev is not None]
    by_node = events_by_node(parsed)
    total = len(nodes)
    done = 0

    def work(node: Mapping[str, Any]) -> NodeReport:
        name = str(node.get("metadata", {}).get("name", ""))
        facts = _node_facts(reader, node, by_node.get(name, []), req.node_timeout_seconds)
        return analyse_node(facts, pool_labels=req.pool_labels)

    reports: list[NodeReport] = []
    with ThreadPoolExecutor(max_workers=max(1, req.concurrency)) as pool:
        for report in pool.map(work, nodes):
            reports.append(report)
            done += 1
            if on_node is not None:
                on_node(done, total)
    reports.sort(key=lambda r: r.name)
    findings, dominant = fleet_findings(reports, top=req.dominant_images)
    if event_errors:
        findings.insert(
            0,
            Finding(
                "D404",
                "the Events could not be listed: " + event_errors[0],
                "failed pulls and GC failures are not explained without them",
                "grant `list events` (deploy/kubernetes/doctor/)",
                evidence=tuple(event_errors),
            ),
        )
    return ClusterReport(
        nodes=tuple(reports),
        findings=tuple(findings),
        dominant_images=dominant,
        server=server,
        duration_seconds=round(monotonic() - start, 3),
    )


def _at_risk(reports: Sequence[NodeReport]) -> Finding | None:
    risky = [r for r in reports if r.at_risk]
    if not risky:
        return None
    shown = ", ".join(
        f"{r.name} ({format_bytes(r.largest_image_bytes or 0)}"
        f" > {format_bytes(r.headroom_bytes or 0)})"
        for r in risky[:10]
    )
    more = f" and {len(risky) - 10} more" if len(risky) > 10 else ""
    return Finding(
        "D401",
        f"{len(risky)} of {len(reports)} node(s) cannot pull their largest image again without"
        " crossing the eviction threshold",
        "the kubelet's GC makes room only after usage passes its high threshold, up to 5"
        " minutes late; a pull bigger than the headroom fills the disk first",
        "keep headroom on every node with the agent: `kubectl apply -k deploy/kubernetes`"
        " (docs/agent.md)",
        evidence=(shown + more,),
    )


def _dominant(
    reports: Sequence[NodeReport], top: int
) -> tuple[tuple[FleetImage, ...], Finding | None]:
    sizes: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for r in reports:
        held = r.image_footprints or (
            ((r.largest_image_ref, r.largest_image_bytes),)
            if r.largest_image_ref is not None and r.largest_image_bytes is not None
            else ()
        )
        for ref, size in held:
            sizes[ref] = max(sizes.get(ref, 0), size)
            counts[ref] += 1
    images = sorted(
        (FleetImage(ref, sizes[ref], n) for ref, n in counts.items()),
        key=lambda i: (-i.total_bytes, i.ref),
    )[:top]
    if not images:
        return (), None
    finding = Finding(
        "D402",
        f"the image that takes the most disk across the fleet: {images[0].ref}",
        "each image's footprint on disk (blobs plus unpacked layers) summed over the nodes"
        " that hold it (the Node's status.images: at most nodeStatusMaxImages, 50, per node)",
        "",
        evidence=tuple(
            f"{i.ref}: {format_bytes(i.size_bytes)} on {i.nodes} node(s)"
            f" = {format_bytes(i.total_bytes)}"
            for i in images
        ),
    )
    return tuple(images), finding


def _pool_differences(reports: Sequence[NodeReport]) -> list[Finding]:
    pools: dict[str, list[NodeReport]] = defaultdict(list)
    for r in reports:
        if r.pool is not None and r.reachable:
            pools[r.pool].append(r)
    out: list[Finding] = []
    for pool, members in sorted(pools.items()):
        if len(members) < 2:
            continue
        keys = sorted({k for m in members for k in m.thresholds})
        for key in keys:
            values: dict[str, list[str]] = defaultdict(list)
            for m in members:
                s = m.thresholds.get(key)
                values[setting_text(key, s.value if s else None)].append(m.name)
            if len(values) > 1:
                out.append(_differs("D403", pool, _field_name(key), values))
        for label, attr in (("kubelet version", "kubelet_version"), ("runtime", "runtime")):
            versions: dict[str, list[str]] = defaultdict(list)
            for m in members:
                versions[str(getattr(m, attr))].append(m.name)
            if len(versions) > 1:
                out.append(_differs("D406", pool, label, versions))
    return out


def _field_name(key: str) -> str:
    """The KubeletConfiguration field an operator knows (lint's key when there is none)."""
    try:
        return kubelet_setting(key).field or key
    except KeyError:
        return key


def _differs(code: str, pool: str, what: str, values: Mapping[str, list[str]]) -> Finding:
    ranked = sorted(values.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    # the one value most nodes share goes without names; on a tie every value has them
    majority = ranked[0][0] if len(ranked[0][1]) > len(ranked[1][1]) else None
    return Finding(
        code,
        f"{what} differs across the {sum(len(v) for v in values.values())} nodes of {pool}",
        "nodes of one pool run the same images; a node that differs fills its disk or"
        " cancels pulls where its neighbours do not",
        (
            "roll one value out to the pool: `ansible-playbook deploy/ansible/playbook.yml -e"
            " @settings.yml` (deploy/ansible/README.md), or per node `mlnode apply`"
            if code == "D403"
            else "upgrade the pool's nodes to one version"
        ),
        evidence=tuple(
            f"{value}: {len(names)} node(s)"
            + ("" if value == majority else " — " + ", ".join(sorted(names)[:10]))
            for value, names in ranked
        ),
        subject=what,
    )


def fleet_findings(
    reports: Sequence[NodeReport], *, top: int = 10
) -> tuple[list[Finding], tuple[FleetImage, ...]]:
    out: list[Finding] = []
    risk = _at_risk(reports)
    if risk is not None:
        out.append(risk)
    dominant, finding = _dominant(reports, top)
    if finding is not None:
        out.append(finding)
    out.extend(_pool_differences(reports))
    return out, dominant
