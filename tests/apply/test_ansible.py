"""The Ansible role, run for real against localhost, leaves what `mlnode apply` leaves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

from .layouts import build_kubeadm
from .treeutil import tree_digest

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "deploy/ansible/playbook.yml"
BIN = Path(sys.executable).parent


def _playbook(extra: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    ansible = BIN / "ansible-playbook"
    if not ansible.exists():
        pytest.skip("ansible-playbook is not installed in this venv (pip install .[fleet])")
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "mlnode_hosts": "localhost",
                "mlnode_become": False,
                "mlnode_install": False,  # the venv running the tests is the node's mlnode
                "mlnode_bin": str(BIN / "mlnode"),
                "ansible_python_interpreter": sys.executable,  # see tooling-notes.md
                **extra,
            }
        )
    )
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
    return subprocess.run(
        [str(ansible), "-i", "localhost,", "-c", "local", str(PLAYBOOK), "-e", f"@{vars_file}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_playbook_matches_mlnode_apply(tmp_path: Path) -> None:
    by_cli = build_kubeadm(tmp_path / "cli")
    by_ansible = tmp_path / "ansible"
    shutil.copytree(by_cli, by_ansible, symlinks=True)
    assert tree_digest(by_cli) == tree_digest(by_ansible)

    res = CliRunner().invoke(
        app,
        ["apply", "--root", str(by_cli), "--from-kubelet-args", "--image-gc-high-threshold 75",
         "--image-gc-low-threshold", "60", "--image-pull-progress-deadline", "30m",
         "--no-serialize-image-pulls"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output

    proc = _playbook(
        {
            "mlnode_root": str(by_ansible),
            "mlnode_kubelet_args": "--image-gc-high-threshold 75",
            "mlnode_settings": {
                "image-gc-low-threshold": 60,
                "image-pull-progress-deadline": "30m",
                "serialize-image-pulls": False,
            },
        },
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=1" in proc.stdout
    assert tree_digest(by_ansible) == tree_digest(by_cli)
    assert tree_digest(by_cli) != tree_digest(build_kubeadm(tmp_path / "fresh"))

    # Second run: nothing to change.
    proc = _playbook(
        {
            "mlnode_root": str(by_ansible),
            "mlnode_kubelet_args": "--image-gc-high-threshold 75",
            "mlnode_settings": {
                "image-gc-low-threshold": 60,
                "image-pull-progress-deadline": "30m",
                "serialize-image-pulls": False,
            },
        },
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout


def test_playbook_fails_the_host_when_mlnode_refuses(tmp_path: Path) -> None:
    root = build_kubeadm(tmp_path / "node")
    before = tree_digest(root)
    proc = _playbook(
        {
            "mlnode_root": str(root),
            "mlnode_settings": {"image-gc-high-threshold": 50, "image-gc-low-threshold": 70},
        },
        tmp_path,
    )
    assert proc.returncode != 0
    assert "failed=1" in proc.stdout
    assert "E104" in proc.stdout
    assert tree_digest(root) == before
