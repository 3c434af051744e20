"""`mlnode lint --root`: a whole kubeadm node laid out in a temporary tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from mlnode.cli.app import app

DATA = Path(__file__).parent.parent / "data" / "formats"


def kubeadm_node(root: Path, extra_args: str) -> None:
    unit_dir = root / "usr/lib/systemd/system/kubelet.service.d"
    unit_dir.mkdir(parents=True)
    shutil.copy(DATA / "10-kubeadm.conf", unit_dir / "10-kubeadm.conf")
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/kubelet").write_text(f'KUBELET_EXTRA_ARGS="{extra_args}"\n')
    (root / "var/lib/kubelet").mkdir(parents=True)
    shutil.copy(DATA / "kubeadm-1.30-config.yaml", root / "var/lib/kubelet/config.yaml")
    shutil.copy(DATA / "kubeadm-flags.env", root / "var/lib/kubelet/kubeadm-flags.env")
    (root / "etc/containerd").mkdir(parents=True)
    shutil.copy(DATA / "containerd-1.7-default.toml", root / "etc/containerd/config.toml")


def test_root_finds_the_removed_flag_in_etc_default(tmp_path: Path) -> None:
    kubeadm_node(tmp_path, "--image-gc-high-threshold 80 --image-pull-progress-deadline 30m")
    result = CliRunner().invoke(
        app,
        [
            "lint",
            "--root",
            str(tmp_path),
            "--kubernetes-version",
            "1.30",
            "--runtime",
            "containerd@1.7.13",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert str(tmp_path / "etc/default/kubelet") in report["files"]
    assert str(tmp_path / "var/lib/kubelet/config.yaml") in report["files"]
    [e101] = [f for f in report["findings"] if f["code"] == "E101"]
    assert e101["file"] == str(tmp_path / "etc/default/kubelet")
    # kubeadm's own zero durations mean "default": no kubeadm-overwrite warning for them.
    assert not [f for f in report["findings"] if f["code"] == "W209"]
    eff = report["effective"]
    assert eff["image_gc_high_threshold_percent"]["value"] == 80
    assert eff["image_minimum_gc_age_seconds"] == {
        "layer": "default",
        "source": None,
        "value": 120.0,
    }


def test_root_clean_node(tmp_path: Path) -> None:
    kubeadm_node(tmp_path, "")
    result = CliRunner().invoke(
        app,
        [
            "lint",
            "--root",
            str(tmp_path),
            "--kubernetes-version",
            "1.30",
            "--runtime",
            "containerd@1.7.13",
        ],
    )
    assert result.exit_code == 0, result.stdout + result.stderr


def test_root_that_is_not_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "lint",
            "--root",
            str(tmp_path / "missing"),
            "--kubernetes-version",
            "1.30",
            "--runtime",
            "containerd@1.7.13",
        ],
    )
    assert result.exit_code == 2
    assert "--root" in result.stderr
