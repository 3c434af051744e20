"""Plan steps for the kubelet: where its fields go, and the flags in its EnvironmentFiles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mlnode.knowledge.flag_removal import (
    APPLY_REMOVALS,
    FlagRemovalReason,
    kubelet_flag_removals,
    removed_flags,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, flag_value
from mlnode.knowledge.table import config_dir_support, kubelet_setting_by_field
from mlnode.ops.apply._model import (
    DROPIN_NAME,
    KUBEADM_CONFIG_DIR,
    ApplyRefused,
    LayoutKind,
    RemovedFlag,
)
from mlnode.ops.apply._staging import Staging
from mlnode.versions import Version

__all__ = [
    "KubeletPlan",
    "flag_removals",
    "plan_kubelet_fields",
    "plan_kubelet_flags",
    "warn_unit_flags",
]

_KUBEADM_CONFIG = "/var/lib/kubelet/config.yaml"
# The first version whose --config-dir mlnode writes to (1.28's mergo merge is unsafe).
_DROPIN_FROM = Version(1, 29)


@dataclass
class KubeletPlan:
    """What the field step decided: the placement whose flags go in the args file (fields
    with a flag moved there on old kubeadm nodes) and flags mlnode adds itself."""

    placement: Placement
    extra_flags: dict[str, str] = field(default_factory=dict)


def _flags_in(path: str, text: str) -> list[tuple[str, str]]:
    from mlnode.formats.envfile import read_env

    return [(f.name, f.text) for f in read_env(path, text).flags]


def _as_flags(
    placement: Placement, settings: ImageSettings, k8s: Version
) -> tuple[Placement, list[str]]:
    """Move fields that have a kubelet flag in ``k8s`` into flags; returns the rest's names."""
    wanted = settings.set_fields()
    flags = dict(placement.kubelet_flags)
    fields: dict[str, Any] = {}
    for name, value in placement.kubelet_fields.items():
        row = kubelet_setting_by_field(name)
        if row is not None and row.flag and row.flag_span.contains(k8s):
            flags[row.flag] = flag_value(row.kind, wanted[row.key])
        else:
            fields[name] = value
    return dataclasses.replace(placement, kubelet_fields=fields, kubelet_flags=flags), list(fields)


def _append_assignment(text: str | None, name: str, value: str, comment: str) -> str:
    base = text or ""
    if base and not base.endswith("\n"):
        base += "\n"
    return f"{base}# {comment}\n{name}={value}\n"


def _fields_as_flags(
    staging: Staging, placement: Placement, settings: ImageSettings, k8s: Version
) -> Placement:
    """kubeadm without a usable --config-dir: flags in the args file, the rest in config.yaml."""
    from mlnode.formats.kubelet_config import merge_kubelet_config

    layout = staging.layout
    kubelet_placement, rest = _as_flags(placement, settings, k8s)
    if rest:
        cfg = layout.config_file or _KUBEADM_CONFIG
        text = staging.current(cfg)
        if text is None:
            raise ApplyRefused(f"{', '.join(rest)} need the kubelet config file {cfg}")
        only_rest = dataclasses.replace(kubelet_placement, kubelet_flags={})
        staging.stage(cfg, merge_kubelet_config(text, cfg, only_rest), "fields without a flag")
        staging.warnings.append(
            f"{', '.join(rest)} written to {cfg}, which `kubeadm upgrade` rewrites from "
            "the kube-system/kubelet-config ConfigMap: put them there too "
            "(docs/apply.md, 'kubeadm cluster-wide')"
        )
    staging.notes.append(
        f"kubelet {k8s} has no usable --config-dir: the settings are flags in "
        f"{layout.args_variable} of {layout.args_file} (kubeadm never rewrites it; "
        "flags override the config file)"
    )
    return kubelet_placement


def _stage_dropin(staging: Staging, placement: Placement, dropin_path: str, k8s: Version) -> None:
    from mlnode.formats.kubelet_config import merge_kubelet_config, render_kubelet_dropin

    layout = staging.layout
    existing = staging.current(dropin_path)
    text = (
        render_kubelet_dropin(placement, path=dropin_path)
        if existing is None
        else merge_kubelet_config(existing, dropin_path, placement)
    )
    staging.stage(dropin_path, text, "kubelet image settings drop-in (--config-dir)")
    support = config_dir_support(k8s)
    if support.env_required and support.env_required not in layout.environment:
        if not layout.args_file:
            raise ApplyRefused(
                f"kubelet {k8s} reads --config-dir only with {support.env_required} set, "
                "and the unit has no EnvironmentFile to set it in"
            )
        staging.stage(
            layout.args_file,
            _append_assignment(
                staging.current(layout.args_file),
                support.env_required,
                "true",
                f"mlnode: kubelet {k8s.major}.{k8s.minor} reads --config-dir only with this set",
            ),
            f"{support.env_required} for --config-dir",
        )


