"""kubespray group_vars (``inventory/<cluster>/group_vars/k8s_cluster/*.yml``, ``all/*.yml``).

kubespray renders ``/etc/kubernetes/kubelet-config.yaml`` from
``roles/kubernetes/node/templates/kubelet-config.v1beta1.yaml.j2`` and the flags in
``/etc/kubernetes/kubelet.env`` from ``kubelet.env.v1beta1.j2``; the containerd and CRI-O
settings come from ``roles/container-engine/*/templates``. :data:`KUBESPRAY_VARIABLES` maps
each variable mlnode knows to the kubelet field, flag or runtime key it ends up in, with the
kubespray release it appeared in (checked against the kubespray tags v2.15.0 to v2.31.0).

``kubelet_config_extra_args`` is dumped verbatim at the end of the template's config, so a key
the template already writes (``maxParallelImagePulls`` always, since v2.26.0; the
``imageGC*`` fields, ``evictionHard`` and ``featureGates`` when their variables are set) would
appear twice. The kubelet's lenient decoding then keeps the last one, and the template writes
``maxParallelImagePulls: {{ kubelet_max_parallel_image_pulls }}`` as its very last line, so an
extra-args ``maxParallelImagePulls`` is silently overridden by the default 1 (derived). The
renderer and merger therefore use the dedicated variable where one exists and remove the same
key from ``kubelet_config_extra_args``; ``facts["extra_args_duplicating_template"]`` lists
such keys for the linter. There is no kubespray variable for containerd's
``max_concurrent_downloads``.
"""

from __future__ import annotations

import enum
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlnode.errors import InputError
from mlnode.formats.base import (
    DocumentKind,
    FieldOccurrence,
    FlagOccurrence,
    ParsedDocument,
    RuntimeValueOccurrence,
    VarOccurrence,
)
from mlnode.formats.envfile import Word, field_override_flags, parse_flags, split_words
from mlnode.formats.kubelet_config import (
    _compose_all,
    _construct,
    _delete,
    _effective,
    _is_null,
    _line,
    _pairs,
    _plain,
    _put,
    _rt_yaml,
    _to_yaml,
    _yaml_error,
)
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.versions import RuntimeKind

__all__ = [
    "KUBESPRAY_VARIABLES",
    "TEMPLATE_ALWAYS_WRITES",
    "KubesprayVariable",
    "Target",
    "merge_kubespray",
    "read_kubespray",
    "render_kubespray",
]


class Target(enum.StrEnum):
    FIELD = "field"  # one KubeletConfiguration field
    FIELDS = "fields"  # a dict of KubeletConfiguration fields
    FLAGS = "flags"  # a list of kubelet flags appended to KUBELET_ARGS
    FEATURE_GATES = "feature-gates"  # a list of "Gate=bool" strings
    RUNTIME = "runtime"  # a key in the runtime's TOML


@dataclass(frozen=True)
class KubesprayVariable:
    variable: str
    target: Target
    setting: str  # field name, runtime key, or "" for FIELDS/FLAGS/FEATURE_GATES
    runtime: RuntimeKind | None
    table: tuple[str, ...]  # TOML table for RUNTIME
    since: str  # first kubespray release with it
    until: str | None  # first release without it
    default: Any
    note: str
    source: str


