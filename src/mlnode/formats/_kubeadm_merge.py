"""Merging placed settings into a kubeadm config file, where that file's command reads them.

- **InitConfiguration** (``kubeadm init``): KubeletConfiguration fields go into the file's
  KubeletConfiguration document (appended when there is none); flags into
  ``nodeRegistration.kubeletExtraArgs``, and a flag there that would override a placed field
  is dropped.
- **JoinConfiguration** (``kubeadm join``): kubeadm reads no KubeletConfiguration from the
  file (see :mod:`mlnode.formats._kubeadm_read`), so everything goes into
  ``nodeRegistration.kubeletExtraArgs`` as flags: a field whose flag this kubelet still has
  becomes that flag; a field without one is refused, naming where it must be set instead
  (the cluster's kubelet-config ConfigMap or the ``kubeadm init`` config). A
  KubeletConfiguration document in a join file is left as it is.

In both, flags removed from this kubelet version (REMOVED_FLAGS) and ``remove_flags`` go, in
the v1beta3 map form and the v1beta4 list form alike. The edits are spliced into the text
(:mod:`mlnode.formats._kubeadm_edit`): every other byte stays as written.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlnode.errors import InputError, UsageError
from mlnode.formats._kubeadm_edit import (
    Edit,
    QuoteStyle,
    after_line,
    apply_edits,
    block_lines,
    comments_above,
    content_end,
    end_of_block,
    insertion,
    is_block,
    line_start,
    quote_style,
    scalar_text,
    style_of,
    value_replacement,
)
from mlnode.formats._kubeadm_read import (
    api_spec,
    kubeadm_reader,
    kubelet_configmap_name,
    read_kubeadm,
)
from mlnode.formats.kubelet_argv import field_override_flags
from mlnode.formats.kubelet_config import (
    KUBELET_API_VERSION,
    KUBELET_KIND,
    _compose_all,
    _construct,
    _document,
    _guess_indent,
    _rt_yaml,
)
from mlnode.knowledge.placement import Placement, flag_value
from mlnode.knowledge.table import REMOVED_FLAGS, kubelet_setting_by_field
from mlnode.knowledge.values import parse_field_value

__all__ = ["join_flags", "merge_kubeadm"]


@dataclass(frozen=True)
class _Doc:
    node: MappingNode
    kind: str
    api: str
    pairs: Mapping[str, tuple[Node, Node]]  # the last occurrence of each key


@dataclass(frozen=True)
class _Layout:
    """How the file indents: mapping step and where a list's dash sits under its key."""

    indent: int
    dash_offset: int


def _last_pairs(node: MappingNode) -> dict[str, tuple[Node, Node]]:
    return {str(k.value): (k, v) for k, v in node.value if isinstance(k, ScalarNode)}


def _docs(path: str, text: str) -> list[_Doc]:
    out = []
    for node in _compose_all(path, text):
        if not isinstance(node, MappingNode):
            continue
        pairs = _last_pairs(node)
        kind = _construct(path, pairs["kind"][1]) if "kind" in pairs else ""
        api = _construct(path, pairs["apiVersion"][1]) if "apiVersion" in pairs else ""
        out.append(_Doc(node, str(kind), str(api), pairs))
    return out


def _column(node: MappingNode) -> int:
    return int(node.value[0][0].start_mark.column) if node.value else 0


# --------------------------------------------------------------------------- what join gets


def _join_refusal(field: str, placement: Placement) -> str:
    k8s = placement.kubernetes_version
    row = kubelet_setting_by_field(field)
    why = (
        f"{field} has no kubelet flag"
        if row is None or row.flag is None
        else f"--{row.flag} (the flag for {field}) does not exist in kubelet {k8s}"
    )
    return (
        f"{why}, and `kubeadm join` reads no KubeletConfiguration from its --config file (only"
        f" the JoinConfiguration): set {field} in the kube-system/{kubelet_configmap_name(k8s)}"
        " ConfigMap (data.kubelet) or in the `kubeadm init` config's KubeletConfiguration"
    )


