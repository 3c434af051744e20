"""Edits of a YAML text at the positions its composed nodes give, spliced into the original.

The kubeadm merge changes only the lines it means to change: everything else stays byte for
byte as written. A ruamel round trip would not: it rewrites ``taints: null`` as ``taints:``,
``-  "x"`` as ``- "x"`` and moves a trailing comment below keys appended after it.

Positions are character offsets into the text (``Mark.index`` of the composed nodes). A
block entry spans whole lines, from the line of its key (or list dash) to the end of the line
where its content ends; new entries go after the last entry's content and after comment
lines that follow it at the entry's own indentation or deeper (such a comment belongs to the
block, e.g. ``# kubelet specific options here`` at the end of a document).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "PLAIN_OR_SINGLE",
    "Edit",
    "QuoteStyle",
    "after_line",
    "apply_edits",
    "block_lines",
    "comments_above",
    "content_end",
    "end_of_block",
    "insertion",
    "is_block",
    "line_start",
    "quote_style",
    "scalar_text",
    "style_of",
    "value_replacement",
]

#: '"' or "'": always those quotes; None: plain where YAML reads the text back as that
#: string, double quotes elsewhere; PLAIN_OR_SINGLE: the same with single quotes.
QuoteStyle = str | None
PLAIN_OR_SINGLE = "plain-or-'"


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` by ``new`` (``start == end``: an insertion)."""

    start: int
    end: int
    new: str


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with every edit applied; insertions at one offset keep their given order."""
    indexed = sorted(enumerate(edits), key=lambda ie: (ie[1].start, ie[1].end, ie[0]))
    out: list[str] = []
    pos = 0
    for _, e in indexed:
        if e.start < pos:
            raise AssertionError(f"overlapping edits at offset {e.start}")
        out.append(text[pos : e.start])
        out.append(e.new)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def comments_above(text: str, index: int) -> int:
    """The start of the comment lines directly above the line holding ``index`` (no blank
    line between) at that line's indentation or deeper: the comment that describes it."""
    start = line_start(text, index)
    column = index - start
    while start > 0:
        prev = line_start(text, start - 1)
        line = text[prev : start - 1]
        stripped = line.lstrip(" ")
        if not stripped.startswith("#") or len(line) - len(stripped) < column:
            break
        start = prev
    return start


def after_line(text: str, end: int) -> int:
    """The offset just past the line on which content ending at ``end`` ends."""
    if end > 0 and text[end - 1] == "\n":
        return end  # block scalars end at the start of the next line
    nl = text.find("\n", end)
    return len(text) if nl < 0 else nl + 1


def is_block(node: Node) -> bool:
    return isinstance(node, MappingNode | SequenceNode) and not node.flow_style and bool(node.value)


def content_end(node: Node) -> int:
    """Where the node's own text ends (a block collection's end mark is the next token)."""
    if isinstance(node, MappingNode) and is_block(node):
        return content_end(node.value[-1][1])
    if isinstance(node, SequenceNode) and is_block(node):
        return content_end(node.value[-1])
    return int(node.end_mark.index)


def end_of_block(text: str, node: Node, column: int) -> int:
    """Where entries appended to block ``node`` (entries at ``column``) go."""
    pos = after_line(text, content_end(node))
    while pos < len(text):
        nl = text.find("\n", pos)
        line = text[pos : len(text) if nl < 0 else nl]
        stripped = line.lstrip(" ")
        if not stripped.startswith("#") or len(line) - len(stripped) < column:
            break
        pos = len(text) if nl < 0 else nl + 1
    return pos


_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./=,<>%+@~-]*")
# YAML 1.1 (what kubeadm's sigs.k8s.io/yaml reads) resolves these plain scalars to non-strings.
_NOT_STRINGS = frozenset(
    {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off"}
    | {"OFF", "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~"}
)
_NUMBER = re.compile(
    r"[-+]?(\.?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|0x[0-9a-fA-F_]+|0b[01_]+"
    r"|\.(inf|Inf|INF|nan|NaN|NAN))"
)


def _plain_ok(s: str) -> bool:
    return bool(_PLAIN.fullmatch(s)) and s not in _NOT_STRINGS and not _NUMBER.fullmatch(s)


def scalar_text(value: Any, style: QuoteStyle = None) -> str:
    """``value`` as a YAML scalar: numbers and booleans plain, strings in ``style``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    s = str(value)
    if style in (None, PLAIN_OR_SINGLE) and _plain_ok(s):
        return s
    if style in ("'", PLAIN_OR_SINGLE) and s.isprintable():
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


def _double_quoted(s: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, others escaped."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def style_of(node: Node) -> QuoteStyle:
    """The node's own quotes ('"' or "'"), None for a plain scalar or a collection."""
    style = getattr(node, "style", None)
    return str(style) if style in ('"', "'") else None


def quote_style(nodes: Sequence[Node]) -> QuoteStyle:
    """The quoting these scalars use: quotes throughout, else plain where possible and the
    quotes they use where needed (double when they show none or both)."""
    styles = {n.style for n in nodes if isinstance(n, ScalarNode)}
    if len(styles) == 1 and styles & {'"', "'"}:
        return str(next(iter(styles)))
    return PLAIN_OR_SINGLE if styles & {'"', "'"} == {"'"} else None


def block_lines(entries: Mapping[str, Any], column: int, indent: int, style: QuoteStyle) -> str:
    """A block mapping at ``column``; a dict value becomes a nested block ``indent`` deeper.

    ``style`` is for the values; keys are plain where they can be.
    """
    pad = " " * column
    out: list[str] = []
    for key, value in entries.items():
        if isinstance(value, Mapping):
            out.append(f"{pad}{scalar_text(key)}:\n")
            out.append(block_lines(value, column + indent, indent, style))
        else:
            out.append(f"{pad}{scalar_text(key)}: {scalar_text(value, style)}\n")
    return "".join(out)


def value_replacement(text: str, key: Node, value: Node, block: str) -> list[Edit]:
    """Edits turning ``key: <null, empty or flow value>`` into ``key:`` followed by ``block``.

    A comment after the value stays on the key's line.
    """
    key_line_end = after_line(text, int(key.end_mark.index))
    empty = isinstance(value, ScalarNode) and value.value == "" and not value.style
    if empty or int(value.start_mark.index) >= key_line_end:
        return [insertion(text, key_line_end, block)]
    start, end = int(value.start_mark.index), int(value.end_mark.index)
    while start > 0 and text[start - 1] == " ":
        start -= 1
    rest = text[end : after_line(text, end)]
    if not rest.strip():
        end += len(rest.rstrip("\n"))
    return [Edit(start, end, ""), insertion(text, key_line_end, block)]


def insertion(text: str, pos: int, lines: str) -> Edit:
    """Insert whole ``lines`` at ``pos`` (a line start, or the end of the text)."""
    return Edit(pos, pos, _with_newline(text, pos) + lines)


def _with_newline(text: str, pos: int) -> str:
    """ "\\n" when inserting at the very end of a text without a final newline."""
    return "\n" if pos == len(text) and text and not text.endswith("\n") else ""
