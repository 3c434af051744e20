"""Where each key of a TOML text stands: :func:`key_lines` (see :mod:`._tomlscan`).

tomlkit parses but does not tell on which line a key is; this scans the text once,
tracking the current ``[table]`` / ``[[array]]`` header and every key (dotted, quoted,
inside inline tables), skipping strings and arrays. It stops, keeping what it found, on
anything it does not understand.
"""

from __future__ import annotations

import contextlib
import re

__all__ = ["KeyPath", "key_lines"]

KeyPath = tuple[str, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_AOT_MARK = "\x00[]"  # a path component marking "inside an element of an array of tables"


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
