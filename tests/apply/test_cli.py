"""`mlnode apply` / `mlnode rollback` from the command line: output, exit codes, no-op runs."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.ops.fileio import ApplyLock

from .conftest import free_port
from .layouts import PLAIN_SERVICE, build_kubeadm, build_plain
from .standin_services import StandinServiceManager
from .treeutil import tree_digest, whole_tree_digest

runner = CliRunner()
SETTINGS = [
    "--image-gc-high-threshold",
    "75",
    "--image-gc-low-threshold",
    "60",
    "--image-pull-progress-deadline",
    "30m",
]


def test_dry_run_changes_no_byte(root: Path) -> None:
    build_kubeadm(root)
    before = whole_tree_digest(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "--dry-run", *SETTINGS])
    assert res.exit_code == 0, res.output
    assert "+++ b/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf" in res.output
    assert '-KUBELET_EXTRA_ARGS="--node-labels=gpu=a100 --image-gc-high-threshold=90"' in res.output
    assert "then: systemctl restart kubelet" in res.output
    assert "dry run: nothing written" in res.output
    assert whole_tree_digest(root) == before


def test_dry_run_json(root: Path) -> None:
    build_kubeadm(root)
    before = whole_tree_digest(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "--dry-run", "-o", "json", *SETTINGS])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "mlnode.apply/v1"
    assert doc["status"] == "dry-run"
    assert doc["layout"]["kind"] == "kubeadm-deb"
    assert {f["path"] for f in doc["files"]} == {
        "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf",
        "/etc/default/kubelet",
        "/etc/containerd/config.toml",
    }
    assert all(not a["done"] for a in doc["actions"])
    assert whole_tree_digest(root) == before


def test_apply_json_then_no_change(root: Path) -> None:
    build_kubeadm(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "-o", "json", *SETTINGS])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "written"  # --root is not /: nothing restarted
    created = next(f for f in doc["files"] if f["change"] == "created")
    assert created["sha256_before"] is None and len(created["sha256_after"]) == 64
    assert doc["backup"]["id"]
    assert any("nothing restarted" in n for n in doc["notes"])
    res = runner.invoke(app, ["apply", "--root", str(root), "-o", "json", *SETTINGS])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["status"] == "no-change"


def test_refused_when_result_invalid(root: Path) -> None:
    build_kubeadm(root)
    before = whole_tree_digest(root)
    res = runner.invoke(
        app,
        ["apply", "--root", str(root), "--image-gc-high-threshold", "50",
         "--image-gc-low-threshold", "70"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "refusing to apply" in res.stderr and "E104" in res.stderr
    assert whole_tree_digest(root) == before


def test_bad_input_exit_2(root: Path) -> None:
    build_kubeadm(root)
    res = runner.invoke(app, ["apply", "--root", str(root)])
    assert res.exit_code == 2 and "no settings given" in res.stderr
    res = runner.invoke(app, ["apply", "--root", str(root / "nope"), *SETTINGS])
    assert res.exit_code == 2


def test_lock_held_exit_7(root: Path) -> None:
    build_kubeadm(root)
    with ApplyLock(root):
        res = runner.invoke(app, ["apply", "--root", str(root), *SETTINGS])
    assert res.exit_code == 7
    assert "holds the lock" in res.stderr


def _fake_systemctl(tmp_path: Path, root: Path, version: str, port: int) -> Path:
    script = tmp_path / "systemctl"
    standin = Path(__file__).with_name("standin_services.py")
    script.write_text(
        f"#!/bin/sh\nexec {sys.executable} {standin} --root {root} --state-dir "
        f'{tmp_path / "state"} --version {version} --port {port} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_cli_failure_restores_and_exits_7_then_rollback(root: Path, tmp_path: Path) -> None:
    build_plain(root)
    (root / "etc/systemd/system/kubelet.service").write_text(
        PLAIN_SERVICE.replace(
            "--kubeconfig=/etc/kubernetes/kubelet.conf \\",
            "--kubeconfig=/etc/kubernetes/kubelet.conf --image-gc-high-threshold=90 \\",
        )
    )
    port = free_port()
    systemctl = _fake_systemctl(tmp_path, root, "1.31.1", port)
    mgr = StandinServiceManager(root, tmp_path / "state", "1.31.1", port)
    try:
        mgr.restart("kubelet")
        before = tree_digest(root)
        common = [
            "--root", str(root), "--systemctl", str(systemctl), "--timeout", "3s",
            "--healthz-url", f"http://127.0.0.1:{port}/healthz",
        ]  # fmt: skip
        res = runner.invoke(
            app,
            ["apply", *common, "--configz-url", f"http://127.0.0.1:{port}/configz",
             "-o", "json", "--image-gc-high-threshold", "75", "--image-gc-low-threshold", "60"],
        )  # fmt: skip
        assert res.exit_code == 7, res.output
        doc = json.loads(res.stdout)
        assert doc["status"] == "restored"
        assert doc["verification"]["ok"] is False
        assert doc["restore_verification"]["ok"] is True
        assert "want 75" in doc["error"]
        assert {f["result"] for f in doc["files"]} == {"removed"}
        assert tree_digest(root) == before
        assert mgr.is_active("kubelet")

        # Without the overriding flag the same apply succeeds; rollback then undoes it.
        (root / "etc/systemd/system/kubelet.service").write_text(PLAIN_SERVICE)
        mgr.restart("kubelet")
        before = tree_digest(root)
        res = runner.invoke(
            app,
            ["apply", *common, "--configz-url", f"http://127.0.0.1:{port}/configz",
             "--image-gc-high-threshold", "75", "--image-gc-low-threshold", "60"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "status: applied" in res.stdout
        res = runner.invoke(app, ["rollback", *common, "-o", "json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert doc["schema"] == "mlnode.rollback/v1" and doc["status"] == "rolled-back"
        assert doc["verification"]["ok"] is True
        assert tree_digest(root) == before
        res = runner.invoke(app, ["rollback", "--root", str(root), "--list", "-o", "json"])
        statuses = [b["status"] for b in json.loads(res.stdout)["backups"]]
        assert statuses == ["restored", "rolled-back"]
    finally:
        mgr.stop()
