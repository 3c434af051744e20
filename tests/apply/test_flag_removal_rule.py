"""render and apply decide which kubelet flags go through one function
(mlnode.knowledge.flag_removal); they differ only in the scope they pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnode.formats.render import FlagRemovalReason, flag_removals, removable_flags
from mlnode.knowledge import flag_removal
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import place
from mlnode.knowledge.table import RemovedFlag
from mlnode.ops.apply import detect_layout, plan_apply
from mlnode.versions import Version, parse_runtime

from .layouts import build_kubeadm

SETTINGS = ImageSettings(image_gc_low_threshold_percent=60)
ARGS = 'KUBELET_EXTRA_ARGS="--node-labels=gpu=a100 --registry-qps=5"\n'


def _removed_by_apply(root: Path) -> dict[str, str]:
    build_kubeadm(root, extra_args=ARGS)
    plan = plan_apply(detect_layout(root), SETTINGS)
    return {r.flag: r.reason for r in plan.removed_flags}


def test_a_rule_change_is_seen_by_render_and_apply(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement = place(SETTINGS, Version(1, 30, 2), parse_runtime("containerd@1.7.13"))
    assert "registry-qps" not in flag_removals(placement)

    # Pretend the kubelet dropped --registry-qps in 1.0: one edit to the one rule's data.
    gone = RemovedFlag("registry-qps", Version(1, 0), "test", "drop it", "test")
    monkeypatch.setattr(flag_removal, "REMOVED_FLAGS", (*flag_removal.REMOVED_FLAGS, gone))

    assert flag_removals(placement)["registry-qps"] is FlagRemovalReason.REMOVED
    assert "registry-qps" in removable_flags(placement)
    assert _removed_by_apply(root) == {
        "--registry-qps=5": "removed from the kubelet in 1.0: it would stop the kubelet"
    }


def test_without_the_change_apply_keeps_the_flag(root: Path) -> None:
    assert _removed_by_apply(root) == {}


def test_the_scopes_differ_where_documented() -> None:
    # A flag the kubelet dropped that is no image setting: apply removes it, render leaves it.
    p127 = place(SETTINGS, Version(1, 27), parse_runtime("containerd@1.7.13"))
    apply_scope = flag_removal.kubelet_flag_removals(p127, flag_removal.APPLY_REMOVALS)
    assert apply_scope["container-runtime"] is FlagRemovalReason.REMOVED
    assert "container-runtime" not in flag_removals(p127)
    # The pull deadline homed in containerd on 1.23: render takes the flag out, apply does
    # not (the 1.23 kubelet still starts with it).
    deadline = ImageSettings(image_pull_progress_deadline_seconds=1800.0)
    p123 = place(deadline, Version(1, 23), parse_runtime("containerd@1.7.13"))
    assert flag_removals(p123)["image-pull-progress-deadline"] is FlagRemovalReason.RUNTIME_HOME
    apply_123 = flag_removal.kubelet_flag_removals(p123, flag_removal.APPLY_REMOVALS)
    assert "image-pull-progress-deadline" not in apply_123
    # A flag the caller sets itself never goes.
    kept = flag_removal.kubelet_flag_removals(
        p127, flag_removal.APPLY_REMOVALS, keep={"container-runtime"}
    )
    assert "container-runtime" not in kept