_NODE = "roles/kubernetes/node"
KUBESPRAY_VARIABLES: tuple[KubesprayVariable, ...] = (
    KubesprayVariable(
        "kubelet_image_gc_high_threshold",
        Target.FIELD,
        "imageGCHighThresholdPercent",
        None,
        (),
        "v2.22.0",
        None,
        None,
        "written only when defined",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_image_gc_low_threshold",
        Target.FIELD,
        "imageGCLowThresholdPercent",
        None,
        (),
        "v2.22.0",
        None,
        None,
        "written only when defined",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_max_parallel_image_pulls",
        Target.FIELD,
        "maxParallelImagePulls",
        None,
        (),
        "v2.26.0",
        None,
        1,
        "always written; with >= 2 the kubelet (1.27+) defaults serializeImagePulls to false",
        f"{_NODE}/defaults/main.yml; kubelet-config.v1beta1.yaml.j2 (last line)",
    ),
    KubesprayVariable(
        "eviction_hard",
        Target.FIELD,
        "evictionHard",
        None,
        (),
        "v2.19.0",
        None,
        {},
        "written only when non-empty (v2.22-v2.27: not on control-plane nodes when"
        " eviction_hard_control_plane is set)",
        f"{_NODE}/defaults/main.yml; kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "eviction_hard_control_plane",
        Target.FIELD,
        "evictionHard",
        None,
        (),
        "v2.24.0",
        "v2.28.0",
        {},
        "control-plane nodes only",
        f"{_NODE}/templates (v2.24.0-v2.27.0)",
    ),
    KubesprayVariable(
        "kubelet_config_extra_args",
        Target.FIELDS,
        "",
        None,
        (),
        "v2.15.0",
        None,
        {},
        "dumped verbatim (to_nice_yaml) into kubelet-config.yaml; duplicating a template key"
        " writes it twice",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_node_config_extra_args",
        Target.FIELDS,
        "",
        None,
        (),
        "v2.15.0",
        "v2.27.0",
        {},
        "kube_node hosts only",
        f"{_NODE}/templates (up to v2.26.0)",
    ),
    KubesprayVariable(
        "kubelet_custom_flags",
        Target.FLAGS,
        "",
        None,
        (),
        "v2.15.0",
        None,
        [],
        "joined with spaces into KUBELET_ARGS (docs/ansible/vars.md calls it deprecated);"
        " from v2.27.0 it must be a list (a string is joined character by character)",
        f"{_NODE}/templates/kubelet.env.v1beta1.j2",
    ),
    KubesprayVariable(
        "kubelet_node_custom_flags",
        Target.FLAGS,
        "",
        None,
        (),
        "v2.15.0",
        "v2.27.0",
        [],
        "kube_node hosts only",
        f"{_NODE}/templates/kubelet.env.v1beta1.j2 (up to v2.26.0)",
    ),
    KubesprayVariable(
        "kubelet_feature_gates",
        Target.FEATURE_GATES,
        "",
        None,
        (),
        "v2.20.0",
        None,
        [],
        "replaces kube_feature_gates for the kubelet when non-empty",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kube_feature_gates",
        Target.FEATURE_GATES,
        "",
        None,
        (),
        "v2.15.0",
        None,
        [],
        "all components; the kubelet uses it only when kubelet_feature_gates is empty",
        "roles/kubespray_defaults/defaults/main/main.yml",
    ),
    KubesprayVariable(
        "containerd_image_pull_progress_timeout",
        Target.RUNTIME,
        "image_pull_progress_timeout",
        RuntimeKind.CONTAINERD,
        ("plugins", "io.containerd.cri.v1.images"),
        "v2.26.0",
        None,
        "5m",
        "written into the CRI images table (io.containerd.grpc.v1.cri for containerd 1.x,"
        " config-v1.toml.j2 from v2.28.0)",
        "roles/container-engine/containerd/defaults/main.yml; templates/config.toml.j2",
    ),
    KubesprayVariable(
        "crio_pull_progress_timeout",
        Target.RUNTIME,
        "pull_progress_timeout",
        RuntimeKind.CRIO,
        ("crio", "image"),
        "v2.30.0",
        None,
        "10s",
        "",
        "roles/container-engine/cri-o/defaults/main.yml; templates/crio.conf.j2",
    ),
)
_BY_NAME = {r.variable: r for r in KUBESPRAY_VARIABLES}
# Fields the v2.31 template writes whatever the variables say.
TEMPLATE_ALWAYS_WRITES = frozenset({"maxParallelImagePulls", "containerRuntimeEndpoint"})
# Field -> the dedicated variable mlnode writes it with.
_DEDICATED = {
    "imageGCHighThresholdPercent": "kubelet_image_gc_high_threshold",
    "imageGCLowThresholdPercent": "kubelet_image_gc_low_threshold",
    "maxParallelImagePulls": "kubelet_max_parallel_image_pulls",
    "evictionHard": "eviction_hard",
}
_RUNTIME_VAR = {
    (
        RuntimeKind.CONTAINERD,
        "image_pull_progress_timeout",
    ): "containerd_image_pull_progress_timeout",
    (RuntimeKind.CRIO, "pull_progress_timeout"): "crio_pull_progress_timeout",
}
_TEMPLATED = re.compile(r"\{\{.*\}\}|\{%.*%\}", re.S)


