""":func:`apply_settings`: ``mlnode apply`` from a node root and the operator's settings.

The one entry point the CLI calls: read the node's layout, resolve the settings with the
node's versions as defaults, plan, pass the lint gate, note interrupted earlier applies,
and — unless it is a dry run or nothing changes — carry the plan out, restarting and
verifying through ``services`` or, without one, only writing the files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mlnode.node import host_path, read_text
from mlnode.ops.apply._execute import execute_apply
from mlnode.ops.apply._layout import detect_layout
from mlnode.ops.apply._lint_gate import lint_plan
from mlnode.ops.apply._model import ApplyPlan, ApplyRefused, NodeLayout
from mlnode.ops.apply._plan import plan_apply
from mlnode.ops.apply._plan_mirror import (
    MirrorRequest,
    containerd_config_path,
    hosts_targets,
    plan_mirror,
)
from mlnode.ops.apply._result import ApplyResult
from mlnode.ops.apply._rollback import interrupted_backups
from mlnode.ops.services import RecordingServiceManager, ServiceManager
from mlnode.ops.verify import (
    DEFAULT_HEALTHZ_URL,
    ConfigzSource,
    RuntimeConfigSource,
    UrlConfigzSource,
    Verifier,
    containerd_config_dump,
    crio_config_dump,
    kubectl_configz,
)
from mlnode.planning.settings_input import SettingsSources, resolve_settings
from mlnode.versions import RuntimeKind, parse_kubernetes_version, parse_runtime

__all__ = [
    "VerifyOptions",
    "apply_mirror",
    "apply_settings",
    "plan_node_apply",
    "plan_node_mirror",
]


@dataclass(frozen=True)
class VerifyOptions:
    """Where verification reads live values: healthz, and configz by URL or via kubectl."""

    healthz_url: str = DEFAULT_HEALTHZ_URL
    configz_url: str | None = None
    node_name: str | None = None
    kubectl: str = "kubectl"


def _with_note(plan: ApplyPlan, note: str) -> ApplyPlan:
    return dataclasses.replace(plan, notes=(*plan.notes, note))


def plan_node_apply(node: Path, sources: SettingsSources, *, root: Path) -> ApplyPlan:
    """The node's layout and the edits that put the settings into it, lint-checked.

    ``node`` is the resolved root the files are read under; ``root`` is the root as the
    operator gave it, for the rollback command a note suggests.
    """
    k8s_opt = sources.kubernetes_version
    rt_opt = sources.runtime
    layout = detect_layout(
        node,
        kubernetes_version=parse_kubernetes_version(k8s_opt) if k8s_opt else None,
        runtime=parse_runtime(rt_opt) if rt_opt else None,
    )
    # Versions default to what the node's binaries report.
    si = resolve_settings(
        sources,
        default_kubernetes_version=layout.kubernetes_version,
        default_runtime=layout.runtime,
    )
    plan = _refused_by_lint(plan_apply(layout, si.settings, si.kubernetes_version, si.runtime))
    for b in interrupted_backups(node):
        plan = _with_note(
            plan,
            f"an earlier apply was interrupted (backup {b.id}); `mlnode rollback "
            f"--root {root} --backup {b.id}` restores the files it had backed up",
        )
    return plan


def _refused_by_lint(plan: ApplyPlan) -> ApplyPlan:
    errors = lint_plan(plan)
    if errors:
        raise ApplyRefused(
            "refusing to apply: the files would not pass lint (nothing written): "
            + " | ".join(errors)
        )
    return plan


def _with_mirror_files(layout: NodeLayout, request: MirrorRequest) -> NodeLayout:
    """The layout with every hosts.toml (and CRI-O drop-in) the mirror plan may edit read
    in; a path that would lead out of the root is refused here (RootEscape), before any
    plan is shown."""
    from mlnode.formats.containerd import DEFAULT_HOSTS_DIR, config_path_roots
    from mlnode.formats.crio_mirror import CRIO_MIRROR_DROPIN
    from mlnode.knowledge.table import hosts_config_path

    files = dict(layout.files)
    wanted: list[str] = []
    if layout.runtime.kind is RuntimeKind.CONTAINERD and layout.runtime.version is not None:
        from mlnode.formats.containerd import read_containerd

        docs = [
            read_containerd(p, t)
            for p in layout.containerd_files
            if (t := layout.files.get(p)) is not None
        ]
        value, _ = containerd_config_path(docs)
        roots = (
            config_path_roots(value)
            or config_path_roots(hosts_config_path(layout.runtime.version).default)
            or [DEFAULT_HOSTS_DIR]
        )
        for ns in request.registries or ("_default",):
            wanted += hosts_targets(roots, ns)
    elif layout.runtime.kind is RuntimeKind.CRIO:
        wanted.append(CRIO_MIRROR_DROPIN)
    for p in wanted:
        host_path(layout.root, p)  # a hosts.toml linked out of the root: refused, as apply would
        if p not in files:
            files[p] = read_text(layout.root, p, strict=True)
    return dataclasses.replace(layout, files=files)


def plan_node_mirror(
    node: Path,
    request: MirrorRequest,
    *,
    kubernetes_version: str | None = None,
    runtime: str | None = None,
) -> ApplyPlan:
    """The node's layout and the edits that wire it to the mirror, lint-checked."""
    layout = detect_layout(
        node,
        kubernetes_version=parse_kubernetes_version(kubernetes_version)
        if kubernetes_version
        else None,
        runtime=parse_runtime(runtime) if runtime else None,
    )
    return _refused_by_lint(plan_mirror(_with_mirror_files(layout, request), request))