def join_flags(
    placement: Placement, path: str | None, existing_gates: str | None = None
) -> dict[str, str]:
    """The kubelet flags a JoinConfiguration carries for this placement.

    A field that has no flag in this kubelet version is refused in one line naming the field
    and where it must go: :class:`InputError` for the file at ``path``, :class:`UsageError`
    when rendering a new file (``path`` None).
    """
    k8s = placement.kubernetes_version
    flags = dict(placement.kubelet_flags)
    for field, value in placement.kubelet_fields.items():
        row = kubelet_setting_by_field(field)
        if row is None or row.flag is None or not row.flag_span.contains(k8s):
            reason = _join_refusal(field, placement)
            raise InputError(reason, path=path) if path is not None else UsageError(reason)
        flags[row.flag] = flag_value(row.kind, parse_field_value(row, value))
    if placement.feature_gates:
        gates: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in (existing_gates or "").split(","))):
            name, _, val = part.partition("=")
            gates[name.strip()] = val.strip()
        gates.update({g: "true" if on else "false" for g, on in placement.feature_gates.items()})
        flags["feature-gates"] = ",".join(f"{g}={val}" for g, val in gates.items())
    return flags


# --------------------------------------------------------------------------- mapping edits


def _same(path: str, node: Node, value: Any) -> bool:
    if isinstance(value, Mapping) or not isinstance(node, ScalarNode):
        return bool(_construct(path, node) == value)
    return bool(_construct(path, node) == value and node.value != "")


def _set_value(text: str, key: Node, value: Node, new: Any, layout: _Layout) -> Edit:
    """Replace one entry's value, keeping the rest of its line (a trailing comment)."""
    single_line = (
        isinstance(value, ScalarNode)
        and value.value != ""
        and "\n" not in (text[int(value.start_mark.index) : int(value.end_mark.index)])
    )
    if single_line and not isinstance(new, Mapping):
        style = style_of(value)
        return Edit(int(value.start_mark.index), int(value.end_mark.index), scalar_text(new, style))
    col = int(key.start_mark.column)
    raw_key = text[int(key.start_mark.index) : int(key.end_mark.index)]
    if isinstance(new, Mapping):
        body = f"{' ' * col}{raw_key}:\n" + block_lines(
            new, col + layout.indent, layout.indent, None
        )
    else:
        body = f"{' ' * col}{raw_key}: {scalar_text(new)}\n"
    end = after_line(text, content_end(value))
    return Edit(line_start(text, int(key.start_mark.index)), end, body)


def _insert_offset(text: str, mapping: MappingNode, key: str, sort: bool) -> int:
    """Where a new ``key`` goes: in order when the mapping's keys are sorted, else last."""
    col = _column(mapping)
    keys = [str(k.value) for k, _ in mapping.value]
    if sort and len(keys) > 2 and keys == sorted(keys):
        for k, _ in mapping.value:
            if str(k.value) > key:
                return comments_above(text, int(k.start_mark.index))
    return end_of_block(text, mapping, col)


def _edit_mapping(
    text: str,
    path: str,
    mapping: MappingNode,
    wanted: Mapping[str, Any],
    drop: frozenset[str],
    layout: _Layout,
    *,
    name_of: Callable[[str], str] = str,
    sort: bool = False,
) -> list[Edit]:
    """Make block ``mapping`` hold ``wanted`` and lose the keys in ``drop``."""
    edits: list[Edit] = []
    seen: set[str] = set()
    for kn, vn in mapping.value:
        name = name_of(str(kn.value))
        if name in drop:
            start = comments_above(text, int(kn.start_mark.index))
            edits.append(Edit(start, after_line(text, content_end(vn)), ""))
        elif name in wanted:
            seen.add(name)
            if not _same(path, vn, wanted[name]):
                edits.append(_set_value(text, kn, vn, wanted[name], layout))
    new = {k: val for k, val in wanted.items() if k not in seen}
    if not new:
        return edits
    col = _column(mapping)
    style = quote_style([vn for _, vn in mapping.value])
    for key in sorted(new) if sort else new:
        pos = _insert_offset(text, mapping, key, sort)
        edits.append(insertion(text, pos, block_lines({key: new[key]}, col, layout.indent, style)))
    return edits


# --------------------------------------------------------------------------- kubeletExtraArgs


def _bare(name: str) -> str:
    return name.lstrip("-")


def _list_item_name(item: Node) -> tuple[str, Node | None, Node | None]:
    if not isinstance(item, MappingNode):
        return "", None, None
    pairs = _last_pairs(item)
    name = pairs.get("name")
    value = pairs.get("value")
    return (
        _bare(str(name[1].value)) if name else "",
        name[1] if name else None,
        value[1] if value else None,
    )


def _list_entry(name: str, value: str, dash: int, styles: tuple[QuoteStyle, QuoteStyle]) -> str:
    pad = " " * dash
    return (
        f"{pad}- name: {scalar_text(name, styles[0])}\n"
        f"{pad}  value: {scalar_text(value, styles[1])}\n"
    )


