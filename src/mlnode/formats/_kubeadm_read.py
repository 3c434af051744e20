"""Reading kubeadm config files, and which of their documents each kubeadm command reads.

**``kubeadm init --config``** decodes the InitConfiguration and ClusterConfiguration and the
component configs (KubeletConfiguration, KubeProxyConfiguration); any other document is
"Ignored YAML document" (``cmd/kubeadm/app/util/config/initconfiguration.go``
``documentMapToInitConfiguration``, ``componentconfigs.FetchFromDocumentMap``).

**``kubeadm join --config``** decodes only the JoinConfiguration ("not interested in anything
other than JoinConfiguration": ``cmd/kubeadm/app/util/config/joinconfiguration.go``
``documentMapToJoinConfiguration``). The kubelet config it writes comes from the cluster:
``fetchInitConfigurationFromJoinConfiguration`` (``cmd/kubeadm/app/cmd/join.go``) reads the
kubeadm-config ConfigMap and its component configs, the kubelet's from the
``kube-system/kubelet-config`` ConfigMap (``componentconfigs/kubelet.go``
``kubeletConfigFromCluster``), and copies in only the JoinConfiguration's nodeRegistration;
``phases/join/kubelet.go`` then writes ``config.yaml`` from that ClusterConfiguration and
``kubeadm-flags.env`` from ``nodeRegistration.kubeletExtraArgs``
(``phases/kubelet/flags.go WriteKubeletDynamicEnvFile``). A KubeletConfiguration document in
a join file is therefore ignored, silently (kubernetes.io kubelet-integration, "Workflow when
using kubeadm join", says the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind, FlagOccurrence, ParsedDocument
from mlnode.formats.facts import KubeadmFacts, KubeletConfigFacts
from mlnode.formats.kubelet_config import (
    KUBELET_KIND,
    _compose_all,
    _construct,
    _effective,
    _is_null,
    _line,
    _pairs,
    _read_mapping_doc,
)
from mlnode.knowledge.model import Origin
from mlnode.knowledge.spans import Span, v
from mlnode.versions import Version

__all__ = [
    "INIT_KINDS",
    "JOIN_IGNORES_SOURCE",
    "KUBEADM_API_VERSIONS",
    "NODE_KINDS",
    "KubeadmApiVersion",
    "api_spec",
    "kubeadm_api_version_for",
    "kubeadm_reader",
    "kubelet_configmap_name",
    "read_kubeadm",
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
NODE_KINDS = ("InitConfiguration", "JoinConfiguration")
#: The documents that make a file an input of ``kubeadm init``.
INIT_KINDS = frozenset({"InitConfiguration", "ClusterConfiguration"})
JOIN_IGNORES_SOURCE = (
    "kubeadm cmd/kubeadm/app/util/config/joinconfiguration.go documentMapToJoinConfiguration"
    " (reads only the JoinConfiguration); cmd/kubeadm/app/cmd/join.go"
    " fetchInitConfigurationFromJoinConfiguration (the kubelet config comes from the cluster)"
)


def api_spec(api: str) -> KubeadmApiVersion | None:
    """The row of a kubeadm API version mlnode knows, or None."""
    return _BY_VERSION.get(api)


def kubeadm_reader(kinds: Iterable[str]) -> str | None:
    """``"kubeadm join"`` or ``"kubeadm init"``: the one command a file with these documents is
    for; None when it holds both kinds of node document, or neither."""
    present = set(kinds)
    join = "JoinConfiguration" in present
    init = bool(present & INIT_KINDS)
    if join and not init:
        return "kubeadm join"
    if init and not join:
        return "kubeadm init"
    return None


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
        if kind in NODE_KINDS and "nodeRegistration" in last:
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
    if kubeadm_reader(_kind_of(d) for d in out) == "kubeadm join":
        out = [_ignored_by_join(d) for d in out]
    return tuple(out)


def _kind_of(doc: ParsedDocument) -> str:
    facts = doc.facts
    kind = facts.kind if isinstance(facts, KubeadmFacts | KubeletConfigFacts) else None
    return str(kind)


def _ignored_by_join(doc: ParsedDocument) -> ParsedDocument:
    """A KubeletConfiguration document in a file only `kubeadm join` reads is not read."""
    if not isinstance(doc.facts, KubeletConfigFacts):
        return doc
    return replace(doc, facts=replace(doc.facts, kubeadm_ignored_by="kubeadm join"))