# --------------------------------------------------------------------------- reading


def _flags_of_item(path: str, line: int, detail: str, text: str) -> list[FlagOccurrence]:
    flags, _ = parse_flags(split_words(text), source=text, path=path, line=line, detail=detail)
    return flags


def read_kubespray(path: str, text: str) -> ParsedDocument:
    """Variables of one group_vars file, plus the fields/flags/runtime keys they produce."""
    docs = [d for d in _compose_all(path, text) if d is not None]
    if not docs or _is_null(docs[0]):
        return ParsedDocument(DocumentKind.KUBESPRAY, path, facts={"templated": []})
    root = docs[0]
    if not isinstance(root, MappingNode):
        raise InputError(
            "group_vars must be a YAML mapping of variables", path=path, line=_line(root)
        )
    last, dups = _effective(_pairs(path, root))
    variables: list[VarOccurrence] = []
    fields: list[FieldOccurrence] = []
    flags: list[FlagOccurrence] = []
    runtime: list[RuntimeValueOccurrence] = []
    templated: list[str] = []
    gates: dict[str, bool] = {}
    facts: dict[str, Any] = {"duplicate_keys": dups}
    for name, (kn, vn) in last.items():
        value = _plain(_construct(path, vn))
        line = _line(kn)
        variables.append(VarOccurrence(name, value, Origin(path, line, name)))
        row = _BY_NAME.get(name)
        if row is None:
            continue
        if isinstance(value, str) and _TEMPLATED.search(value):
            templated.append(name)
            continue
        origin = Origin(path, line, name)
        if row.target is Target.FIELD:
            if value is None or (row.variable.startswith("eviction_hard") and value == {}):
                continue
            fields.append(FieldOccurrence(row.setting, value, origin))
        elif row.target is Target.FIELDS:
            if value is None:
                continue
            if not isinstance(vn, MappingNode):
                raise InputError(
                    f"{name} must be a mapping of KubeletConfiguration fields", path=path, line=line
                )
            for fld, fkn, fvn in _pairs(path, vn):
                fval = _plain(_construct(path, fvn))
                fields.append(FieldOccurrence(fld, fval, Origin(path, _line(fkn), name)))
        elif row.target is Target.FLAGS:
            flags.extend(_read_flag_list(path, name, vn, facts))
        elif row.target is Target.FEATURE_GATES:
            gates_here = _read_gates(path, name, vn)
            if name == "kubelet_feature_gates" or "kubelet_feature_gates" not in last:
                gates.update(gates_here)
        elif row.target is Target.RUNTIME and value is not None:
            if not isinstance(value, str):
                raise InputError(
                    f'{name} must be a duration string such as "5m"', path=path, line=line
                )
            runtime.append(RuntimeValueOccurrence(row.table, row.setting, value, origin))
    facts["templated"] = templated
    facts["featureGates"] = gates
    extra = last.get("kubelet_config_extra_args")
    if extra is not None and isinstance(extra[1], MappingNode):
        keys = {k for k, _, _ in _pairs(path, extra[1])}
        dup_template = set(keys & TEMPLATE_ALWAYS_WRITES)
        for fld, var in _DEDICATED.items():
            if fld in keys and var in last:
                dup_template.add(fld)
        if "featureGates" in keys and gates:
            dup_template.add("featureGates")
        facts["extra_args_duplicating_template"] = sorted(dup_template)
    return ParsedDocument(
        DocumentKind.KUBESPRAY,
        path,
        flags=tuple(flags),
        fields=tuple(fields),
        runtime_values=tuple(runtime),
        variables=tuple(variables),
        facts=facts,
    )


