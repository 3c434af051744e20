"""TOML helpers shared by the containerd and CRI-O readers: parse, locate keys, flatten.

tomlkit parses (and keeps comments for merging) but does not tell on which line a key
is. :func:`key_lines` scans the text once, tracking the current ``[table]`` /
``[[array]]`` header and every key (dotted keys, quoted keys with ``"`` or ``'``, keys
inside inline tables), skipping strings (single- and multi-line) and arrays, and maps
every key path to its 1-based line. It runs only on text tomlkit accepted; should it
still meet something it does not understand, it stops and returns what it has found, so
a value then carries the line of its nearest located parent (or none), never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import ParseError
from tomlkit.items import InlineTable, Item, Table
from tomlkit.toml_document import TOMLDocument

from mlnode.errors import InputError
from mlnode.formats._tomllines import KeyPath, key_lines
from mlnode.formats.textcheck import check_text, nesting_error
from mlnode.knowledge.table import RUNTIME_SETTINGS, ValueKind
from mlnode.versions import RuntimeKind

__all__ = [
    "Leaf",
    "duplicate_toml_line",
    "duration_names",
    "flatten",
    "format_table",
    "key_lines",
    "line_of",
    "parse_toml",
    "remove_value",
    "set_value",
]

Leaf = tuple[KeyPath, str, Any, int | None]  # (table, name, value, line)

_BARE_FULL = re.compile(r"^[A-Za-z0-9_-]+$")
_TABLES = (Table, InlineTable, Container, OutOfOrderTableProxy)


def parse_toml(path: str, text: str) -> TOMLDocument:
    """Parse with tomlkit; any failure becomes an :class:`InputError` with the line.

    NUL bytes and nesting deeper than any config are refused first
    (:func:`~mlnode.formats.textcheck.check_text`); a key defined twice is named with the
    line of its second definition.
    """
    check_text(path, text)
    try:
        return tomlkit.parse(text)
    except RecursionError:
        raise nesting_error(path, text) from None
    except ParseError as e:
        if "already exists" in str(e):
            line = duplicate_toml_line(text, e)
            raise InputError(f"not valid TOML: {_duplicate(e)}", path=path, line=line) from e
        msg = str(e)
        # tomlkit appends " at line L col C"; the line goes into the error's location.
        msg = re.sub(r" at line \d+ col \d+$", "", msg)
        raise InputError(f"not valid TOML: {msg} (column {e.col})", path=path, line=e.line) from e
    except Exception as e:  # tomlkit raises assorted errors (e.g. duplicate keys)
        line = duplicate_toml_line(text, e)
        raise InputError(f"not valid TOML: {_duplicate(e)}", path=path, line=line) from e


def _duplicate(error: Exception) -> str:
    msg = re.sub(r"\.? at line \d+ col \d+$", "", str(error)).rstrip(".")
    if "already exists" in msg:
        return f"{msg}: a key defined twice (TOML forbids it; the runtime refuses the file)"
    return msg


def duplicate_toml_line(text: str, error: Exception) -> int | None:
    """The line of the second definition of a duplicated TOML key (tomllib names it; tomlkit
    does not always), else the line tomlkit gives, else None."""
    import tomllib

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        if m:
            return int(m.group(1))
    except RecursionError:
        pass
    line = getattr(error, "line", None)
    return line if isinstance(line, int) and line > 0 else None


def format_table(table: KeyPath) -> str:
    """``("plugins", "io.containerd.grpc.v1.cri")`` → ``plugins."io.containerd.grpc.v1.cri"``."""
    parts = []
    for part in table:
        if _BARE_FULL.match(part):
            parts.append(part)
        else:
            parts.append(tomlkit.string(part).as_string())
    return ".".join(parts)


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, else of its nearest parent that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def duration_names(runtime: RuntimeKind) -> frozenset[str]:
    """The keys ``runtime`` reads as a duration (knowledge's runtime settings table)."""
    return frozenset(
        r.name for r in RUNTIME_SETTINGS if r.runtime is runtime and r.kind is ValueKind.DURATION
    )


def flatten(
    data: Mapping[str, Any],
    lines: Mapping[KeyPath, int],
    *,
    value_names: frozenset[str] = frozenset(),
) -> list[Leaf]:
    """Every non-table value, with its table path, in document order.

    Tables and inline tables are both descended into, so ``registry.config_path`` is the
    same leaf whether written as ``[x.registry] config_path = ...`` or
    ``registry = { config_path = ... }``. Arrays (also arrays of tables) are leaves, and so
    is a table under one of ``value_names`` (keys that hold a value, such as a duration, so
    that a table written there is reported as a value of the wrong type).
    """
    out: list[Leaf] = []

    def walk(node: Mapping[str, Any], prefix: KeyPath) -> None:
        for key, value in node.items():
            full = (*prefix, str(key))
            if isinstance(value, Mapping) and str(key) not in value_names:
                walk(value, full)
            else:
                out.append((prefix, str(key), value, line_of(lines, full)))

    walk(data, ())
    return out


def iter_tables(data: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every table path in ``data`` (parents before children)."""
    for key, value in data.items():
        if isinstance(value, Mapping):
            path = (*prefix, str(key))
            yield path
            yield from iter_tables(value, path)


def set_value(
    doc: TOMLDocument,
    table: KeyPath,
    name: str,
    value: Any,
    *,
    path: str,
    lines: Mapping[KeyPath, int],
) -> None:
    """Set ``table``.``name`` = ``value`` in place, creating missing tables.

    A value that is already equal is left as written (so merging is idempotent and keeps
    the author's quoting); a replaced value keeps its indentation and trailing comment; a
    new key is indented like the keys next to it.
    """
    node: Any = doc
    for i, part in enumerate(table):
        if part not in node:
            node[part] = tomlkit.table(is_super_table=i < len(table) - 1)
        node = node[part]
        if not isinstance(node, _TABLES):
            raise InputError(
                f"{format_table(table[: i + 1])} is a value here, not a table; cannot set"
                f" {name} under it",
                path=path,
                line=line_of(lines, table[: i + 1]),
            )
    current = node.get(name)
    if current is not None:
        plain = current.unwrap() if isinstance(current, Item) else current
        if plain == value and type(plain) is type(value):
            return
        if isinstance(current, (Table, InlineTable)) and not isinstance(value, Mapping):
            raise InputError(
                f"{format_table((*table, name))} is a table here, not a value",
                path=path,
                line=line_of(lines, (*table, name)),
            )
    body = node.value.body if current is None and isinstance(node, Table) else []
    last_key = max((i for i, (k, it) in enumerate(body) if k is not None), default=None)
    if last_key is not None and last_key + 1 < len(body):
        # The blank lines and comments after a table's last key introduce what follows
        # (the next table's header): a new key goes right after that last key instead.
        node.value._insert_at(last_key + 1, name, tomlkit.item(value))
    else:
        node[name] = tomlkit.item(value)
    if current is None and isinstance(node, Table):
        # tomlkit indents a new key like the table header; match the sibling keys instead.
        indent = next(
            (
                str(it.trivia.indent)
                for k, it in node.value.body
                if k is not None and k.key != name and not isinstance(it, Table)
            ),
            None,
        )
        added = node.value.item(name)
        if (
            indent is not None
            and isinstance(added, Item)
            and not isinstance(added, (Table, InlineTable))
        ):
            added.trivia.indent = indent


def remove_value(doc: TOMLDocument, table: KeyPath, name: str) -> bool:
    """Delete ``table``.``name`` if present (the table itself stays); True if deleted."""
    node: Any = doc
    for part in table:
        if not isinstance(node, _TABLES) or part not in node:
            return False
        node = node[part]
    if isinstance(node, _TABLES) and name in node:
        del node[name]
        return True
    return False
