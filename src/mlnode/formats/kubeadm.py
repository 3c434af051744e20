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
target, 1.25+).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind, FlagOccurrence, ParsedDocument
from mlnode.formats.facts import KubeadmFacts, KubeletConfigFacts
from mlnode.formats.kubelet_argv import field_override_flags
from mlnode.formats.kubelet_config import (
    KUBELET_API_VERSION,
    KUBELET_KIND,
    _compose_all,
    _construct,
    _delete,
    _document,
    _effective,
    _is_null,
    _line,
    _pairs,
    _put,
    _read_mapping_doc,
    _rt_yaml,
    _yaml_error,
    merge_into_document,
)
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.knowledge.spans import Span, v
from mlnode.versions import Version

__all__ = [
    "KUBEADM_API_VERSIONS",
    "KubeadmApiVersion",
    "kubeadm_api_version_for",
    "kubelet_configmap_name",
    "merge_kubeadm",
    "read_kubeadm",
    "render_kubeadm",
]


@dataclass(frozen=True)
class KubeadmApiVersion:
    api_version: str
    span: Span
    extra_args_is_list: bool
    source: str


KUBEADM_API_VERSIONS: tuple[KubeadmApiVersion, ...] = (
    KubeadmApiVersion(
        "kubeadm.k8s.io/v1beta1",
        Span(since=v("1.13"), until=v("1.22")),
        False,
        "kubernetes#101129 removed it in 1.22",
    ),
    KubeadmApiVersion(
        "kubeadm.k8s.io/v1beta2",
        Span(since=v("1.15"), until=v("1.27")),
        False,
        "deprecated 1.24 (kubernetes#107013), removed 1.27 (kubernetes#114540)",
    ),
    KubeadmApiVersion(
        "kubeadm.k8s.io/v1beta3",
        Span(since=v("1.22")),
        False,
        "added 1.22 (kubernetes#101129)",
    ),
    KubeadmApiVersion(
        "kubeadm.k8s.io/v1beta4",
        Span(since=v("1.31")),
        True,
        "kubernetes.io kubeadm-config.v1beta4: first changes listed for v1.31; kubeletExtraArgs"
        " became a list of {name, value}",
    ),
)
_BY_VERSION = {a.api_version: a for a in KUBEADM_API_VERSIONS}
_NODE_KINDS = ("InitConfiguration", "JoinConfiguration")


def kubeadm_api_version_for(k8s: Version) -> str:
    """The newest kubeadm API version this Kubernetes version reads."""
    usable = [a for a in KUBEADM_API_VERSIONS if a.span.contains(k8s)]
    return usable[-1].api_version


def kubelet_configmap_name(k8s: Version) -> str:
    """``kubelet-config`` (UnversionedKubeletConfigMap on from 1.24) or ``kubelet-config-1.X``."""
    if k8s.at_least(Version(1, 24)):
        return "kubelet-config"
    return f"kubelet-config-{k8s.major}.{k8s.minor}"


# --------------------------------------------------------------------------- reading