def _read_flag_list(
    path: str, name: str, node: Node, facts: dict[str, Any]
) -> list[FlagOccurrence]:
    if isinstance(node, ScalarNode):
        value = _construct(path, node)
        if value is None:
            return []
        facts.setdefault("flags_given_as_string", []).append(name)
        return _flags_of_item(path, _line(node), name, str(value))
    if not isinstance(node, SequenceNode):
        raise InputError(f"{name} must be a list of flags", path=path, line=_line(node))
    out: list[FlagOccurrence] = []
    for item in node.value:
        value = _construct(path, item)
        if not isinstance(value, str):
            raise InputError(
                f'{name} entries must be strings such as "--flag=value"',
                path=path,
                line=_line(item),
            )
        out.extend(_flags_of_item(path, _line(item), name, value))
    return out


def _read_gates(path: str, name: str, node: Node) -> dict[str, bool]:
    value = _construct(path, node)
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InputError(
            f'{name} must be a list of "Gate=true" strings', path=path, line=_line(node)
        )
    gates: dict[str, bool] = {}
    for item in value:
        gate, eq, val = str(item).partition("=")
        if not eq or val.strip().lower() not in ("true", "false"):
            raise InputError(
                f"{name}: {item!r} is not Gate=true|false", path=path, line=_line(node)
            )
        gates[gate.strip()] = val.strip().lower() == "true"
    return gates


# --------------------------------------------------------------------------- rendering


def _plan(placement: Placement) -> tuple[dict[str, Any], dict[str, Any], list[str], list[str]]:
    """(dedicated variables, kubelet_config_extra_args, custom flags, unplaceable notes)."""
    dedicated: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for fld, value in placement.kubelet_fields.items():
        var = _DEDICATED.get(fld)
        if var is not None:
            dedicated[var] = value
        else:
            extra[fld] = value
    notes: list[str] = []
    for pv in placement.runtime_values:
        var = _RUNTIME_VAR.get((pv.row.runtime, pv.row.name))
        if var is not None:
            dedicated[var] = pv.value
        else:
            notes.append(
                f"{pv.row.runtime.value} {pv.row.name} = {pv.value!r}: kubespray has no variable"
                " for it (containerd_extra_args cannot add keys to a plugin table the template"
                " already opens)"
            )
    flags = [f"--{n}={val}" for n, val in placement.kubelet_flags.items()]
    return dedicated, extra, flags, notes


def render_kubespray(placement: Placement) -> str:
    """group_vars YAML: dedicated variables first, kubelet_config_extra_args for the rest."""
    dedicated, extra, flags, notes = _plan(placement)
    head = [
        f"# Written by mlnode for kubespray (Kubernetes {placement.kubernetes_version},"
        f" {placement.runtime}): kubelet image settings.",
        "# Put into inventory/<cluster>/group_vars/k8s_cluster/ and run cluster.yml (or",
        "# upgrade-cluster.yml). Fields kubespray has a variable for use that variable, so",
        "# kubelet-config.yaml never gets a key twice.",
    ]
    head.extend(f"# NOT SET: {n}" for n in notes)
    data = CommentedMap()
    for var, value in dedicated.items():
        data[var] = _to_yaml(value)
    if extra:
        data["kubelet_config_extra_args"] = _to_yaml(extra)
    if placement.feature_gates:
        head.append(
            "# kubelet_feature_gates replaces kube_feature_gates for the kubelet: copy your"
            " kubelet gates from kube_feature_gates into it."
        )
        data["kubelet_feature_gates"] = CommentedSeq(
            f"{g}={'true' if on else 'false'}" for g, on in placement.feature_gates.items()
        )
    if flags:
        data["kubelet_custom_flags"] = CommentedSeq(flags)
    buf = io.StringIO()
    if data:
        _rt_yaml("").dump(data, buf)
    else:
        buf.write("{}\n")
    return "\n".join(head) + "\n" + buf.getvalue()


# --------------------------------------------------------------------------- merging


