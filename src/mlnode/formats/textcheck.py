"""Checks every reader runs on a file's text before parsing it: NUL bytes and deep nesting.

No file a kubelet, kubeadm, kubespray, containerd or CRI-O reads, and no profile, plan or
snapshot, nests anywhere near :data:`MAX_NESTING_DEPTH` levels; the parsers recurse once per
level and a hostile file 100,000 levels deep would end in a ``RecursionError`` traceback
instead of an error naming the file. :func:`check_text` refuses both with an
:class:`~mlnode.errors.InputError` naming ``file:line``.

The depth scan counts flow brackets (``[`` ``{``, as JSON, YAML flow collections and TOML
arrays / inline tables write them) outside quoted strings and comments. YAML block
nesting (indentation, ``- - -``) is not counted: a parser that still recurses too deep is
caught by :func:`nesting_error`, which names the most deeply indented line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from mlnode.errors import InputError

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_YAML_VALUES",
    "check_nul",
    "check_text",
    "check_yaml_expansion",
    "nesting_error",
    "text_problem",
]

#: tomlkit's own limit; Python's parsers reach the recursion limit between 250 and 1000.
MAX_NESTING_DEPTH = 100

_OPEN = "[{"
_CLOSE = "]}"
_QUOTE_AFTER = " \t\n[{,:=-"


def _nul_line(text: str) -> int | None:
    i = text.find("\x00")
    return None if i < 0 else text.count("\n", 0, i) + 1


def _too_deep_line(text: str) -> int | None:
    """The 1-based line where flow nesting first exceeds the limit, else None."""
    depth = 0
    line = 1
    i = 0
    n = len(text)
    prev = "\n"
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c in "\"'" and prev in _QUOTE_AFTER:
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            prev = c
            continue
        elif c == "#" and prev in " \t\n":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in _OPEN:
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                return line
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        prev = c
        i += 1
    return None


def _string_end(text: str, start: int) -> int:
    """The index after the string opened at ``start`` (or the end of its line if unclosed)."""
    quote = text[start]
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and quote == '"':
            i += 2
            continue
        if c == quote:
            return i + 1
        if c == "\n":
            return i  # an unclosed quote: let the parser report it
        i += 1
    return n


_NUL = "contains a NUL byte; this is not a text configuration file"
_DEEP = f"nested more than {MAX_NESTING_DEPTH} levels deep; no configuration nests that deep"


def text_problem(text: str) -> tuple[int, str] | None:
    """(line, message) of the first NUL byte or over-deep nesting in ``text``, else None."""
    line = _nul_line(text)
    if line is not None:
        return line, _NUL
    line = _too_deep_line(text)
    if line is not None:
        return line, _DEEP
    return None


def check_nul(path: Path | str, text: str) -> None:
    """Refuse a NUL byte, naming the line of the first one."""
    line = _nul_line(text)
    if line is not None:
        raise InputError(_NUL, path=path, line=line)


def check_text(path: Path | str, text: str) -> None:
    """Refuse NUL bytes and nesting deeper than :data:`MAX_NESTING_DEPTH`, with file:line."""
    problem = text_problem(text)
    if problem is not None:
        raise InputError(problem[1], path=path, line=problem[0])


def nesting_error(path: Path | str, text: str) -> InputError:
    """The error for a parser that hit the recursion limit on ``text`` (block nesting)."""
    lines = text.splitlines() or [""]
    deepest = max(range(len(lines)), key=lambda k: _indent(lines[k]))
    return InputError(
        f"nested too deeply to read (more than {MAX_NESTING_DEPTH} levels)",
        path=path,
        line=deepest + 1,
    )


def _indent(line: str) -> int:
    stripped = line.lstrip(" \t-")
    return len(line) - len(stripped)


#: More values than any configuration holds; YAML aliases can make a 1 kB file expand to
#: billions ("billion laughs"). The kubelet's YAML decoder (go-yaml) refuses "excessive
#: aliasing" too.
MAX_YAML_VALUES = 100_000


def check_yaml_expansion(path: Path | str, roots: Iterable[Node | None]) -> None:
    """Refuse YAML documents whose aliases expand to more than :data:`MAX_YAML_VALUES`
    values, naming the line of the top-level entry where the count passes the limit."""
    memo: dict[int, int] = {}

    def size(node: Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a recursive alias counts once
        n = 1
        if isinstance(node, MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            n += sum(size(item) for item in node.value)
        memo[key] = n
        return n

    total = 0
    for root in roots:
        if root is None:
            continue
        entries: list[tuple[Node, int]] = []
        if isinstance(root, MappingNode):
            entries = [(k, size(k) + size(v)) for k, v in root.value]
        elif isinstance(root, SequenceNode):
            entries = [(item, size(item)) for item in root.value]
        else:
            entries = [(root, size(root))]
        for node, n in entries:
            total += n
            if total > MAX_YAML_VALUES:
                raise InputError(
                    f"YAML aliases expand to more than {MAX_YAML_VALUES} values; no"
                    " configuration is that large (the kubelet's YAML decoder refuses"
                    " excessive aliasing too)",
                    path=path,
                    line=int(node.start_mark.line) + 1,
                )
