"""``--help`` as plain text: every option name whole at any width, each default once.

Typer's rich help panels cut long option names to fit a column ("--kubernetes-vers…")
and interpret square brackets in help text as markup. Commands are built with
``rich_markup_mode=None`` so click's own formatter writes the help: it puts a long option
name on a line of its own and wraps only the help text. Our formatter wraps at spaces
only, so an option name or path in a help text is never split at one of its hyphens. An
option whose help text already says its default ("(default 4)", "default: discover") is
not given a second ``[default: 4]``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import Any, TypeVar

try:  # Typer 0.2x vendors click; before, click was a dependency
    from typer._click import Context, HelpFormatter
except ImportError:  # pragma: no cover
    from click import Context, HelpFormatter  # type: ignore[assignment]

__all__ = ["HelpContext", "plain_help", "states_default"]

C = TypeVar("C")

_DEFAULT_WORD = re.compile(r"\bdefault\b", re.IGNORECASE)


def states_default(help_text: str | None) -> bool:
    """True when the help text itself tells the default."""
    return bool(help_text and _DEFAULT_WORD.search(help_text))


def _wrap(text: str, width: int) -> list[str]:
    """Paragraphs (blank-line separated) rewrapped at spaces, never inside a word."""
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if lines:
            lines.append("")
        lines += textwrap.wrap(
            " ".join(paragraph.split()),
            max(width, 10),
            break_on_hyphens=False,
            break_long_words=False,
        )
    return lines


class _Formatter(HelpFormatter):
    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        for line in _wrap(text, self.width - self.current_indent):
            self.write(f"{indent}{line}\n" if line else "\n")

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        rows = list(rows)
        first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        pad = " " * (first_col + self.current_indent)
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:
                self.write("\n" + pad)
            lines = _wrap(second, self.width - first_col - 2) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(f"{pad}{line}\n" if line else "\n")


class HelpContext(Context):
    """The click context of every mlnode command: help goes through our formatter."""

    formatter_class = _Formatter


def plain_help(command: C) -> C:
    """``command`` with its help through :class:`HelpContext` and each default shown once
    (changed in place; returned for chaining)."""
    command.context_class = HelpContext  # type: ignore[attr-defined]
    params: list[Any] = getattr(command, "params", [])
    for param in params:
        if states_default(getattr(param, "help", None)):
            param.show_default = False
    return command