def _without_flags(item: str, drop: frozenset[str]) -> str | None:
    """``item`` with the dropped flags removed (None when nothing is left)."""
    words: list[Word | None] = list(split_words(item))
    found, _ = parse_flags(words, source=item, path="", detail="")
    kept = [f.text for f in found if f.name not in drop]
    if len(kept) == len(found):
        return item
    return " ".join(kept) or None


def merge_kubespray(
    text: str,
    path: str,
    placement: Placement,
    *,
    remove_flags: frozenset[str] = frozenset(),
) -> str:
    """Set the placement's variables in a group_vars file, keeping comments and order.

    Keys now written through a dedicated variable are removed from
    ``kubelet_config_extra_args``; ``kubelet_custom_flags`` loses flags named in
    ``remove_flags`` or overriding a placed field. Unchanged input is returned as is.
    """
    read_kubespray(path, text)  # validation with line numbers
    y = _rt_yaml(text)
    try:
        data = y.load(text) if text.strip() else None
    except YAMLError as e:
        raise _yaml_error(path, e) from e
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise InputError("group_vars must be a YAML mapping of variables", path=path, line=1)
    dedicated, extra, flags, _ = _plan(placement)
    changed = False
    for var, value in dedicated.items():
        cur = data.get(var)
        if isinstance(value, Mapping) and isinstance(cur, CommentedMap):
            for k, val in value.items():
                if cur.get(k) != val:
                    _put(cur, k, val)
                    changed = True
            for k in [k for k in cur if k not in value]:
                _delete(cur, k)
                changed = True
        elif var not in data or _plain(cur) != _plain(value):
            _put(data, var, _to_yaml(value))
            changed = True
    cea = data.get("kubelet_config_extra_args")
    if isinstance(cea, CommentedMap):
        for fld in [f for f in cea if f in _DEDICATED and _DEDICATED[f] in data]:
            _delete(cea, fld)
            changed = True
        if placement.feature_gates and "featureGates" in cea:
            _delete(cea, "featureGates")
            changed = True
    if extra:
        if not isinstance(cea, CommentedMap):
            cea = CommentedMap()
            _put(data, "kubelet_config_extra_args", cea)
        for fld, value in extra.items():
            if fld not in cea or _plain(cea[fld]) != _plain(value):
                _put(cea, fld, _to_yaml(value))
                changed = True
    if placement.feature_gates:
        changed |= _merge_gates(data, placement.feature_gates)
    drop = (frozenset(remove_flags) | field_override_flags(placement)) - set(
        placement.kubelet_flags
    )
    drop |= frozenset(placement.kubelet_flags)  # re-added below with the wanted value
    for var in ("kubelet_custom_flags", "kubelet_node_custom_flags"):
        seq = data.get(var)
        if not isinstance(seq, CommentedSeq):
            continue
        for i in reversed(range(len(seq))):
            if not isinstance(seq[i], str):
                continue
            if var == "kubelet_custom_flags" and seq[i] in flags:
                continue
            new = _without_flags(seq[i], drop)
            if new is None:
                del seq[i]
                changed = True
            elif new != seq[i]:
                seq[i] = new
                changed = True
    if flags:
        seq = data.get("kubelet_custom_flags")
        if not isinstance(seq, CommentedSeq):
            seq = CommentedSeq()
            _put(data, "kubelet_custom_flags", seq)
        for f in flags:
            if f not in seq:
                seq.append(f)
                changed = True
    if not changed:
        return text
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _merge_gates(data: CommentedMap, gates: Mapping[str, bool]) -> bool:
    seq = data.get("kubelet_feature_gates")
    changed = False
    if not isinstance(seq, CommentedSeq) or not seq:
        base = data.get("kube_feature_gates")
        seq = CommentedSeq(list(base) if isinstance(base, list) else [])
        _put(data, "kubelet_feature_gates", seq)
        changed = True
    for gate, on in gates.items():
        entry = f"{gate}={'true' if on else 'false'}"
        idx = [i for i, x in enumerate(seq) if str(x).partition("=")[0].strip() == gate]
        if idx:
            if seq[idx[0]] != entry:
                seq[idx[0]] = entry
                changed = True
        else:
            seq.append(entry)
            changed = True
    return changed