def plan_kubelet_fields(
    staging: Staging, placement: Placement, settings: ImageSettings, k8s: Version
) -> KubeletPlan:
    """Step 1: KubeletConfiguration fields go to a drop-in, the config file or flags."""
    from mlnode.formats.kubelet_config import merge_kubelet_config

    layout = staging.layout
    out = KubeletPlan(placement)
    if not (placement.kubelet_fields or placement.feature_gates):
        return out
    use_dropins = config_dir_support(k8s).supported and k8s.at_least(_DROPIN_FROM)
    is_kubeadm = layout.kind in (LayoutKind.KUBEADM_DEB, LayoutKind.KUBEADM_RPM)
    dropin_path: str | None = None
    if use_dropins and layout.config_dir:
        dropin_path = f"{layout.config_dir.rstrip('/')}/{DROPIN_NAME}"
    elif use_dropins and layout.args_file and layout.args_variable:
        dropin_path = f"{KUBEADM_CONFIG_DIR}/{DROPIN_NAME}"
        out.extra_flags["config-dir"] = KUBEADM_CONFIG_DIR
    elif is_kubeadm and layout.args_file:
        out.placement = _fields_as_flags(staging, placement, settings, k8s)
    elif layout.config_file:
        cfg = layout.config_file
        text = staging.current(cfg)
        if text is None:
            raise ApplyRefused(f"the kubelet's --config file {cfg} does not exist")
        staging.stage(cfg, merge_kubelet_config(text, cfg, placement), "kubelet config fields")
    else:
        raise ApplyRefused(
            "the kubelet unit passes neither --config-dir nor --config, and has no "
            "EnvironmentFile for flags: nowhere durable to put KubeletConfiguration fields"
        )
    if dropin_path is not None:
        _stage_dropin(staging, placement, dropin_path, k8s)
    return out


def flag_removals(placement: Placement, ours: dict[str, str]) -> dict[str, FlagRemovalReason]:
    """Apply's scope of the one flag-removal rule (:mod:`mlnode.knowledge.flag_removal`):
    flags the kubelet no longer has, and flags that would override a field we set wherever
    it is written; never a flag mlnode sets itself."""
    return kubelet_flag_removals(placement, APPLY_REMOVALS, keep=ours)


def _why_removed(
    name: str, removals: dict[str, FlagRemovalReason], k8s: Version, args: str | None
) -> str:
    why = removals.get(name)
    if why is FlagRemovalReason.REMOVED:
        row = removed_flags(k8s).get(name)
        since = str(row.removed_in) if row is not None else "?"
        return f"removed from the kubelet in {since}: it would stop the kubelet"
    if why is FlagRemovalReason.SHADOWS_CONFIG:
        return "a flag overrides the config file: it would shadow the new value"
    return f"mlnode sets it in {args}"


def plan_kubelet_flags(
    staging: Staging, placement: Placement, kubelet: KubeletPlan, k8s: Version
) -> list[RemovedFlag]:
    """Step 2: our flags in the args file; stale and overriding flags out of every
    EnvironmentFile (comments and the rest of each line kept)."""
    from mlnode.formats.envfile import merge_env

    layout = staging.layout
    ours = {**kubelet.placement.kubelet_flags, **kubelet.extra_flags}
    if ours and not (layout.args_file and layout.args_variable):
        raise ApplyRefused(
            "the kubelet unit reads no EnvironmentFile mlnode can put flags in "
            f"({', '.join('--' + f for f in ours)})"
        )
    set_placement = dataclasses.replace(kubelet.placement, kubelet_flags=ours)
    removals = flag_removals(placement, ours)
    no_flags = dataclasses.replace(placement, kubelet_flags={})
    removed: list[RemovedFlag] = []
    for path in dict.fromkeys([*layout.env_files, *filter(None, [layout.args_file])]):
        text = staging.current(path)
        is_target = path == layout.args_file
        if text is None and not (is_target and ours):
            continue
        before = _flags_in(path, text or "")
        drop = set(removals) | (set() if is_target else set(ours))
        merged = merge_env(
            text or "",
            path,
            set_placement if is_target else no_flags,
            variable=(layout.args_variable or "") if is_target else "__MLNODE_NONE__",
            remove_flags=frozenset(drop),
        )
        after = {name for name, _ in _flags_in(path, merged)}
        here = [
            RemovedFlag(path, written, _why_removed(name, removals, k8s, layout.args_file))
            for name, written in before
            if name not in after
        ]
        removed += here
        if merged != (text or ""):
            what = []
            if ours and is_target:
                what.append("set " + " ".join(f"--{k}" for k in ours))
            if here:
                what.append("remove stale or overriding flags")
            staging.stage(path, merged, "; ".join(what) or "kubelet flags")
    return removed


def warn_unit_flags(staging: Staging, placement: Placement, ours: dict[str, str]) -> None:
    """Flags written literally in the unit cannot be edited safely: say so."""
    from mlnode.formats.systemd_unit import read_systemd_unit

    layout = staging.layout
    bad = flag_removals(placement, ours)
    for uf in layout.unit_files:
        for f in read_systemd_unit(uf, layout.files.get(uf) or "").flags:
            if f.name in bad:
                staging.warnings.append(
                    f"{uf}: ExecStart= passes {f.text} itself; mlnode does not edit unit "
                    "command lines: remove it by hand"
                )
