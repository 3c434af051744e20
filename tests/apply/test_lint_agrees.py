"""`lint --root` and `apply --root` read one node the same way (mlnode.node).

The tree is one where the old readers disagreed: the unit lives only in
/usr/local/lib/systemd/system (apply did not look there), and two kubelets of different
versions sit in /usr/local/bin and /usr/bin, ExecStart= naming /usr/bin's (lint took
/usr/local/bin's first, apply ExecStart's).
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlnode.cli.app import app

from .layouts import _containerd, _kubelet_binary, _write

runner = CliRunner()
SETTINGS = ["--image-gc-high-threshold", "75", "--image-gc-low-threshold", "60"]
UNIT = """\
[Unit]
Description=kubelet
[Service]
EnvironmentFile=-/etc/default/kubelet
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml $KUBELET_EXTRA_ARGS
"""
CONFIG = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def build(root: Path) -> None:
    _write(root, "/usr/local/lib/systemd/system/kubelet.service", UNIT)
    _write(root, "/etc/default/kubelet", 'KUBELET_EXTRA_ARGS="--v=2"\n')
    _write(root, "/var/lib/kubelet/config.yaml", CONFIG)
    _kubelet_binary(root, "/usr/bin/kubelet", "1.30.2")
    _kubelet_binary(root, "/usr/local/bin/kubelet", "1.29.6")
    _containerd(root, "1.7.13", 'version = 2\nroot = "/var/lib/containerd"\n', "/usr/bin")


def test_lint_and_apply_read_the_same_kubelet_and_files(root: Path) -> None:
    build(root)
    lint = runner.invoke(app, ["lint", "--root", str(root), "-o", "json"])
    assert lint.exit_code in (0, 1), lint.output
    lint_doc = json.loads(lint.stdout)
    apply = runner.invoke(
        app,
        ["apply", "--root", str(root), "--dry-run", "-o", "json", *SETTINGS],
    )
    assert apply.exit_code == 0, apply.output
    layout = json.loads(apply.stdout)["layout"]

    assert layout["kubernetes_version"] == lint_doc["kubernetes_version"] == "1.30.2"
    assert layout["runtime"] == lint_doc["runtime"] == "containerd@1.7.13"
    assert layout["versions_from"]["kubelet"] == "/usr/bin/kubelet --version"
    assert layout["unit_files"] == ["/usr/local/lib/systemd/system/kubelet.service"]
    read_by_apply = [
        *layout["unit_files"],
        *layout["env_files"],
        layout["config_file"],
        *layout["containerd_files"],
    ]
    assert lint_doc["files"] == [str(root / p.lstrip("/")) for p in read_by_apply]
