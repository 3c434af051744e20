"""The EnvironmentFile lexer: systemd's ``parse_env_file_internal`` states, one method each.

:func:`lex_env` returns every ``KEY=VALUE`` assignment with, for each value character, its
raw offset in the file and the quoting in force there — what :mod:`mlnode.formats.envfile`
needs to read values and to edit them in place. The rules are in that module's docstring.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass

from mlnode.errors import InputError
from mlnode.formats.facts import EnvFileFacts

__all__ = ["DQ_ESCAPABLE", "Assignment", "Lines", "Quote", "lex_env"]

_WS = " \t\n\r"
_NL = "\n\r"
DQ_ESCAPABLE = '"\\`$'


class Quote(enum.Enum):
    NONE = "none"
    SINGLE = "single"
    DOUBLE = "double"


@dataclass(frozen=True)
class Assignment:
    name: str
    value: str
    line: int  # where the key starts
    start: int  # offset of the key's first character
    end: int  # offset of the terminating newline, or len(text)
    offsets: tuple[int, ...]  # raw offset of each value character
    contexts: tuple[Quote, ...]  # quoting in force for each value character
    style: Quote  # how the value starts: unquoted, '...' or "..."


class Lines:
    def __init__(self, text: str) -> None:
        self._nl = [i for i, c in enumerate(text) if c == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._nl, offset) + 1


class _Lexer:
    """One pass over the text; ``state`` names the method that takes the next character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = Lines(text)
        self.out: list[Assignment] = []
        self.ignored_lines: list[int] = []
        self.comment_cont: list[int] = []
        self.state = "pre_key"
        self.key: list[str] = []
        self.key_start = 0
        self.key_ws: int | None = None  # index in key where trailing whitespace starts
        self.val: list[str] = []
        self.offs: list[int] = []
        self.ctxs: list[Quote] = []
        self.val_ws: int | None = None
        self.style: Quote | None = None
        self.quote_open = 0

    def push(self, end: int) -> None:
        name = "".join(self.key[: self.key_ws] if self.key_ws is not None else self.key)
        n = len(self.val) if (self.state != "value" or self.val_ws is None) else self.val_ws
        self.out.append(
            Assignment(
                name=name,
                value="".join(self.val[:n]),
                line=self.lines.line(self.key_start),
                start=self.key_start,
                end=end,
                offsets=tuple(self.offs[:n]),
                contexts=tuple(self.ctxs[:n]),
                style=self.style or Quote.NONE,
            )
        )
        self.key, self.val, self.offs, self.ctxs = [], [], [], []
        self.val_ws = self.key_ws = None
        self.style = None

    def add(self, c: str, i: int, q: Quote) -> None:
        self.val.append(c)
        self.offs.append(i)
        self.ctxs.append(q)

    def pre_key(self, c: str, i: int) -> None:
        if c in "#;":
            self.state = "comment"
        elif c not in _WS:
            self.state = "key"
            self.key = [c]
            self.key_start = i
            self.key_ws = None

    def key_char(self, c: str, i: int) -> None:
        if c in _NL:
            self.ignored_lines.append(self.lines.line(self.key_start))
            self.state = "pre_key"
            self.key = []
        elif c == "=":
            self.state = "pre_value"
            self.val_ws = None
        else:
            if c not in _WS:
                self.key_ws = None
            elif self.key_ws is None:
                self.key_ws = len(self.key)
            self.key.append(c)

    def pre_value(self, c: str, i: int) -> None:
        if c in _NL:
            self.push(i)
            self.state = "pre_key"
        elif c == "'":
            self.style = self.style or Quote.SINGLE
            self.quote_open = i
            self.state = "single"
        elif c == '"':
            self.style = self.style or Quote.DOUBLE
            self.quote_open = i
            self.state = "double"
        elif c == "\\":
            self.style = self.style or Quote.NONE
            self.state = "value_escape"
        elif c not in _WS:
            self.style = self.style or Quote.NONE
            self.state = "value"
            self.add(c, i, Quote.NONE)

    def value(self, c: str, i: int) -> None:
        if c in _NL:
            self.push(i)
            self.state = "pre_key"
        elif c == "\\":
            self.state = "value_escape"
            self.val_ws = None
        else:
            if c not in _WS:
                self.val_ws = None
            elif self.val_ws is None:
                self.val_ws = len(self.val)
            self.add(c, i, Quote.NONE)

    def value_escape(self, c: str, i: int) -> None:
        self.state = "value"
        if c not in _NL:
            self.add(c, i, Quote.NONE)

    def single(self, c: str, i: int) -> None:
        if c == "'":
            self.state = "pre_value"
        else:
            self.add(c, i, Quote.SINGLE)

    def double(self, c: str, i: int) -> None:
        if c == '"':
            self.state = "pre_value"
        elif c == "\\":
            self.state = "double_escape"
        else:
            self.add(c, i, Quote.DOUBLE)

    def double_escape(self, c: str, i: int) -> None:
        self.state = "double"
        if c in DQ_ESCAPABLE:
            self.add(c, i, Quote.DOUBLE)
        elif c != "\n":
            self.add("\\", i - 1, Quote.DOUBLE)
            self.add(c, i, Quote.DOUBLE)

    def comment(self, c: str, i: int) -> None:
        if c == "\\":
            self.state = "comment_escape"
        elif c in _NL:
            self.state = "pre_key"

    def comment_escape(self, c: str, i: int) -> None:
        if c in _NL:
            self.comment_cont.append(self.lines.line(i))
            self.state = "pre_key"
        else:
            self.state = "comment"

    def run(self, path: str) -> tuple[list[Assignment], EnvFileFacts]:
        handlers = {
            "pre_key": self.pre_key,
            "key": self.key_char,
            "pre_value": self.pre_value,
            "value": self.value,
            "value_escape": self.value_escape,
            "single": self.single,
            "double": self.double,
            "double_escape": self.double_escape,
            "comment": self.comment,
            "comment_escape": self.comment_escape,
        }
        for i, c in enumerate(self.text):
            handlers[self.state](c, i)
        if self.state in ("single", "double", "double_escape"):
            kind = "single" if self.state == "single" else "double"
            raise InputError(
                f"unterminated {kind} quote in the value of {''.join(self.key).strip()} "
                "(systemd would take the rest of the file as its value)",
                path=path,
                line=self.lines.line(self.quote_open),
            )
        if self.state in ("pre_value", "value", "value_escape"):
            self.push(len(self.text))
        elif self.state == "key":
            self.ignored_lines.append(self.lines.line(self.key_start))
        facts = EnvFileFacts(
            ignored_lines=tuple(self.ignored_lines),
            comment_continuations=tuple(self.comment_cont),
        )
        return self.out, facts


def lex_env(path: str, text: str) -> tuple[list[Assignment], EnvFileFacts]:
    """Every assignment of the EnvironmentFile ``text`` and the lexer's facts
    (``ignored_lines``, ``comment_continuations``; read_env adds the rest); InputError for a
    NUL byte or an unterminated quote."""
    if "\x00" in text:
        raise InputError(
            "contains a NUL byte; not a text file",
            path=path,
            line=Lines(text).line(text.index("\x00")),
        )
    return _Lexer(text).run(path)