def _edit_list_args(
    text: str, path: str, args: SequenceNode, wanted: Mapping[str, str], drop: frozenset[str]
) -> list[Edit]:
    edits: list[Edit] = []
    seen: set[str] = set()
    items = [(item, *_list_item_name(item)) for item in args.value]
    styles = (
        quote_style([n for *_, n, _ in items if n is not None]),
        quote_style([v for *_, v in items if v is not None]),
    )
    for item, name, name_node, value_node in items:
        if name in drop:
            first = line_start(text, int(item.start_mark.index))
            dash = text.rfind("-", first, int(item.start_mark.index))
            start = comments_above(text, max(dash, first))
            edits.append(Edit(start, after_line(text, content_end(item)), ""))
        elif name in wanted:
            seen.add(name)
            if value_node is not None and not _same(path, value_node, wanted[name]):
                style = style_of(value_node)
                start, end = int(value_node.start_mark.index), int(value_node.end_mark.index)
                edits.append(Edit(start, end, scalar_text(wanted[name], style)))
            elif value_node is None and name_node is not None:
                pos = after_line(text, int(name_node.end_mark.index))
                pad = " " * int(item.start_mark.column)
                edits.append(
                    Edit(pos, pos, f"{pad}value: {scalar_text(wanted[name], styles[1])}\n")
                )
    new = {k: val for k, val in wanted.items() if k not in seen}
    if new:
        first = args.value[0]
        dash = text.rfind(
            "-", line_start(text, int(first.start_mark.index)), int(first.start_mark.index)
        )
        dash_col = dash - line_start(text, dash)
        pos = end_of_block(text, args, dash_col)
        body = "".join(_list_entry(n, val, dash_col, styles) for n, val in new.items())
        edits.append(insertion(text, pos, body))
    return edits


def _args_block(entries: Mapping[str, str], is_list: bool, col: int, layout: _Layout) -> str:
    """``entries`` as the lines under a ``kubeletExtraArgs:`` key at column ``col``."""
    if is_list:
        dash = col + layout.dash_offset
        return "".join(_list_entry(n, val, dash, (None, None)) for n, val in entries.items())
    return block_lines(entries, col + layout.indent, layout.indent, None)


def _current_args(path: str, node: Node) -> dict[str, str]:
    """name -> value of a kubeletExtraArgs in either form (the last of repeated names)."""
    current = _construct(path, node)
    if isinstance(current, Mapping):
        return {_bare(str(k)): str(val) for k, val in current.items()}
    if isinstance(current, list):
        return {
            _bare(str(i.get("name"))): str(i.get("value", ""))
            for i in current
            if isinstance(i, Mapping)
        }
    return {}


