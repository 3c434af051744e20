"""Writing group_vars: rendering a placement, or merging it into an existing file while
keeping comments and order.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from mlnode.errors import InputError
from mlnode.formats._yamlsplice import splice_top_level
from mlnode.formats.kubelet_argv import Word, field_override_flags, parse_flags, split_words
from mlnode.formats.kubelet_config import (
    _delete,
    _plain,
    _put,
    _rt_yaml,
    _to_yaml,
    _yaml_error,
)
from mlnode.formats.kubespray._read import read_kubespray
from mlnode.formats.kubespray._variables import (
    DEDICATED,
    RUNTIME_VAR,
)
from mlnode.knowledge.placement import Placement

__all__ = ["merge_kubespray", "render_kubespray"]


def _plan(placement: Placement) -> tuple[dict[str, Any], dict[str, Any], list[str], list[str]]:
    """(dedicated variables, kubelet_config_extra_args, custom flags, unplaceable notes)."""
    dedicated: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for fld, value in placement.kubelet_fields.items():
        var = DEDICATED.get(fld)
        if var is not None:
            dedicated[var] = value
        else:
            extra[fld] = value
    notes: list[str] = []
    for pv in placement.runtime_values:
        var = RUNTIME_VAR.get((pv.row.runtime, pv.row.name))
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
    before = _plain(data)
    changed = _merge_dedicated(data, dedicated)
    changed |= _merge_extra_args(data, extra, placement)
    if placement.feature_gates:
        changed |= _merge_gates(data, placement.feature_gates)
    changed |= _merge_flags(data, flags, placement, remove_flags)
    if not changed:
        return text
    spliced = splice_top_level(text, before, data, y)  # every other byte kept, when it can
    if spliced is not None:
        return spliced
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


def _merge_dedicated(data: CommentedMap, dedicated: Mapping[str, Any]) -> bool:
    """Set each dedicated variable; a mapping variable is made equal key by key."""
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
    return changed


def _merge_extra_args(data: CommentedMap, extra: Mapping[str, Any], placement: Placement) -> bool:
    """kubelet_config_extra_args: drop what a dedicated variable now writes, set the rest."""
    changed = False
    cea = data.get("kubelet_config_extra_args")
    if isinstance(cea, CommentedMap):
        for fld in [f for f in cea if f in DEDICATED and DEDICATED[f] in data]:
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
    return changed


def _merge_flags(
    data: CommentedMap, flags: list[str], placement: Placement, remove_flags: frozenset[str]
) -> bool:
    """Custom flag lists lose removed and field-overriding flags; the placed flags are added."""
    changed = False
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
    return changed


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
