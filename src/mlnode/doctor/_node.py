"""``mlnode doctor`` on one node: gather what the node can tell, then analyse it.

Every source is optional and reported when it cannot be read (one line in
``NodeReport.errors`` and an info finding), never raised — except a node file that does not
parse, which is bad input (exit 2, file:line) as in ``mlnode lint``. What is read:

    source                          how                                   findings
    ──────────────────────────────  ────────────────────────────────────  ─────────────────
    the node's files under --root   mlnode.node discovery + lint          lint codes
    versions                        kubelet/containerd/crio --version     I301 (lint)
    image filesystem                statvfs (ops.inspect), st_dev         D101–D108
    runtime (when a socket is       CRI images and sizes, containerd      D103, D207, D208,
    given, or on / the default)     ingests sampled twice, manifests      D306, D311
    the node mirror                 GET /mlnode/v1/status                 D304
    the agent                       GET /mlnode/v1/agent/status           D305
    the kubelet's live config       configz through the API server        D302, D303
    the node's Events               the API server's Event list           D106, D107,
                                    (classified with the node's deadline) D201–D211, D407
    the journal                     journalctl -o json (or a saved file)  D205, D307–D310
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlnode.doctor._disk import disk_findings, footprint_bytes, headroom_bytes
from mlnode.doctor._holders import HeldImage, holder_findings
from mlnode.doctor._model import Finding, ImageFs, NodeReport, PullRow, Setting
from mlnode.doctor._pull_texts import recommended_deadline
from mlnode.doctor._settings import (
    apply_line,
    configured_deadline,
    configz_findings,
    lint_findings,
    lint_node,
    pull_deadline,
    runtime_deadline_default,
    thresholds,
)
from mlnode.errors import InputError, KubeError
from mlnode.lint.engine import LintReport
from mlnode.node import (
    Runner,
    discover_node_files,
    read_kubelet_command,
    read_path,
    read_text,
    run_command,
)
from mlnode.ops.inspect import Inspection, StatVfs, inspect_node
from mlnode.ops.mirror_status import MirrorStatus, MirrorStatusError, fetch_status
from mlnode.ports import ClusterReader

__all__ = ["AGENT_STATUS_PATH", "NodeRequest", "diagnose_node", "wired_mirrors"]

AGENT_STATUS_PATH = "/mlnode/v1/agent/status"
DEFAULT_AGENT_URL = "http://127.0.0.1:9478"  # `mlnode agent status`'s default
AGENT_UNIT = "mlnode-agent.service"  # deploy/systemd
# lint codes for a flag the kubelet refuses (their fix is the apply line)
_FLAG_CODES = frozenset({"E101", "E102", "E112"})
_HTTP_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class NodeRequest:
    root: Path = Path("/")
    node_name: str | None = None  # the Node's name (configz); default: the host name
    runtime_endpoint: str | None = None
    namespace: str = "k8s.io"
    sample_seconds: float = 2.0
    stall_after_seconds: float = 30.0
    mirror_url: str | None = None
    agent_url: str | None = None
    journal_text: str | None = None  # saved `journalctl -o json` or short-iso lines
    read_journal: bool = True
    largest_image: tuple[str, int] | None = None  # declared (ref, footprint bytes)
    cluster: ClusterReader | None = None  # for the kubelet's configz
    min_gzip_image_bytes: int = 1 << 30


@dataclass
class _Acc:
    """What the gathering steps add up (mutable while gathering; frozen into NodeReport)."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pulls: tuple[PullRow, ...] = ()
    largest: tuple[str, int, bool] | None = None
    images_count: int | None = None
    mirror: MirrorStatus | None = None
    held: tuple[HeldImage, ...] = ()
    apply_command: str | None = None  # the node's `mlnode apply --from-kubelet-args` line


def _imagefs(root: Path, seen: Inspection) -> ImageFs | None:
    if seen.capacity_bytes is None or seen.available_bytes is None:
        return None
    nodefs: bool | None = None
    if seen.measured_dir is not None:
        kubelet_dir = read_path(root, "/var/lib/kubelet")
        while (
            not kubelet_dir.exists() and kubelet_dir != root and kubelet_dir.parent != kubelet_dir
        ):
            kubelet_dir = kubelet_dir.parent
        try:
            nodefs = kubelet_dir.stat().st_dev == seen.measured_dir.stat().st_dev
        except OSError:
            nodefs = None
    return ImageFs(
        capacity_bytes=seen.capacity_bytes,
        available_bytes=seen.available_bytes,
        path=str(seen.image_dir) if seen.image_dir else None,
        shared_with_os=seen.shared_with_os,
        shared_with_nodefs=nodefs,
        source=seen.notes.get("image_disk", "statvfs"),
    )


def _restart_command(root: Path) -> str:
    if root == Path("/"):
        return "systemctl restart kubelet"
    return f"restart the kubelet on the node (its files are {root})"