def _extra_args(path: str, node: Node, api: str, kind: str) -> list[FlagOccurrence]:
    detail = f"{kind}.nodeRegistration.kubeletExtraArgs"
    spec = _BY_VERSION.get(api)
    is_list = spec.extra_args_is_list if spec else isinstance(node, SequenceNode)
    out: list[FlagOccurrence] = []
    if _is_null(node):
        return out
    if is_list:
        if not isinstance(node, SequenceNode):
            raise InputError(
                f"{detail} must be a list of {{name, value}} in {api}",
                path=path,
                line=_line(node),
            )
        for item in node.value:
            if not isinstance(item, MappingNode):
                raise InputError(
                    f"{detail} entries must be {{name: ..., value: ...}}",
                    path=path,
                    line=_line(item),
                )
            last, _ = _effective(_pairs(path, item))
            if "name" not in last:
                raise InputError(f"{detail} entry without name", path=path, line=_line(item))
            name = _construct(path, last["name"][1])
            value = _construct(path, last["value"][1]) if "value" in last else ""
            if not isinstance(name, str) or not isinstance(value, str):
                raise InputError(
                    f"{detail}: name and value must be strings (quote {value!r})",
                    path=path,
                    line=_line(item),
                )
            out.append(_flag(path, _line(item), detail, name, value))
        return out
    if not isinstance(node, MappingNode):
        raise InputError(
            f"{detail} must be a mapping of flag name to string in {api}",
            path=path,
            line=_line(node),
        )
    for name, kn, vn in _pairs(path, node):
        value = _construct(path, vn)
        if not isinstance(value, str):
            raise InputError(
                f"{detail}.{name}: value must be a string; kubeadm cannot decode {value!r} "
                f'(quote it: "{value}")'.replace("'", ""),
                path=path,
                line=_line(kn),
            )
        out.append(_flag(path, _line(kn), detail, name, value))
    return out


def _flag(path: str, line: int, detail: str, name: str, value: str) -> FlagOccurrence:
    bare = name.lstrip("-").replace("_", "-")
    return FlagOccurrence(bare, value, Origin(path, line, detail), f"--{bare}={value}")


def read_kubeadm(path: str, text: str) -> tuple[ParsedDocument, ...]:
    """One ParsedDocument per YAML document, in file order (empty documents skipped)."""
    out: list[ParsedDocument] = []
    for node in _compose_all(path, text):
        if node is None or _is_null(node):
            continue
        if not isinstance(node, MappingNode):
            raise InputError(
                "expected a YAML mapping with apiVersion and kind", path=path, line=_line(node)
            )
        last, _ = _effective(_pairs(path, node))
        api = _construct(path, last["apiVersion"][1]) if "apiVersion" in last else None
        kind = _construct(path, last["kind"][1]) if "kind" in last else None
        if not isinstance(api, str) or not isinstance(kind, str):
            raise InputError("document without apiVersion and kind", path=path, line=_line(node))
        if kind == KUBELET_KIND:
            doc = _read_mapping_doc(
                path, node, kind=DocumentKind.KUBEADM, detail=KUBELET_KIND, require_type_meta=True
            )
            kc = doc.facts_as(KubeletConfigFacts)
            out.append(replace(doc, facts=replace(kc, document_line=_line(node))))
            continue
        spec = _BY_VERSION.get(api)
        span: str | None = None
        if api.startswith("kubeadm.k8s.io/"):
            span = spec.span.describe() if spec else "unknown"
        flags: list[FlagOccurrence] = []
        if kind in _NODE_KINDS and "nodeRegistration" in last:
            nr = last["nodeRegistration"][1]
            if isinstance(nr, MappingNode):
                nr_last, _ = _effective(_pairs(path, nr))
                if "kubeletExtraArgs" in nr_last:
                    flags = _extra_args(path, nr_last["kubeletExtraArgs"][1], api, kind)
        k8s_version: object = None
        if kind == "ClusterConfiguration" and "kubernetesVersion" in last:
            k8s_version = _construct(path, last["kubernetesVersion"][1])
        facts = KubeadmFacts(
            api_version=api,
            kind=kind,
            document_line=_line(node),
            kubeadm_api_span=span,
            kubernetes_version=k8s_version,
        )
        out.append(ParsedDocument(DocumentKind.KUBEADM, path, flags=tuple(flags), facts=facts))
    return tuple(out)


# --------------------------------------------------------------------------- rendering


