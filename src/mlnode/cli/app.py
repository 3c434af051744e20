"""Assembles the ``mlnode`` Typer application from one module per subcommand.

Subcommand modules are imported only when their command runs (or ``--help`` lists them),
so ``mlnode lint`` does not pay for loading gRPC and the HTTP client that ``pull`` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from mlnode import __version__

# Each module here defines register(app). Order is the order of `mlnode --help`.
_COMMAND_MODULES = (
    "lint",
    "plan",
    "render",
    "images",
    "apply",
    "rollback",
    "gc",
    "pull",
    "progress",
)


class _LazyCommands(TyperGroup):
    # ctx is click's Context (vendored by recent Typer, a dependency before): Any fits both.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMAND_MODULES)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _COMMAND_MODULES:
            return None
        single = typer.Typer(add_completion=False)
        importlib.import_module(f"mlnode.cli.{cmd_name}").register(single)
        return typer.main.get_command(single)


app = typer.Typer(
    name="mlnode",
    cls=_LazyCommands,
    help="Make Kubernetes ML nodes right for huge container images, and keep them right.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlnode {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mlnode: image settings and image operations for Kubernetes ML nodes."""


def main() -> None:
    app()
