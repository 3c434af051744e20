""":func:`plan_apply`: where each setting goes on this node, as file edits. Pure.

The steps, each in its own function: kubelet fields (:mod:`._plan_kubelet`), kubelet flags
in the EnvironmentFiles, warnings for flags in the unit itself, the runtime's files
(:mod:`._plan_runtime`), notes for installers that re-render files, and the service actions
and expectations that follow from which files changed.
"""

from __future__ import annotations

from mlnode.errors import UsageError
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import kubelet_setting_by_flag
from mlnode.ops.apply._model import (
    KUBEADM_CONFIG_DIR,
    ApplyPlan,
    ApplyRefused,
    FileEdit,
    LayoutKind,
    NodeLayout,
)
from mlnode.ops.apply._plan_kubelet import (
    KubeletPlan,
    plan_kubelet_fields,
    plan_kubelet_flags,
    warn_unit_flags,
)
from mlnode.ops.apply._plan_runtime import plan_containerd, plan_crio
from mlnode.ops.apply._staging import Staging
from mlnode.ops.services import ActionKind, ServiceAction
from mlnode.ops.verify import Expectations, RuntimeExpectation
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = ["plan_apply"]


def _plan_runtime(staging: Staging, placement: Placement, runtime: RuntimeSpec) -> bool:
    if not placement.runtime_values:
        return False
    if runtime.kind is RuntimeKind.CONTAINERD:
        return plan_containerd(staging, placement)
    if runtime.kind is RuntimeKind.CRIO:
        return plan_crio(staging, placement)
    raise ApplyRefused(
        f"{runtime.kind.value} settings are its own service's flags; mlnode apply does "
        "not edit them (see `mlnode render`)"
    )


def _installer_notes(staging: Staging, kubelet: KubeletPlan) -> None:
    layout = staging.layout
    if layout.kind is LayoutKind.KUBESPRAY and staging.new:
        staging.notes.append(
            "kubespray re-renders /etc/kubernetes/kubelet.env and kubelet-config.yaml on its "
            "next run: put these settings in the inventory too (`mlnode render --format "
            "kubespray ...`)"
            + (
                f", and add --config-dir={KUBEADM_CONFIG_DIR} to kubelet_custom_flags"
                if "config-dir" in kubelet.extra_flags
                else ""
            )
        )
    if layout.kind in (LayoutKind.KUBEADM_DEB, LayoutKind.KUBEADM_RPM) and staging.new:
        staging.notes.append(
            "kubeadm's cluster-wide kubelet config (ConfigMap kube-system/kubelet-config) is "
            "unchanged; new nodes get it, not these values (docs/apply.md)"
        )


def _actions(
    edits: tuple[FileEdit, ...], runtime: RuntimeSpec, runtime_changed: bool
) -> tuple[list[ServiceAction], list[str]]:
    actions: list[ServiceAction] = []
    restarted: list[str] = []
    if edits:
        actions.append(
            ServiceAction(ActionKind.DAEMON_RELOAD, None, "re-read units and their drop-ins")
        )
    if runtime_changed:
        unit = runtime.kind.value
        actions.append(
            ServiceAction(ActionKind.RESTART, unit, f"{unit} reads its config only at start")
        )
        restarted.append(unit)
    if any(e.unit == "kubelet" for e in edits):
        actions.append(
            ServiceAction(
                ActionKind.RESTART, "kubelet", "the kubelet reads flags and config at start"
            )
        )
        restarted.append("kubelet")
    return actions, restarted


def _expectations(
    placement: Placement,
    kubelet: KubeletPlan,
    k8s: Version,
    restarted: list[str],
    runtime_changed: bool,
) -> Expectations:
    kubelet_changed = "kubelet" in restarted
    expect_fields = dict(placement.kubelet_fields)
    for flag, value in kubelet.placement.kubelet_flags.items():
        row = kubelet_setting_by_flag(flag)
        if row is not None and row.field and row.field_span.contains(k8s):
            expect_fields[row.field] = placement.kubelet_fields.get(row.field, value)
    return Expectations(
        units=tuple(restarted),
        check_healthz=kubelet_changed,
        kubelet_fields=expect_fields if kubelet_changed else {},
        runtime_values=tuple(
            RuntimeExpectation(pv.row.table, pv.row.name, pv.value)
            for pv in placement.runtime_values
        )
        if runtime_changed
        else (),
    )


def plan_apply(
    layout: NodeLayout,
    settings: ImageSettings,
    k8s: Version | None = None,
    runtime: RuntimeSpec | None = None,
) -> ApplyPlan:
    """Where each setting goes on this node, as file edits and service actions. Pure.

    Raises :class:`ApplyRefused` when a setting has no home here (the placement's
    refusals) or the layout offers no durable place for it.
    """
    k8s = k8s or layout.kubernetes_version
    runtime = runtime or layout.runtime
    if settings.is_empty():
        raise UsageError("no settings to apply")
    placement = place(settings, k8s, runtime)
    if placement.refusals:
        raise ApplyRefused(
            "cannot apply: " + "; ".join(f"{r.key}: {r.reason}" for r in placement.refusals)
        )
    staging = Staging(layout, warnings=list(placement.warnings))
    kubelet = plan_kubelet_fields(staging, placement, settings, k8s)
    removed = plan_kubelet_flags(staging, placement, kubelet, k8s)
    ours = {**kubelet.placement.kubelet_flags, **kubelet.extra_flags}
    warn_unit_flags(staging, placement, ours)
    runtime_changed = _plan_runtime(staging, placement, runtime)
    _installer_notes(staging, kubelet)

    edits = tuple(
        FileEdit(p, layout.files.get(p), t, staging.reasons[p], staging.units[p])
        for p, t in staging.new.items()
    )
    actions, restarted = _actions(edits, runtime, runtime_changed)
    return ApplyPlan(
        layout=layout,
        settings=settings,
        placement=placement,
        edits=edits,
        actions=tuple(actions),
        removed_flags=tuple(removed),
        expectations=_expectations(placement, kubelet, k8s, restarted, runtime_changed),
        warnings=tuple(dict.fromkeys(staging.warnings)),
        notes=tuple(staging.notes),
    )