def _extra_args_value(api: str, flags: Mapping[str, str]) -> Any:
    if _BY_VERSION[api].extra_args_is_list:
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
    """A KubeletConfiguration document, plus Init/JoinConfiguration kubeletExtraArgs if flags."""
    k8s = placement.kubernetes_version
    api = kubeadm_api_version_for(k8s)
    cm = kubelet_configmap_name(k8s)
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
        node = CommentedMap()
        node["apiVersion"] = api
        node["kind"] = configuration
        node["nodeRegistration"] = CommentedMap(
            [("kubeletExtraArgs", _extra_args_value(api, placement.kubelet_flags))]
        )
        docs.append(node)
    docs.append(_document(placement))
    y.explicit_start = True
    y.dump_all(docs, buf)
    return "\n".join(head) + "\n" + buf.getvalue()


# --------------------------------------------------------------------------- merging


def _edit_extra_args(
    container: CommentedMap, api: str, wanted: Mapping[str, str], drop: frozenset[str]
) -> bool:
    args = container.get("kubeletExtraArgs")
    changed = False
    if isinstance(args, CommentedSeq):
        seen: set[str] = set()
        for i in reversed(range(len(args))):
            item = args[i]
            name = str(item.get("name", "")).lstrip("-") if isinstance(item, Mapping) else ""
            if name in drop:
                if i == len(args) - 1 and i in args.ca.items and i > 0:
                    args.ca.items.setdefault(i - 1, args.ca.items[i])
                del args[i]
                changed = True
        for item in args:
            name = str(item.get("name", "")).lstrip("-") if isinstance(item, Mapping) else ""
            if name in wanted:
                seen.add(name)
                if item.get("value") != wanted[name]:
                    item["value"] = wanted[name]
                    changed = True
        for n, val in wanted.items():
            if n not in seen:
                args.append(CommentedMap([("name", n), ("value", val)]))
                changed = True
        return changed
    if isinstance(args, CommentedMap):
        for k in [k for k in args if str(k).lstrip("-") in drop]:
            _delete(args, k)
            changed = True
        for n, val in wanted.items():
            if args.get(n) != val:
                _put(args, n, val)
                changed = True
        return changed
    if wanted:
        container["kubeletExtraArgs"] = _extra_args_value(api, wanted)
        return True
    return False


def merge_kubeadm(
    text: str,
    path: str,
    placement: Placement,
    *,
    remove_flags: frozenset[str] = frozenset(),
) -> str:
    """Update (or append) the KubeletConfiguration document and the kubeletExtraArgs.

    In Init/JoinConfiguration documents, kubeletExtraArgs named in ``remove_flags`` or
    overriding a placed field are dropped and the placement's flags set (created only when
    there are flags). Comments, order and other documents are kept; unchanged input is
    returned as is.
    """
    read_kubeadm(path, text)  # validation with line numbers
    y = _rt_yaml(text)
    try:
        docs = list(y.load_all(text))
    except YAMLError as e:
        raise _yaml_error(path, e) from e
    wanted = dict(placement.kubelet_flags)
    drop = (frozenset(remove_flags) | field_override_flags(placement)) - set(wanted)
    changed = False
    has_kubelet_doc = False
    for doc in docs:
        if not isinstance(doc, CommentedMap):
            continue
        kind, api = doc.get("kind"), str(doc.get("apiVersion", ""))
        if kind == KUBELET_KIND and doc.get("apiVersion") == KUBELET_API_VERSION:
            has_kubelet_doc = True
            changed |= merge_into_document(doc, placement)
        elif kind in _NODE_KINDS and api in _BY_VERSION:
            nr = doc.get("nodeRegistration")
            if not isinstance(nr, CommentedMap):
                if not wanted:
                    continue
                nr = CommentedMap()
                _put(doc, "nodeRegistration", nr)
            changed |= _edit_extra_args(nr, api, wanted, drop)
    if not has_kubelet_doc and (placement.kubelet_fields or placement.feature_gates):
        docs = [d for d in docs if d is not None]
        docs.append(_document(placement))
        changed = True
    if not changed:
        return text
    buf = io.StringIO()
    y.dump_all(docs, buf)
    return buf.getvalue()
