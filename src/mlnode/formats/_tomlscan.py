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

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import ParseError
from tomlkit.items import InlineTable, Item, Table
from tomlkit.toml_document import TOMLDocument

from mlnode.errors import InputError
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

KeyPath = tuple[str, ...]
Leaf = tuple[KeyPath, str, Any, int | None]  # (table, name, value, line)

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BARE_FULL = re.compile(r"^[A-Za-z0-9_-]+$")
_AOT_MARK = "\x00[]"  # a path component marking "inside an element of an array of tables"
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


class _Stop(Exception):
    """The scanner met text it does not understand."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.aot_count: dict[KeyPath, int] = {}

    # -- low level ---------------------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def advance(self, n: int = 1) -> None:
        chunk = self.s[self.i : self.i + n]
        self.line += chunk.count("\n")
        self.i += n

    def skip_spaces(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            while self.i < len(self.s) and self.s[self.i] != "\n":
                self.i += 1

    def skip_blank(self) -> None:
        """Spaces, newlines and comments."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n":
                self.advance()
            elif c == "#":
                self.skip_comment()
            else:
                return

    def rest_of_line(self) -> None:
        while self.i < len(self.s) and self.s[self.i] != "\n":
            self.i += 1

    # -- strings -----------------------------------------------------------------------
    def basic_string(self) -> str:
        assert self.peek() == '"'
        self.advance()
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise _Stop
            c = self.s[self.i]
            if c == '"':
                self.advance()
                return "".join(out)
            if c == "\n":
                raise _Stop
            if c == "\\":
                out.append(self._escape())
                continue
            out.append(c)
            self.i += 1

    def _escape(self) -> str:
        nxt = self.s[self.i + 1 : self.i + 2]
        simple = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
        if nxt in simple:
            self.i += 2
            return simple[nxt]
        if nxt == "e":
            self.i += 2
            return "\x1b"
        for letter, width in (("u", 4), ("U", 8), ("x", 2)):
            if nxt == letter:
                digits = self.s[self.i + 2 : self.i + 2 + width]
                self.i += 2 + width
                try:
                    return chr(int(digits, 16))
                except ValueError:
                    raise _Stop from None
        raise _Stop

    def literal_string(self) -> str:
        assert self.peek() == "'"
        end = self.s.find("'", self.i + 1)
        nl = self.s.find("\n", self.i + 1)
        if end < 0 or (0 <= nl < end):
            raise _Stop
        value = self.s[self.i + 1 : end]
        self.i = end + 1
        return value

    def multiline_string(self, quote: str) -> None:
        delim = quote * 3
        self.advance(3)
        while True:
            if self.i >= len(self.s):
                raise _Stop
            c = self.s[self.i]
            if quote == '"' and c == "\\":
                self.advance(2)
                continue
            if self.s.startswith(delim, self.i):
                # Up to two quotes may directly precede the closing delimiter.
                n = 3
                while n < 5 and self.s[self.i + n : self.i + n + 1] == quote:
                    n += 1
                self.advance(n)
                return
            self.advance()

    # -- keys ----------------------------------------------------------------------------
    def key_part(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        m = _BARE.match(self.s, self.i)
        if not m:
            raise _Stop
        self.i = m.end()
        return m.group(0)

    def key_path(self) -> KeyPath:
        parts = [self.key_part()]
        while True:
            self.skip_spaces()
            if self.peek() != ".":
                return tuple(parts)
            self.i += 1
            self.skip_spaces()
            parts.append(self.key_part())

    # -- values --------------------------------------------------------------------------
    def value(self, at: KeyPath | None) -> None:
        """Skip one value; record keys of inline tables under ``at`` (None: don't record)."""
        self.skip_spaces()
        c = self.peek()
        if c == "{":
            self.inline_table(at)
        elif c == "[":
            self.array()
        elif self.peek(3) in ('"""', "'''"):
            self.multiline_string(c)
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        else:
            start = self.i
            while self.i < len(self.s) and self.s[self.i] not in " \t\r\n,]}#":
                self.i += 1
            if self.i == start:
                raise _Stop

    def inline_table(self, at: KeyPath | None) -> None:
        self.advance()  # {
        while True:
            self.skip_blank()
            if self.peek() == "}":
                self.advance()
                return
            if not self.peek():
                raise _Stop
            key_line = self.line
            key = self.key_path()
            self.skip_spaces()
            if self.peek() != "=":
                raise _Stop
            self.i += 1
            full = None if at is None else (*at, *key)
            if full is not None:
                self._record(full, key_line)
            self.value(full)
            self.skip_blank()
            if self.peek() == ",":
                self.i += 1

    def array(self) -> None:
        self.advance()  # [
        while True:
            self.skip_blank()
            c = self.peek()
            if c == "]":
                self.advance()
                return
            if not c:
                raise _Stop
            if c == ",":
                self.i += 1
                continue
            before = self.i
            self.value(None)
            if self.i == before:
                raise _Stop

    def _record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)
        # Dotted keys also define their parents (a.b.c = 1 defines table a.b here).
        for n in range(1, len(path)):
            self.lines.setdefault(path[:n], line)

    # -- statements ----------------------------------------------------------------------
    def run(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank()
            if self.i >= len(self.s):
                return
            start_line = self.line
            if self.peek(2) == "[[":
                self.i += 2
                self.skip_spaces()
                path = self.key_path()
                self.skip_spaces()
                if self.peek(2) != "]]":
                    raise _Stop
                self.i += 2
                self._record(path, start_line)
                n = self.aot_count.get(path, 0)
                self.aot_count[path] = n + 1
                table = (*path, _AOT_MARK, str(n))
            elif self.peek() == "[":
                self.i += 1
                self.skip_spaces()
                path = self.key_path()
                self.skip_spaces()
                if self.peek() != "]":
                    raise _Stop
                self.i += 1
                # A header names where the table is defined, even if a dotted key or an
                # earlier subtable mentioned the path first.
                self.lines[path] = start_line
                for n in range(1, len(path)):
                    self.lines.setdefault(path[:n], start_line)
                table = path
            else:
                key = self.key_path()
                self.skip_spaces()
                if self.peek() != "=":
                    raise _Stop
                self.i += 1
                full = (*table, *key)
                if _AOT_MARK not in table:
                    self._record(full, start_line)
                self.value(None if _AOT_MARK in table else full)
            self.skip_spaces()
            self.skip_comment()
            self.rest_of_line()


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path (table headers, keys, keys in inline tables) to its 1-based line."""
    scanner = _Scanner(text)
    with contextlib.suppress(_Stop, IndexError, ValueError):
        scanner.run()
    return scanner.lines


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
