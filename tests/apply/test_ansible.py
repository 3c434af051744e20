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


# --- the agent part of the role (mlnode_agent) ----------------------------------------------
AGENT_UNIT = REPO / "deploy/systemd/mlnode-agent.service"
AGENT_CONFIG = {
    "listen": "127.0.0.1:9478",
    "headroom": {"reserve_bytes": "2GiB"},
    "mirror": {"enabled": True, "config": "/etc/mlnode/mirror.yaml"},
    "warm": {"images": [{"image": "registry.internal:5000/ml/train:v3",
                         "node_selector": {"nvidia.com/gpu.present": "true"}}]},
}  # fmt: skip
MIRROR_CONFIG = {"listen": "127.0.0.1:6055", "upstreams": [{"registry": "docker.io"}]}


def _agent_vars(root: Path, **extra: object) -> dict[str, object]:
    return {
        "mlnode_root": str(root),
        "mlnode_apply_settings": False,
        "mlnode_agent": True,
        "mlnode_agent_config": AGENT_CONFIG,
        "mlnode_agent_mirror_config": MIRROR_CONFIG,
        **extra,
    }


def _yaml(path: Path) -> object:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(path.read_text())


def test_agent_unit_written_and_enabled_config_written(tmp_path: Path) -> None:
    from mlnode.mirror import load_config as load_mirror_config
    from mlnode.registry.hosts import hosts_for

    root = build_kubeadm(tmp_path / "node", containerd_version="1.6.20")
    before = tree_digest(root)
    proc = _playbook(_agent_vars(root, mlnode_agent_wire_mirror=True), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    unit = root / "etc/systemd/system/mlnode-agent.service"
    # deploy/systemd's unit, ExecStart pointing at this node's mlnode (mlnode_bin).
    assert unit.read_text() == AGENT_UNIT.read_text().replace(
        "ExecStart=/opt/mlnode/venv/bin/mlnode ", f"ExecStart={BIN / 'mlnode'} "
    )
    wants = root / "etc/systemd/system/multi-user.target.wants/mlnode-agent.service"
    assert os.readlink(wants) == "/etc/systemd/system/mlnode-agent.service"  # enabled
    systemctl = shutil.which("systemctl")
    if systemctl is not None:
        res = subprocess.run(
            [systemctl, f"--root={root}", "is-enabled", "mlnode-agent.service"],
            capture_output=True,
            text=True,
        )
        assert res.stdout.strip() == "enabled"

    assert _yaml(root / "etc/mlnode/agent.yaml") == AGENT_CONFIG
    assert _yaml(root / "etc/mlnode/mirror.yaml") == MIRROR_CONFIG
    assert load_mirror_config(root / "etc/mlnode/mirror.yaml").listen == "127.0.0.1:6055"
    # mlnode_agent_wire_mirror: containerd's hosts.toml puts the agent's mirror first.
    hosts = hosts_for("docker.io", root / "etc/containerd/certs.d")
    assert [h.base_url for h in hosts] == ["http://127.0.0.1:6055", "https://registry-1.docker.io"]

    after = tree_digest(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {
        "etc/mlnode/", "etc/mlnode/agent.yaml", "etc/mlnode/mirror.yaml",
        "etc/systemd/", "etc/systemd/system/", "etc/systemd/system/mlnode-agent.service",
        "etc/systemd/system/multi-user.target.wants/",
        "etc/systemd/system/multi-user.target.wants/mlnode-agent.service",
        "etc/containerd/config.toml", "etc/containerd/certs.d/", "etc/containerd/certs.d/_default/",
        "etc/containerd/certs.d/_default/hosts.toml",
    }  # fmt: skip

    # Second run: nothing to change (the unit already enabled, the files the same).
    proc = _playbook(_agent_vars(root, mlnode_agent_wire_mirror=True), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout
    assert tree_digest(root) == after


def test_agent_toggle_off_writes_nothing_of_the_agent(tmp_path: Path) -> None:
    by_cli = build_kubeadm(tmp_path / "cli")
    by_ansible = tmp_path / "ansible"
    shutil.copytree(by_cli, by_ansible, symlinks=True)
    res = CliRunner().invoke(
        app, ["apply", "--root", str(by_cli), "--image-gc-high-threshold", "90"]
    )
    assert res.exit_code == 0, res.output
    # The agent's variables are set, but mlnode_agent is left at its default (false).
    extra = _agent_vars(by_ansible, mlnode_agent_wire_mirror=True)
    del extra["mlnode_agent"]
    extra.update(mlnode_apply_settings=True, mlnode_settings={"image-gc-high-threshold": 90})
    proc = _playbook(extra, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_digest(by_ansible) == tree_digest(by_cli)  # the settings, and only them
    assert not list(by_ansible.rglob("mlnode-agent*"))
    assert not (by_ansible / "etc/mlnode").exists()
    assert not (by_ansible / "etc/containerd/certs.d/_default").exists()
