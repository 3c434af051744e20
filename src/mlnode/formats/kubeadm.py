"""kubeadm configuration files (``kubeadm init/join --config``): multi-document YAML.

API versions (:data:`KUBEADM_API_VERSIONS`): ``kubeadm.k8s.io/v1beta2`` (1.15 to 1.26, removed
in 1.27 by kubernetes#114540), ``v1beta3`` (1.22+, kubernetes#101129), ``v1beta4`` (1.31+). In
v1beta4 ``nodeRegistration.kubeletExtraArgs`` is a list of ``{name, value}`` (duplicates
allowed); before it was a ``map[string]string`` — an unquoted number or boolean value there
fails kubeadm's decoding, so mlnode refuses it too.

kubeadm writes ``kubeletExtraArgs`` to ``/var/lib/kubelet/kubeadm-flags.env`` as
``KUBELET_KUBEADM_ARGS``. The ``KubeletConfiguration`` document is used by ``kubeadm init``
(it becomes ``/var/lib/kubelet/config.yaml`` and the ``kube-system/kubelet-config`` ConfigMap;
``kubelet-config-1.X`` before 1.24); ``kubeadm join`` takes the kubelet config from that
ConfigMap and ignores such a document (per-node changes: the ``kubeletconfiguration`` patch
target, 1.25+, or ``kubeletExtraArgs``). Which command reads which document, with the kubeadm
sources: :mod:`mlnode.formats._kubeadm_read`; the merge: :mod:`mlnode.formats._kubeadm_merge`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mlnode.formats._kubeadm_merge import join_flags, merge_kubeadm
from mlnode.formats._kubeadm_read import (
    KUBEADM_API_VERSIONS,
    KubeadmApiVersion,
    api_spec,
    kubeadm_api_version_for,
    kubeadm_reader,
    kubelet_configmap_name,
    read_kubeadm,
)
from mlnode.formats.kubelet_config import _document, _rt_yaml
from mlnode.knowledge.placement import Placement

__all__ = [
    "KUBEADM_API_VERSIONS",
    "KubeadmApiVersion",
    "join_flags",
    "kubeadm_api_version_for",
    "kubeadm_reader",
    "kubelet_configmap_name",
    "merge_kubeadm",
    "read_kubeadm",
    "render_kubeadm",
]


def _extra_args_value(api: str, flags: Mapping[str, str]) -> Any:
    spec = api_spec(api)
    if spec is not None and spec.extra_args_is_list:
        seq = CommentedSeq()
        for n, val in flags.items():
            seq.append(CommentedMap([("name", n), ("value", val)]))
        return seq
    return CommentedMap(flags)


def render_kubeadm(
    placement: Placement,
    *,
    configuration: Literal["InitConfiguration", "JoinConfiguration"] = "InitConfiguration",
) -> str:
    """A KubeletConfiguration document, plus InitConfiguration kubeletExtraArgs if flags.

    A JoinConfiguration carries everything as kubeletExtraArgs and no KubeletConfiguration
    (kubeadm join would ignore it, see :mod:`mlnode.formats._kubeadm_read`); a field without
    a flag is refused (:func:`join_flags`).
    """
    k8s = placement.kubernetes_version
    api = kubeadm_api_version_for(k8s)
    cm = kubelet_configmap_name(k8s)
    if configuration == "JoinConfiguration":
        return _render_join(placement, api, cm)
    head = [
        f"# Written by mlnode for kubeadm {k8s} ({api}): kubelet image settings.",
        "# New cluster: kubeadm init --config <this file> (merge these documents into your",
        "# existing kubeadm config). kubeadm join ignores a KubeletConfiguration document: joining",
        f"# nodes get the kubelet config from the ConfigMap kube-system/{cm}.",
        f"# Existing cluster: put these fields into data.kubelet of kube-system/{cm}, then on",
        "# each node run 'kubeadm upgrade node phase kubelet-config' and restart the kubelet.",
    ]
    y = _rt_yaml("")
    buf = io.StringIO()
    docs: list[Any] = []
    if placement.kubelet_flags:
        docs.append(_node_document(api, configuration, placement.kubelet_flags))
    docs.append(_document(placement))
    y.explicit_start = True
    y.dump_all(docs, buf)
    return "\n".join(head) + "\n" + buf.getvalue()


def _node_document(api: str, kind: str, flags: Mapping[str, str]) -> CommentedMap:
    node = CommentedMap()
    node["apiVersion"] = api
    node["kind"] = kind
    node["nodeRegistration"] = CommentedMap([("kubeletExtraArgs", _extra_args_value(api, flags))])
    return node


def _render_join(placement: Placement, api: str, cm: str) -> str:
    head = [
        f"# Written by mlnode for kubeadm {placement.kubernetes_version} ({api}): kubelet image"
        " settings for a joining node.",
        "# kubeadm join --config <this file> (merge into your JoinConfiguration). kubeadm join",
        "# reads no KubeletConfiguration from its file: these are kubelet flags; settings that",
        f"# have no flag belong in the ConfigMap kube-system/{cm}.",
    ]
    y = _rt_yaml("")
    y.explicit_start = True
    buf = io.StringIO()
    y.dump(_node_document(api, "JoinConfiguration", join_flags(placement, None)), buf)
    return "\n".join(head) + "\n" + buf.getvalue()
