"""Issue acceptance: the classic line's settings for Kubernetes 1.30 with containerd 1.7, on
every layout, give files that `mlnode lint` accepts, with the pull deadline in containerd's
config, the removed flag gone, and a second apply that changes nothing."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

from .layouts import build_kubeadm, build_kubespray, build_plain
from .treeutil import whole_tree_digest

LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
BROKEN = f'KUBELET_EXTRA_ARGS="{LINE}"\n'
runner = CliRunner()

LAYOUTS: dict[str, Callable[[Path], Path]] = {
    "kubeadm-deb": lambda r: build_kubeadm(r, extra_args=BROKEN),
    "kubeadm-rpm": lambda r: build_kubeadm(r, flavor="rpm", extra_args=BROKEN),
    "kubespray": lambda r: build_kubespray(r),
    "plain-config-dir": lambda r: build_plain(
        r, kubelet_version="1.30.2", containerd_version="1.7.13"
    ),
}


def _env_files(root: Path) -> list[Path]:
    names = [
        "etc/default/kubelet",
        "etc/sysconfig/kubelet",
        "var/lib/kubelet/kubeadm-flags.env",
        "etc/kubernetes/kubelet.env",
    ]
    return [root / n for n in names if (root / n).exists()]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_classic_settings_on_1_30_containerd_1_7(root: Path, layout: str) -> None:
    LAYOUTS[layout](root)
    args = [
        "apply",
        "--root",
        str(root),
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--no-restart",
        "-o",
        "json",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output

    lint = runner.invoke(
        app,
        [
            "lint",
            "--root",
            str(root),
            "--kubernetes-version",
            "1.30",
            "--runtime",
            "containerd@1.7.13",
            "-o",
            "json",
        ],
    )
    report = json.loads(lint.stdout)
    assert lint.exit_code == 0, report["findings"]
    assert report["summary"]["error"] == 0
    eff = report["effective"]
    assert eff["image_gc_high_threshold_percent"]["value"] == 80
    assert eff["image_gc_low_threshold_percent"]["value"] == 70
    assert eff["image_pull_progress_deadline_seconds"]["value"] == 1800

    # Without versions, lint asks the node's own kubelet and containerd binaries.
    asked = runner.invoke(app, ["lint", "--root", str(root), "-o", "json"])
    assert asked.exit_code == 0, asked.output
    asked_report = json.loads(asked.stdout)
    assert asked_report["kubernetes_version"] == "1.30.2"
    assert asked_report["runtime"] == "containerd@1.7.13"
    assert asked_report["findings"] == report["findings"]

    config = tomllib.loads((root / "etc/containerd/config.toml").read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["image_pull_progress_timeout"] == "30m0s"
    for env in _env_files(root):
        assert "image-pull-progress-deadline" not in env.read_text(), env

    # Idempotent: a second apply changes no byte.
    before = whole_tree_digest(root)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["status"] == "no-change"
    assert whole_tree_digest(root) == before
