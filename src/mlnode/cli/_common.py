"""What every subcommand shares: the --output option, JSON emission and error mapping.

Each subcommand module defines ``register(app: typer.Typer) -> None``. Command bodies
call the pure layers and return; :func:`run` turns our own exceptions into one line on
stderr and the exception's exit code, so no traceback ever reaches an operator for an
error we anticipated.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from mlnode.errors import MlnodeError

__all__ = ["OutputFormat", "OutputOption", "emit_json", "fail", "run", "stderr", "stdout"]

T = TypeVar("T")

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(enum.StrEnum):
    HUMAN = "human"
    JSON = "json"


OutputOption = typer.Option(
    OutputFormat.HUMAN, "--output", "-o", help="human (default) or json (schema in README)."
)


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout (sorted keys keep diffs and tests stable)."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
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
