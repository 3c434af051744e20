"""Changing top-level scalar keys of a YAML mapping as text, so every other byte stays.

A ruamel round trip re-emits the whole document: it normalises what it read (``True``
becomes ``true``, ``key : v`` becomes ``key: v``) and can move a comment block to another
key. When a merge changes only top-level keys whose old and new values are scalars,
:func:`splice_top_level` makes the change in the text instead: a changed value is replaced
where it stands on its line (a comment after it stays), a new key goes on its own line
right after the entry that precedes it in the merged mapping (before the comments that
describe the next entry), a removed key loses only its own line. Anything else returns
None and the caller falls back to the round trip.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

__all__ = ["splice_top_level"]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_plain(x) for x in value]
    return value


def _safe() -> YAML:
    return YAML(typ="safe", pure=True)


def _single_mapping(text: str) -> MappingNode | None:
    try:
        docs = list(_safe().compose_all(text))
    except (YAMLError, ValueError, TypeError, RecursionError):
        return None
    if len(docs) != 1 or not isinstance(docs[0], MappingNode) or docs[0].flow_style:
        return None
    node = docs[0]
    keys = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
    if len(keys) != len(node.value) or len(set(keys)) != len(keys):
        return None
    return node


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (Mapping, list))


def _one_line_scalar(vn: Node, kn: Node) -> bool:
    return (
        isinstance(vn, ScalarNode)
        and vn.start_mark.line == vn.end_mark.line == kn.start_mark.line
        and vn.style not in ("|", ">")
    )


def _is_filler(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _entry_end(lines: list[str], node: MappingNode, i: int) -> int:
    """The line after entry ``i``'s value, trailing blank and comment lines left out."""
    kn, vn = node.value[i]
    if _one_line_scalar(vn, kn):
        return int(vn.end_mark.line) + 1
    end = int(node.value[i + 1][0].start_mark.line) if i + 1 < len(node.value) else len(lines)
    floor = int(kn.start_mark.line) + 1
    while end > floor and _is_filler(lines[end - 1]):
        end -= 1
    return end


def _dumped(y: YAML, key: str, value: Any) -> tuple[str, str] | None:
    """(``key: value`` line, the value's own text) as ``y`` writes them."""
    buf = io.StringIO()
    y.dump(CommentedMap([(key, value)]), buf)
    line = buf.getvalue().removeprefix("---\n")  # a file with `---` makes y write it
    node = _single_mapping(line)
    if node is None or line.count("\n") != 1:
        return None
    vn = node.value[0][1]
    return line, line[vn.start_mark.column : vn.end_mark.column]


def splice_top_level(
    text: str, before: Mapping[str, Any], after: CommentedMap, y: YAML
) -> str | None:
    """``text`` (which holds ``before``) edited to hold ``after``; None when not possible."""
    node = _single_mapping(text)
    if node is None:
        return None
    wanted = {str(k): _plain(v) for k, v in after.items()}
    index = {str(k.value): i for i, (k, _) in enumerate(node.value)}
    if set(index) != set(before):
        return None
    lines = text.splitlines(keepends=True)
    replace: dict[int, str] = {}
    drop: set[int] = set()
    insert: dict[int, list[str]] = {}
    indent = " " * int(node.value[0][0].start_mark.column) if node.value else ""
    last_seen: int | None = None
    for key, value in after.items():
        key = str(key)
        if key in index:
            last_seen = index[key]
            if before[key] == wanted[key]:
                continue
        if not _is_scalar(wanted[key]):
            return None
        dumped = _dumped(y, key, value)
        if dumped is None:
            return None
        if key in index:
            kn, vn = node.value[index[key]]
            if not _one_line_scalar(vn, kn) or not _is_scalar(before[key]):
                return None
            ln = int(vn.start_mark.line)
            old = lines[ln]
            replace[ln] = old[: vn.start_mark.column] + dumped[1] + old[vn.end_mark.column :]
        elif last_seen is None:
            return None  # a new first key: where its comments would go is unclear
        else:
            insert.setdefault(_entry_end(lines, node, last_seen), []).append(indent + dumped[0])
    for key in (k for k in before if k not in wanted):
        kn, vn = node.value[index[key]]
        if not _one_line_scalar(vn, kn):
            return None
        drop.add(int(kn.start_mark.line))
    out: list[str] = []
    for ln in range(len(lines) + 1):
        if ln in insert:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out.extend(insert[ln])
        if ln < len(lines) and ln not in drop:
            out.append(replace.get(ln, lines[ln]))
    result = "".join(out)
    try:
        check = _safe().load(result)
    except YAMLError:
        return None
    return result if _plain(check) == wanted else None
