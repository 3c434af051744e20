"""The kubelet stand-in starts and refuses like the kubelet (the other tests rely on it)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from .layouts import build_kubeadm, build_kubespray, build_plain
from .standin_kubelet import StartFailure, effective_config, systemd_command
from .standin_services import StandinServiceManager

MakeStandin = Callable[[Path, str], StandinServiceManager]


def test_systemd_command_kubeadm(root: Path) -> None:
    build_kubeadm(root)
    argv, _ = systemd_command(root)
    assert argv == [
        "/usr/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
        "--pod-infra-container-image=registry.k8s.io/pause:3.9",
        "--node-labels=gpu=a100",
        "--image-gc-high-threshold=90",
    ]


def test_systemd_command_kubespray(root: Path) -> None:
    build_kubespray(root)
    argv, _ = systemd_command(root)
    assert argv[0] == "/usr/local/bin/kubelet"
    assert "--config=/etc/kubernetes/kubelet-config.yaml" in argv
    assert "--v=2" in argv


def test_effective_config_flag_overrides(root: Path) -> None:
    build_kubeadm(root)
    argv, env = systemd_command(root)
    cfg = effective_config(argv, env, root, __import__("mlnode.versions").versions.Version(1, 30))
    assert cfg["imageGCHighThresholdPercent"] == 90
    assert cfg["imageGCLowThresholdPercent"] == 80


def test_unknown_flag_is_fatal(root: Path) -> None:
    from mlnode.versions import Version

    build_kubeadm(root, extra_args='KUBELET_EXTRA_ARGS="--image-pull-progress-deadline=30m"\n')
    argv, env = systemd_command(root)
    with pytest.raises(StartFailure, match="unknown flag: --image-pull-progress-deadline"):
        effective_config(argv, env, root, Version(1, 30))
    # 1.23 still had it
    effective_config(argv, env, root, Version(1, 23))


def test_config_dir_needs_env_on_129(root: Path) -> None:
    from mlnode.versions import Version

    build_plain(root)
    argv, env = systemd_command(root)
    with pytest.raises(StartFailure, match="KUBELET_CONFIG_DROPIN_DIR_ALPHA"):
        effective_config(argv, env, root, Version(1, 29))
    cfg = effective_config(argv, env, root, Version(1, 31))
    assert cfg["maxPods"] == 64


def test_process_serves_and_refuses(root: Path, make_standin: MakeStandin) -> None:
    build_kubeadm(root)
    mgr = make_standin(root, "1.30.2")
    mgr.restart("kubelet")
    assert mgr.is_active("kubelet")
    with urllib.request.urlopen(f"http://127.0.0.1:{mgr.port}/healthz") as r:
        assert r.read() == b"ok"
    with urllib.request.urlopen(f"http://127.0.0.1:{mgr.port}/configz") as r:
        assert json.load(r)["kubeletconfig"]["imageGCHighThresholdPercent"] == 90
    # Now make it invalid: low >= high
    (root / "etc/default/kubelet").write_text(
        'KUBELET_EXTRA_ARGS="--image-gc-high-threshold=70 --image-gc-low-threshold=80"\n'
    )
    mgr.restart("kubelet")
    assert not mgr.is_active("kubelet")
    assert "must be less than imageGCHighThresholdPercent" in mgr.log.read_text()