def _configz(req: NodeRequest, node: str, acc: _Acc, lint: LintReport) -> None:
    if req.cluster is None:
        return
    try:
        doc = req.cluster.node_proxy(node, "configz", timeout_seconds=10.0)
    except KubeError as e:
        acc.errors.append(f"configz: {e}")
        acc.findings.append(
            Finding(
                "D303",
                f"the kubelet's live config could not be read: {e}",
                "without it the doctor cannot tell whether the kubelet runs with its files' values",
                "check RBAC: get nodes/proxy (deploy/kubernetes/doctor/)",
                node=node,
            )
        )
        return
    acc.findings.extend(
        configz_findings(node, lint, doc, restart_command=_restart_command(req.root))
    )


def _events(
    req: NodeRequest,
    node: str,
    acc: _Acc,
    seen: Inspection,
    deadline: Setting | None,
    configured_seconds: float | None,
) -> None:
    """The node's Events (failed pulls, GC failures), classified with the deadline the
    node's own files give its runtime (which the cluster doctor cannot see)."""
    if req.cluster is None:
        return
    from mlnode.doctor._classify import event_findings
    from mlnode.doctor._events import parse_event

    try:
        raw = req.cluster.list_events()
    except KubeError as e:
        acc.errors.append(f"events: {e}")
        return
    events = [ev for ev in (parse_event(o) for o in raw) if ev is not None and ev.node == node]
    seconds = deadline.value if deadline is not None and isinstance(deadline.value, float) else None
    acc.findings.extend(
        event_findings(
            node,
            events,
            runtime=seen.runtime,
            # None: the runtime keeps its version's default, which the classifier looks up
            deadline_seconds=configured_seconds,
            deadline_source=deadline.source if configured_seconds is not None and deadline else "",
            recommended_deadline_seconds=recommended_deadline(seconds),
        )
    )


def wired_mirrors(root: Path) -> list[str]:
    """The http loopback first hosts of the node's hosts.toml files: the node mirror the
    node is wired to (``mlnode apply --mirror`` puts it first)."""
    from mlnode.errors import InputError
    from mlnode.formats.node_paths import NodeFileRole
    from mlnode.ops.mirror_status import loopback_http_base
    from mlnode.registry import parse_hosts_toml

    out: list[str] = []
    for path in discover_node_files(root).files(NodeFileRole.CONTAINERD_HOSTS):
        try:
            hosts = parse_hosts_toml(path.read_text(), namespace=path.parent.name, path=path)
        except (OSError, UnicodeDecodeError, InputError):
            continue  # lint reports it
        base = loopback_http_base(hosts[0].scheme, hosts[0].host) if hosts else None
        if base is not None and base not in out:
            out.append(base)
    return out


def _mirror(req: NodeRequest, node: str, acc: _Acc) -> None:
    urls = [req.mirror_url] if req.mirror_url else []
    if not urls and req.root == Path("/"):
        urls = wired_mirrors(req.root)
    for url in urls:
        try:
            acc.mirror = fetch_status(url, timeout_seconds=_HTTP_TIMEOUT_SECONDS)
            continue
        except MirrorStatusError as e:
            problem = str(e)
        acc.errors.append(f"mirror: {problem}")
        acc.findings.append(
            Finding(
                "D304",
                f"the node mirror at {url} does not answer",
                "containerd falls back to the next host in hosts.toml (the registry): pulls"
                " lose the mirror's ranged, resumable fetch, and a cancelled pull starts at"
                " byte 0 again",
                "see the agent's log (`journalctl -u mlnode-agent`, or its DaemonSet pod's);"
                f" watch it: `mlnode progress --mirror {url}`",
                evidence=(problem,),
                node=node,
            )
        )


def _agent_installed(root: Path) -> bool:
    return any(
        read_path(root, f"{d}/{AGENT_UNIT}").is_file()
        for d in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
    )


def _agent(req: NodeRequest, node: str, acc: _Acc) -> None:
    base = req.agent_url
    if base is None and req.root == Path("/") and _agent_installed(req.root):
        base = DEFAULT_AGENT_URL
    if base is None:
        return
    url = base.rstrip("/") + AGENT_STATUS_PATH
    problem: str | None = None
    try:
        r = httpx.get(url, timeout=_HTTP_TIMEOUT_SECONDS, trust_env=False)
        doc = r.json() if r.status_code == 200 else None
        if doc is None:
            problem = f"answered HTTP {r.status_code}"
        elif not isinstance(doc, dict) or doc.get("schema") != "mlnode.agent.status/v1":
            problem = "answered with something that is not mlnode.agent.status/v1"
        elif doc.get("ready") is not True:
            problem = f"not ready: {doc.get('not_ready_reason') or 'no reason given'}"
    except (httpx.HTTPError, ValueError) as e:
        problem = f"unreachable: {' '.join(str(e).split()) or type(e).__name__}"
    if problem is None:
        return
    acc.errors.append(f"agent: {problem}")
    acc.findings.append(
        Finding(
            "D305",
            f"the mlnode agent at {base} is {problem}",
            "nothing keeps headroom ahead of the kubelet's GC or keeps warm images present"
            " on this node meanwhile",
            "see its log: `journalctl -u mlnode-agent`; check its config: `mlnode agent"
            " --config FILE --check`",
            evidence=(url,),
            node=node,
        )
    )


