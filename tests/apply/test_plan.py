"""Layout detection and planning for each installer's layout (pure: no process started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnode.errors import UsageError
from mlnode.knowledge.model import ImageSettings
from mlnode.node import host_path
from mlnode.ops.apply import (
    ApplyRefused,
    LayoutKind,
    detect_layout,
    lint_plan,
    plan_apply,
)
from mlnode.ops.fileio import atomic_write
from mlnode.versions import Version, parse_runtime

from .layouts import build_kubeadm, build_kubespray, build_plain

GC = ImageSettings(
    image_gc_high_threshold_percent=75,
    image_gc_low_threshold_percent=60,
    image_pull_progress_deadline_seconds=1800.0,
)


def _apply_edits(root: Path, plan) -> None:  # type: ignore[no-untyped-def]
    for e in plan.edits:
        atomic_write(host_path(root, e.path), e.new_text.encode())


def test_detect_kubeadm_deb(root: Path) -> None:
    build_kubeadm(root)
    lay = detect_layout(root)
    assert lay.kind is LayoutKind.KUBEADM_DEB
    assert lay.kubernetes_version == Version(1, 30, 2)
    assert str(lay.runtime) == "containerd@1.7.13"
    assert lay.versions_from["kubelet"] == "/usr/bin/kubelet --version"
    assert lay.unit_files == (
        "/usr/lib/systemd/system/kubelet.service",
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
    )
    assert lay.env_files == ("/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet")
    assert (lay.args_file, lay.args_variable) == ("/etc/default/kubelet", "KUBELET_EXTRA_ARGS")
    assert lay.config_file == "/var/lib/kubelet/config.yaml"
    assert lay.config_dir is None


def test_detect_kubeadm_rpm_old_dropin_dir(root: Path) -> None:
    build_kubeadm(root, flavor="rpm", old_dropin_dir=True)
    lay = detect_layout(root)
    assert lay.kind is LayoutKind.KUBEADM_RPM
    assert lay.args_file == "/etc/sysconfig/kubelet"
    assert lay.unit_files[-1] == "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"


def test_detect_kubespray_and_plain(root: Path, tmp_path: Path) -> None:
    build_kubespray(root)
    lay = detect_layout(root)
    assert lay.kind is LayoutKind.KUBESPRAY
    assert (lay.args_file, lay.args_variable) == ("/etc/kubernetes/kubelet.env", "KUBELET_ARGS")
    assert lay.kubelet_binary == "/usr/local/bin/kubelet"
    plain = tmp_path / "plain"
    build_plain(plain)
    lay = detect_layout(plain)
    assert lay.kind is LayoutKind.SYSTEMD
    assert lay.config_dir == "/etc/kubernetes/kubelet.conf.d"
    assert lay.dropins == ("/etc/kubernetes/kubelet.conf.d/50-pods.conf",)
    assert str(lay.runtime) == "containerd@2.0.2"


def test_versions_from_options_when_no_binary(root: Path) -> None:
    build_kubeadm(root)
    (root / "usr/bin/kubelet").unlink()
    (root / "usr/bin/containerd").unlink()
    with pytest.raises(UsageError, match="--kubernetes-version"):
        detect_layout(root)
    lay = detect_layout(
        root, kubernetes_version=Version(1, 30), runtime=parse_runtime("containerd@1.7.13")
    )
    assert lay.versions_from == {"kubelet": "--kubernetes-version", "runtime": "--runtime"}


def test_binary_and_option_disagree(root: Path) -> None:
    build_kubeadm(root)
    with pytest.raises(UsageError, match=r"is 1\.30\.2, not 1\.29"):
        detect_layout(root, kubernetes_version=Version(1, 29))


def test_kubeadm_130_adds_config_dir_and_removes_overriding_flag(root: Path) -> None:
    build_kubeadm(root)
    plan = plan_apply(detect_layout(root), GC)
    paths = {e.path: e for e in plan.edits}
    assert set(paths) == {
        "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf",
        "/etc/default/kubelet",
        "/etc/containerd/config.toml",
    }
    # Never only in files kubeadm upgrade rewrites:
    assert "/var/lib/kubelet/config.yaml" not in paths
    assert "/var/lib/kubelet/kubeadm-flags.env" not in paths
    assert paths["/etc/default/kubelet"].new_text == (
        "# Extra kubelet flags for this GPU node (managed by hand).\n"
        'KUBELET_EXTRA_ARGS="--node-labels=gpu=a100 --config-dir=/etc/kubernetes/kubelet.conf.d"\n'
    )
    dropin = paths["/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf"].new_text
    assert "imageGCHighThresholdPercent: 75" in dropin
    assert 'image_pull_progress_timeout = "30m0s"' in paths["/etc/containerd/config.toml"].new_text
    assert [r.flag for r in plan.removed_flags] == ["--image-gc-high-threshold=90"]
    assert [str(a) for a in plan.actions] == [
        "systemctl daemon-reload",
        "systemctl restart containerd",
        "systemctl restart kubelet",
    ]
    assert plan.expectations.kubelet_fields == {
        "imageGCHighThresholdPercent": 75,
        "imageGCLowThresholdPercent": 60,
    }
    assert lint_plan(plan) == []


def test_second_plan_is_empty(root: Path) -> None:
    build_kubeadm(root)
    _apply_edits(root, plan_apply(detect_layout(root), GC))
    again = plan_apply(detect_layout(root), GC)
    assert again.no_changes
    assert again.actions == ()


def test_kubeadm_129_sets_alpha_env_in_the_same_file(root: Path) -> None:
    build_kubeadm(root, flavor="rpm", kubelet_version="1.29.6")
    plan = plan_apply(detect_layout(root), GC)
    text = {e.path: e.new_text for e in plan.edits}["/etc/sysconfig/kubelet"]
    assert "KUBELET_CONFIG_DROPIN_DIR_ALPHA=true\n" in text
    assert "--config-dir=/etc/kubernetes/kubelet.conf.d" in text


def test_kubeadm_127_uses_flags_and_warns_for_flagless_fields(root: Path) -> None:
    build_kubeadm(root, kubelet_version="1.27.9")
    settings = GC.merged(ImageSettings(serialize_image_pulls=False, max_parallel_image_pulls=3))
    plan = plan_apply(detect_layout(root), settings)
    texts = {e.path: e.new_text for e in plan.edits}
    extra = texts["/etc/default/kubelet"]
    assert "--image-gc-high-threshold=75" in extra
    assert "--image-gc-low-threshold=60" in extra
    assert "--serialize-image-pulls=false" in extra
    assert "--config-dir" not in extra
    # maxParallelImagePulls has no flag: config.yaml, with the kubeadm-upgrade warning
    assert "maxParallelImagePulls: 3" in texts["/var/lib/kubelet/config.yaml"]
    assert any("kubeadm upgrade" in w for w in plan.warnings)


def test_kubeadm_128_does_not_use_config_dir(root: Path) -> None:
    build_kubeadm(root, kubelet_version="1.28.6")
    plan = plan_apply(detect_layout(root), GC)
    assert all("kubelet.conf.d" not in e.path for e in plan.edits)


def test_stale_progress_deadline_flag_removed_everywhere(root: Path) -> None:
    build_kubeadm(
        root,
        extra_args='# keep\nKUBELET_EXTRA_ARGS="--image-pull-progress-deadline=30m --v=2"\n',
    )
    flags_env = root / "var/lib/kubelet/kubeadm-flags.env"
    flags_env.write_text(
        'KUBELET_KUBEADM_ARGS="--container-runtime=remote --image-pull-progress-deadline=5m '
        '--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"\n'
    )
    plan = plan_apply(detect_layout(root), GC)
    texts = {e.path: e.new_text for e in plan.edits}
    assert texts["/etc/default/kubelet"] == (
        '# keep\nKUBELET_EXTRA_ARGS="--v=2 --config-dir=/etc/kubernetes/kubelet.conf.d"\n'
    )
    assert texts["/var/lib/kubelet/kubeadm-flags.env"] == (
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
        'containerd.sock"\n'
    )
    assert sorted(r.flag for r in plan.removed_flags) == [
        "--container-runtime=remote",
        "--image-pull-progress-deadline=30m",
        "--image-pull-progress-deadline=5m",
    ]
    assert lint_plan(plan) == []


def test_kubespray_drop_in_and_inventory_note(root: Path) -> None:
    build_kubespray(root)
    plan = plan_apply(detect_layout(root), GC)
    texts = {e.path: e.new_text for e in plan.edits}
    assert "--config-dir=/etc/kubernetes/kubelet.conf.d" in texts["/etc/kubernetes/kubelet.env"]
    assert "/etc/kubernetes/kubelet-config.yaml" not in texts
    assert any("mlnode render --format kubespray" in n for n in plan.notes)


def test_plain_unit_uses_its_config_dir_and_creates_containerd_config(root: Path) -> None:
    build_plain(root)
    plan = plan_apply(detect_layout(root), GC)
    texts = {e.path: e.new_text for e in plan.edits}
    assert set(texts) == {
        "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf",
        "/etc/containerd/config.toml",
    }
    assert "version = 3" in texts["/etc/containerd/config.toml"]
    assert "io.containerd.cri.v1.images" in texts["/etc/containerd/config.toml"]


def test_refusal_when_setting_has_no_home(root: Path) -> None:
    build_kubeadm(root, kubelet_version="1.27.9")
    with pytest.raises(ApplyRefused, match="imageMaximumGCAge does not exist"):
        plan_apply(detect_layout(root), ImageSettings(image_maximum_gc_age_seconds=86400.0))


def test_lint_gate_reports_invalid_result(root: Path) -> None:
    build_kubeadm(root)
    plan = plan_apply(
        detect_layout(root),
        ImageSettings(image_gc_high_threshold_percent=50, image_gc_low_threshold_percent=70),
    )
    errors = lint_plan(plan)
    assert errors and "E104" in errors[0]
