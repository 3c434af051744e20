"""Detecting a file's kind from its content, and dispatching to its reader."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind
from mlnode.formats.detect import detect_kind, read_any

DATA = Path(__file__).parent.parent / "data" / "formats"

KUBEADM_DROPIN = (Path(__file__).parent.parent / "data" / "formats" / "10-kubeadm.conf").read_text()
KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
imageGCHighThresholdPercent: 90
"""
KUBEADM = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.2
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
imageGCHighThresholdPercent: 90
"""
KUBESPRAY = """\
---
kube_version: v1.30.4
container_manager: containerd
kubelet_image_gc_high_threshold: 90
"""


@pytest.mark.parametrize(
    ("path", "text", "kind"),
    [
        (
            "/etc/containerd/config.toml",
            (DATA / "containerd-1.7-default.toml").read_text(),
            DocumentKind.CONTAINERD,
        ),
        ("whatever", (DATA / "containerd-2.x-v3.toml").read_text(), DocumentKind.CONTAINERD),
        ("c.toml", "version = 2\n", DocumentKind.CONTAINERD),
        ("c.toml", "[plugins.cri]\nsandbox_image = 'x'\n", DocumentKind.CONTAINERD),
        ("c.toml", "root = '/data/containerd'\n", DocumentKind.CONTAINERD),
        ("x", (DATA / "crio.conf").read_text(), DocumentKind.CRIO),
        ("x.conf", (DATA / "crio.conf.d" / "10-gpu.conf").read_text(), DocumentKind.CRIO),
        ("10-kubeadm.conf", KUBEADM_DROPIN, DocumentKind.SYSTEMD_UNIT),
        (
            "kubelet.service",
            "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n",
            DocumentKind.SYSTEMD_UNIT,
        ),
        ("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, DocumentKind.KUBELET_CONFIG),
        (
            "/etc/kubernetes/kubelet.conf.d/50-images.conf",
            KUBELET_CONFIG,
            DocumentKind.KUBELET_DROPIN,
        ),
        ("kubeadm-config.yaml", KUBEADM, DocumentKind.KUBEADM),
        ("group_vars/k8s_cluster/k8s-cluster.yml", KUBESPRAY, DocumentKind.KUBESPRAY),
        (
            "/etc/default/kubelet",
            'KUBELET_EXTRA_ARGS="--image-gc-high-threshold=90"\n',
            DocumentKind.ENV_FILE,
        ),
        (
            "/var/lib/kubelet/kubeadm-flags.env",
            'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock'
            ' --pod-infra-container-image=registry.k8s.io/pause:3.9"\n',
            DocumentKind.ENV_FILE,
        ),
        (
            "kubelet.env",
            "# c\nKUBE_LOGTOSTDERR=--logtostderr=true\nKUBELET_ARGS=--v=2 \\\n  --x=y\n",
            DocumentKind.ENV_FILE,
        ),
    ],
)
def test_detect(path: str, text: str, kind: DocumentKind) -> None:
    assert detect_kind(path, text) is kind


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n# only a comment\n",
        "hello world\n",
        "apiVersion: v1\nkind: Pod\n",
        "[section]\na = 1\n",
        "- a\n- b\n",
    ],
)
def test_undetectable(text: str) -> None:
    with pytest.raises(InputError) as e:
        detect_kind("/tmp/mystery", text)
    assert str(e.value).startswith("/tmp/mystery: cannot tell what kind of file this is")
    assert e.value.path == Path("/tmp/mystery")


def test_nul_byte_named_with_its_line() -> None:
    with pytest.raises(InputError) as e:
        detect_kind("/tmp/mystery", "a = 1\nb = \x00\x01binary")
    assert str(e.value).startswith("/tmp/mystery:2: contains a NUL byte")


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_detect_raises_only_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        detect_kind("x", text)


def test_read_any_containerd_and_crio() -> None:
    [doc] = read_any("c.toml", (DATA / "containerd-2.x-v3.toml").read_text())
    assert doc.kind is DocumentKind.CONTAINERD
    [doc] = read_any("x.conf", (DATA / "crio.conf").read_text())
    assert doc.kind is DocumentKind.CRIO


def test_read_any_env_and_unit() -> None:
    [env] = read_any("/etc/default/kubelet", 'KUBELET_EXTRA_ARGS="--image-gc-high-threshold=90"\n')
    assert env.kind is DocumentKind.ENV_FILE
    assert [f.name for f in env.flags] == ["image-gc-high-threshold"]
    [unit] = read_any("10-kubeadm.conf", KUBEADM_DROPIN)
    assert unit.kind is DocumentKind.SYSTEMD_UNIT


def test_read_any_kubelet_config_and_dropin() -> None:
    [cfg] = read_any("config.yaml", KUBELET_CONFIG)
    assert cfg.kind is DocumentKind.KUBELET_CONFIG
    [drop] = read_any("50-images.conf", KUBELET_CONFIG)
    assert drop.kind is DocumentKind.KUBELET_DROPIN


def test_read_any_kubeadm() -> None:
    docs = read_any("kubeadm-config.yaml", KUBEADM)
    assert docs
    assert all(d.kind is DocumentKind.KUBEADM for d in docs)


def test_read_any_kubespray() -> None:
    docs = read_any("k8s-cluster.yml", KUBESPRAY)
    assert docs
    assert docs[0].kind is DocumentKind.KUBESPRAY