def _journal(
    req: NodeRequest,
    node: str,
    acc: _Acc,
    seen: Inspection,
    deadline: Setting | None,
    runner: Runner,
) -> None:
    from mlnode.doctor._journal import JOURNAL_COMMAND, journal_findings, parse_journal

    text = req.journal_text
    if text is None:
        if not req.read_journal:
            return
        if req.root != Path("/"):
            acc.findings.append(
                Finding(
                    "D310",
                    "the journal was not read: --root is a copy of a node's files",
                    "the kubelet's and runtime's log lines about pulls and GC are not in it",
                    "on the node: `" + shlex.join(JOURNAL_COMMAND) + " > journal.json`, then"
                    " `mlnode doctor --root DIR --journal-file journal.json`",
                    node=node,
                )
            )
            return
        result = runner(JOURNAL_COMMAND)
        if result.returncode != 0:
            why = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            acc.errors.append(f"journal: {why}")
            acc.findings.append(
                Finding(
                    "D310",
                    f"the journal could not be read: {why}",
                    "the kubelet's and runtime's log lines about pulls and GC are not used",
                    "run as root, or as a member of the systemd-journal group",
                    node=node,
                )
            )
            return
        text = result.stdout
    seconds = deadline.value if deadline is not None and isinstance(deadline.value, float) else None
    # the journal says the kubelet does not start; when the files say why, their apply line
    flag_fix = acc.apply_command if any(f.code in _FLAG_CODES for f in acc.findings) else None
    acc.findings.extend(
        journal_findings(
            node,
            parse_journal(text),
            runtime=seen.runtime,
            deadline_seconds=seconds,
            kubelet_version=seen.kubelet_version,
            flag_fix_command=flag_fix,
        )
    )


def _node_name(root: Path) -> str:
    """What the kubelet names its Node: --hostname-override, else the host name (the
    tree's /etc/hostname under a --root that is not /)."""
    override = read_kubelet_command(root, strict=False).flag("hostname-override")
    if override:
        return override.strip().lower()
    if root != Path("/"):
        try:
            text = read_text(root, "/etc/hostname", strict=False)
        except InputError:  # a symlink loop or one that leaves the root: not a name
            text = None
        if text and text.strip():
            return text.strip().splitlines()[0].lower()
        return root.name
    return os.uname().nodename.lower()


def diagnose_node(
    req: NodeRequest,
    *,
    runner: Runner = run_command,
    statvfs: StatVfs = os.statvfs,
) -> NodeReport:
    """Gather and analyse; raises only for bad input (a node file that does not parse)."""
    from mlnode.doctor._node_runtime import gather_runtime

    root = req.root
    node = req.node_name or _node_name(root)
    seen = inspect_node(root, runner=runner, statvfs=statvfs)
    acc = _Acc()
    deadline: Setting | None = None
    limits: dict[str, Setting] = {}
    lint = None
    if seen.kubelet_version is not None and seen.runtime is not None:
        lint = lint_node(root, seen.kubelet_version, seen.runtime)
        acc.apply_command = apply_line(root, read_kubelet_command(root, strict=False))
        acc.findings.extend(lint_findings(lint, node=node, apply_command=acc.apply_command))
        limits = thresholds(lint, seen.kubelet_version)
        deadline = pull_deadline(lint, seen.runtime)
    else:
        missing = " and ".join(
            n
            for n, v in (("kubelet", seen.kubelet_version), ("runtime", seen.runtime))
            if v is None
        )
        acc.errors.append(f"versions: no {missing} binary answered --version under {root}")
        if seen.runtime is not None:
            value, source = runtime_deadline_default(seen.runtime)
            deadline = Setting(value, source + " (the runtime's config not read: no kubelet)")
    _mirror(req, node, acc)
    gather_runtime(req, node, acc, deadline, seen)
    if lint is not None:
        _configz(req, node, acc, lint)
    _events(req, node, acc, seen, deadline, configured_deadline(lint) if lint else None)
    _agent(req, node, acc)
    _journal(req, node, acc, seen, deadline, runner)
    fs = _imagefs(root, seen)
    if req.largest_image is not None:
        acc.largest = (req.largest_image[0], req.largest_image[1], False)
    if fs is not None:
        acc.findings.extend(disk_findings(node, fs, limits, largest=acc.largest))
    acc.findings.extend(holder_findings(node, acc.held, fs, limits))
    return NodeReport(
        name=node,
        findings=_ordered(acc.findings),
        kubelet_version=str(seen.kubelet_version) if seen.kubelet_version else None,
        runtime=str(seen.runtime) if seen.runtime else None,
        pull_deadline=deadline,
        imagefs=fs,
        thresholds=limits,
        largest_image_ref=acc.largest[0] if acc.largest else None,
        largest_image_bytes=(
            footprint_bytes(acc.largest[1], compressed=acc.largest[2]) if acc.largest else None
        ),
        headroom_bytes=headroom_bytes(fs, limits) if fs is not None else None,
        images_count=acc.images_count,
        pulls=acc.pulls,
        errors=tuple(acc.errors),
    )


_ORDER = {"error": 0, "warning": 1, "info": 2}


def _ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (_ORDER[f.severity.value], f.code)))