def _final_entries(
    path: str, node: Node, wanted: Mapping[str, str], drop: frozenset[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(before, after) name -> value of a null or flow-style kubeletExtraArgs."""
    before = _current_args(path, node)
    after = {k: val for k, val in before.items() if k not in drop}
    after.update(wanted)
    return before, after


def _edit_node_registration(
    text: str,
    path: str,
    doc: _Doc,
    wanted: Mapping[str, str],
    drop: frozenset[str],
    layout: _Layout,
) -> list[Edit]:
    spec = api_spec(doc.api)
    assert spec is not None
    is_list = spec.extra_args_is_list
    nr = doc.pairs.get("nodeRegistration")
    if nr is None or not is_block(nr[1]):
        if not wanted:
            return []
        inner = _column(doc.node) + layout.indent
        block = " " * inner + "kubeletExtraArgs:\n" + _args_block(wanted, is_list, inner, layout)
        if nr is None:
            pos = _insert_offset(text, doc.node, "nodeRegistration", sort=True)
            return [insertion(text, pos, " " * _column(doc.node) + "nodeRegistration:\n" + block)]
        if _construct(path, nr[1]) not in (None, {}):
            raise InputError(
                "nodeRegistration in flow style: rewrite it as a block mapping to merge into it",
                path=path,
                line=int(nr[1].start_mark.line) + 1,
            )
        return value_replacement(text, nr[0], nr[1], block)
    nr_map = nr[1]
    assert isinstance(nr_map, MappingNode)
    args = _last_pairs(nr_map).get("kubeletExtraArgs")
    col = _column(nr_map)
    if args is None:
        if not wanted:
            return []
        pos = _insert_offset(text, nr_map, "kubeletExtraArgs", sort=True)
        block = " " * col + "kubeletExtraArgs:\n" + _args_block(wanted, is_list, col, layout)
        return [insertion(text, pos, block)]
    key, node = args
    if is_block(node):
        if isinstance(node, SequenceNode):
            return _edit_list_args(text, path, node, wanted, drop)
        assert isinstance(node, MappingNode)
        return _edit_mapping(text, path, node, wanted, drop, layout, name_of=_bare)
    before, after = _final_entries(path, node, wanted, drop)
    if before == after and not (after and _construct(path, node) is None):
        return []
    if not after:
        return (
            []
            if _construct(path, node) in (None, {}, [])
            else [
                Edit(
                    int(node.start_mark.index),
                    int(node.end_mark.index),
                    "{}" if not is_list else "[]",
                )
            ]
        )
    return value_replacement(text, key, node, _args_block(after, is_list, col, layout))


# --------------------------------------------------------------------------- KubeletConfiguration


def _edit_kubelet_doc(
    text: str, path: str, doc: _Doc, placement: Placement, layout: _Layout
) -> list[Edit]:
    edits: list[Edit] = []
    scalars: dict[str, Any] = {}
    for field, value in placement.kubelet_fields.items():
        pair = doc.pairs.get(field)
        if isinstance(value, Mapping) and pair is not None and is_block(pair[1]):
            sub = pair[1]
            assert isinstance(sub, MappingNode)
            drop = frozenset(str(k.value) for k, _ in sub.value) - set(value)
            edits += _edit_mapping(text, path, sub, value, drop, layout)
        else:
            scalars[field] = value
    gates = dict(placement.feature_gates)
    pair = doc.pairs.get("featureGates")
    if gates and pair is not None and is_block(pair[1]):
        sub = pair[1]
        assert isinstance(sub, MappingNode)
        edits += _edit_mapping(text, path, sub, gates, frozenset(), layout)
    elif gates:
        current = _construct(path, pair[1]) if pair is not None else None
        scalars["featureGates"] = {**(current if isinstance(current, dict) else {}), **gates}
    edits += _edit_mapping(text, path, doc.node, scalars, frozenset(), layout, sort=True)
    return edits


def _new_kubelet_document(text: str, placement: Placement) -> Edit:
    buf = io.StringIO()
    _rt_yaml("").dump(_document(placement), buf)
    return insertion(text, len(text), "---\n" + buf.getvalue())


# --------------------------------------------------------------------------- the merge


def merge_kubeadm(
    text: str,
    path: str,
    placement: Placement,
    *,
    remove_flags: frozenset[str] = frozenset(),
) -> str:
    """``text`` with the placement merged where kubeadm init/join reads it (see module doc).

    Only the lines that change are touched; unchanged input is returned as is.
    """
    read_kubeadm(path, text)  # validation with line numbers
    docs = _docs(path, text)
    layout = _Layout(*_guess_indent(text))
    k8s = placement.kubernetes_version
    removed = frozenset(r.flag for r in REMOVED_FLAGS if k8s.at_least(r.removed_in))
    edits: list[Edit] = []
    for doc in docs:
        if api_spec(doc.api) is None:
            continue
        if doc.kind == "InitConfiguration":
            wanted = dict(placement.kubelet_flags)
            drop = (remove_flags | removed | field_override_flags(placement)) - set(wanted)
        elif doc.kind == "JoinConfiguration":
            wanted = join_flags(placement, path, _existing_gates(path, doc))
            drop = (remove_flags | removed) - set(wanted)
        else:
            continue
        edits += _edit_node_registration(text, path, doc, wanted, drop, layout)
    if kubeadm_reader(d.kind for d in docs) != "kubeadm join":
        kubelet_docs = [d for d in docs if d.kind == KUBELET_KIND and d.api == KUBELET_API_VERSION]
        for doc in kubelet_docs:
            edits += _edit_kubelet_doc(text, path, doc, placement, layout)
        if not kubelet_docs and (placement.kubelet_fields or placement.feature_gates):
            edits.append(_new_kubelet_document(text, placement))
    return apply_edits(text, edits) if edits else text


def _existing_gates(path: str, doc: _Doc) -> str | None:
    """The value of a ``feature-gates`` kubeletExtraArg already in the document."""
    nr = doc.pairs.get("nodeRegistration")
    if nr is None or not isinstance(nr[1], MappingNode):
        return None
    args = _last_pairs(nr[1]).get("kubeletExtraArgs")
    return None if args is None else _current_args(path, args[1]).get("feature-gates")
