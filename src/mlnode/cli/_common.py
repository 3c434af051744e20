"""What every subcommand shares: the output format, JSON emission and error mapping.

Each subcommand module defines ``register(app: typer.Typer) -> None``. Command bodies
call the pure layers and return; :func:`run` turns our own exceptions into one line on
stderr and the exception's exit code, so no traceback ever reaches an operator for an
error we anticipated.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from mlnode.errors import MlnodeError, UsageError
from mlnode.units import parse_bytes, parse_go_duration

__all__ = [
    "OutputFormat",
    "duration_option",
    "emit_config",
    "emit_json",
    "emit_json_line",
    "fail",
    "finite_float",
    "run",
    "size_option",
    "stderr",
    "stdout",
]

T = TypeVar("T")

# Human output prints every literal as written: no console markup ("[plugins.x]" is text,
# not a style tag), no emoji codes, no highlighting. Styling is explicit (rich.text.Text).
stdout = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


class OutputFormat(enum.StrEnum):
    HUMAN = "human"
    JSON = "json"


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout (sorted keys keep diffs and tests stable)."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def emit_config(doc: dict[str, Any], output: OutputFormat) -> None:
    """A ``--check``'s effective config: the document as JSON, or ``key: value`` lines (the
    ``schema`` key left out of the human form)."""
    if output is OutputFormat.JSON:
        emit_json(doc)
        return
    for k, v in doc.items():
        if k != "schema":
            stdout.print(f"{k}: {json.dumps(v)}", markup=False, highlight=False)


def emit_json_line(payload: Any) -> None:
    """Write one JSON document as one line (a stream of events or samples)."""
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int) -> NoReturn:
    stderr.print(f"mlnode: error: {message}", markup=False)
    raise typer.Exit(code)


def run(body: Callable[[], T]) -> T:
    """Run a command body, mapping mlnode's exceptions to one stderr line and an exit code."""
    try:
        return body()
    except MlnodeError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


def size_option(text: str, option: str) -> int:
    """Bytes from an option value: ``30GiB``, ``500MB``, ``15Gi`` or a byte count."""
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise UsageError(str(e), option=option) from None


def duration_option(text: str, option: str, *, positive: bool = False) -> float:
    """Seconds from an option value: a number of seconds or a Go duration (``2m``, ``1h30m``)."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_go_duration(value)
        except ValueError:
            raise UsageError(
                f"not a duration: {text!r} (use seconds or Go syntax like 30s, 2m, 1h30m)",
                option=option,
            ) from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        raise UsageError(f"must be a duration >= 0, got {text!r}", option=option)
    if positive and seconds == 0:
        raise UsageError("must be more than 0", option=option)
    return seconds


def finite_float(text: str) -> float:
    """A float option's parser (``typer.Option(parser=finite_float)``): a finite number.

    click's FLOAT takes ``nan`` and ``inf``, which every comparison the commands make
    (``interval <= 0``, ``factor < 1``) lets through to the runtime; they are refused here,
    while the command line is parsed, before anything is opened.
    """
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {text!r}")
    return value
