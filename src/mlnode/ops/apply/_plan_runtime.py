"""Plan steps for the runtime's pull deadline: containerd's config.toml, CRI-O's drop-in."""

from __future__ import annotations

from mlnode.knowledge.placement import Placement
from mlnode.node import CONTAINERD_CONFIG, CRIO_DIR
from mlnode.ops.apply._staging import Staging

__all__ = ["plan_containerd", "plan_crio"]


def plan_containerd(staging: Staging, placement: Placement) -> bool:
    """Stage containerd's file; True when it changes (containerd must restart)."""
    from mlnode.formats.containerd import merge_containerd, read_containerd, render_containerd

    names = {pv.row.name for pv in placement.runtime_values}
    target = CONTAINERD_CONFIG
    # An imported file overrides the main one: edit the last file that already sets a key.
    for path in staging.layout.containerd_files:
        text = staging.current(path)
        if text is None:
            continue
        if any(v.name in names for v in read_containerd(path, text).runtime_values):
            target = path
    text = staging.current(target)
    merged = (
        render_containerd(placement) if text is None else merge_containerd(text, target, placement)
    )
    staging.stage(target, merged, "containerd image settings", "containerd")
    return merged != text


def plan_crio(staging: Staging, placement: Placement) -> bool:
    """Stage CRI-O's drop-in (or the later drop-in that would win); True when it changes."""
    from mlnode.formats.crio import DROPIN_SUGGESTED_PATH, merge_crio, read_crio, render_crio

    names = {pv.row.name for pv in placement.runtime_values}
    target = DROPIN_SUGGESTED_PATH
    for path in staging.layout.crio_files:
        text = staging.current(path)
        if text is None or (path <= target and path.startswith(CRIO_DIR + "/")):
            continue
        if path.startswith(CRIO_DIR + "/") and any(
            v.name in names for v in read_crio(path, text).runtime_values
        ):
            target = path  # it sorts after ours and would win: edit it instead
            staging.warnings.append(f"{path} sorts after {DROPIN_SUGGESTED_PATH}: edited in place")
    text = staging.current(target)
    merged = render_crio(placement) if text is None else merge_crio(text, target, placement)
    staging.stage(target, merged, "CRI-O image settings drop-in", "crio")
    return merged != text
