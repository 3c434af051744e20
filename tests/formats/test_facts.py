"""Each reader puts the facts type its kind documents (mlnode.formats.facts); facts_as checks."""

from __future__ import annotations

import pytest

from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.containerd import read_containerd
from mlnode.formats.crio import read_crio
from mlnode.formats.envfile import read_env
from mlnode.formats.facts import (
    ContainerdFacts,
    CrioFacts,
    EnvFileFacts,
    KubeadmFacts,
    KubeletConfigFacts,
    KubesprayFacts,
    NoFacts,
    SystemdUnitFacts,
)
from mlnode.formats.kubeadm import read_kubeadm
from mlnode.formats.kubelet_config import read_kubelet_config
from mlnode.formats.kubespray import read_kubespray
from mlnode.formats.systemd_unit import read_systemd_unit

_KUBELET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 9\n"


def test_each_reader_puts_its_kinds_facts() -> None:
    kubeadm = read_kubeadm(
        "k.yaml", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n---\n" + _KUBELET
    )
    docs: list[tuple[ParsedDocument, type]] = [
        (read_env("e", "A=1\n"), EnvFileFacts),
        (read_systemd_unit("u", "[Service]\nExecStart=/usr/bin/kubelet\n"), SystemdUnitFacts),
        (read_kubelet_config("c", _KUBELET), KubeletConfigFacts),
        (read_kubelet_config("d", _KUBELET, kind=DocumentKind.KUBELET_DROPIN), KubeletConfigFacts),
        (kubeadm[0], KubeadmFacts),
        (kubeadm[1], KubeletConfigFacts),
        (read_kubespray("g", "kubelet_max_pods: 9\n"), KubesprayFacts),
        (read_kubespray("g", ""), KubesprayFacts),
        (read_containerd("c.toml", "version = 2\n"), ContainerdFacts),
        (read_crio("crio.conf", "[crio]\n"), CrioFacts),
    ]
    for doc, cls in docs:
        assert type(doc.facts) is cls, doc.path
        assert doc.facts_as(cls) is doc.facts
    assert kubeadm[0].facts_as(KubeadmFacts).document_line == 1
    assert kubeadm[1].facts_as(KubeletConfigFacts).document_line == 4
    assert read_kubelet_config("c", _KUBELET).facts_as(KubeletConfigFacts).document_line is None


def test_facts_as_refuses_another_kind() -> None:
    doc = read_env("/etc/default/kubelet", "A=1\n")
    with pytest.raises(TypeError, match=r"expected ContainerdFacts for a env document"):
        doc.facts_as(ContainerdFacts)
    assert ParsedDocument(DocumentKind.ENV_FILE, "x").facts == NoFacts()


def test_facts_are_frozen() -> None:
    doc = read_containerd("c.toml", "version = 2\n")
    with pytest.raises(AttributeError):
        doc.facts.node_path = "/x"  # type: ignore[misc]