def _verifier(
    services: ServiceManager, opts: VerifyOptions, node: Path, layout: NodeLayout
) -> Verifier:
    configz: ConfigzSource | None = None
    if opts.configz_url:
        configz = UrlConfigzSource(opts.configz_url)
    elif opts.node_name:
        configz = kubectl_configz(opts.node_name, kubectl=opts.kubectl)
    binary = str(host_path(node, layout.runtime_binary)) if layout.runtime_binary else None
    runtime_config: RuntimeConfigSource | None = None
    if layout.runtime.kind is RuntimeKind.CONTAINERD:
        runtime_config = containerd_config_dump(containerd=binary or "containerd")
    elif layout.runtime.kind is RuntimeKind.CRIO:
        runtime_config = crio_config_dump(crio=binary or "crio")
    return Verifier(
        services, healthz_url=opts.healthz_url, configz=configz, runtime_config=runtime_config
    )


def _execute(
    plan: ApplyPlan,
    node: Path,
    *,
    services: ServiceManager | None,
    why_not: str | None,
    timeout_seconds: float,
    verify: VerifyOptions,
) -> ApplyResult:
    if services is not None:
        verifier = _verifier(services, verify, node, plan.layout)
        return execute_apply(
            plan, services=services, verifier=verifier, timeout_seconds=timeout_seconds
        )
    result = execute_apply(
        plan, services=RecordingServiceManager(), restart=False, timeout_seconds=timeout_seconds
    )
    if why_not:
        result.plan = _with_note(plan, why_not)
    return result


def apply_settings(
    node: Path,
    sources: SettingsSources,
    *,
    root: Path,
    dry_run: bool,
    services: ServiceManager | None,
    why_not: str | None = None,
    timeout_seconds: float,
    verify: VerifyOptions,
) -> ApplyResult:
    """Plan (:func:`plan_node_apply`) and, unless ``dry_run`` or nothing changes, apply.

    ``services`` None writes the files and restarts nothing; ``why_not`` is then noted
    in the plan. A dry run, or a plan with no changes, returns status ``dry-run`` or
    ``no-change`` and touches nothing; a dry run whose writes would leave the root raises
    :class:`~mlnode.node.RootEscape`, like the apply would.
    """
    plan = plan_node_apply(node, sources, root=root)
    return _run_plan(
        plan,
        node,
        dry_run=dry_run,
        services=services,
        why_not=why_not,
        timeout_seconds=timeout_seconds,
        verify=verify,
    )


def apply_mirror(
    node: Path,
    request: MirrorRequest,
    *,
    root: Path,
    dry_run: bool,
    services: ServiceManager | None,
    why_not: str | None = None,
    timeout_seconds: float,
    verify: VerifyOptions,
    kubernetes_version: str | None = None,
    runtime: str | None = None,
) -> ApplyResult:
    """``mlnode apply --mirror``: :func:`plan_node_mirror`, then as :func:`apply_settings`."""
    plan = plan_node_mirror(node, request, kubernetes_version=kubernetes_version, runtime=runtime)
    for b in interrupted_backups(node):
        plan = _with_note(
            plan,
            f"an earlier apply was interrupted (backup {b.id}); `mlnode rollback "
            f"--root {root} --backup {b.id}` restores the files it had backed up",
        )
    return _run_plan(
        plan,
        node,
        dry_run=dry_run,
        services=services,
        why_not=why_not,
        timeout_seconds=timeout_seconds,
        verify=verify,
    )


def _run_plan(
    plan: ApplyPlan,
    node: Path,
    *,
    dry_run: bool,
    services: ServiceManager | None,
    why_not: str | None,
    timeout_seconds: float,
    verify: VerifyOptions,
) -> ApplyResult:
    if dry_run:  # shows what apply would do, so refuses what apply would refuse (RootEscape)
        for e in plan.edits:
            host_path(plan.layout.root, e.path)
    if dry_run or plan.no_changes:
        return ApplyResult(plan, "dry-run" if dry_run and not plan.no_changes else "no-change")
    return _execute(
        plan,
        node,
        services=services,
        why_not=why_not,
        timeout_seconds=timeout_seconds,
        verify=verify,
    )
