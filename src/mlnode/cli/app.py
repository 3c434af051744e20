"""Assembles the ``mlnode`` Typer application from one module per subcommand."""

from __future__ import annotations

import importlib

import typer

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

app = typer.Typer(
    name="mlnode",
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


for _name in _COMMAND_MODULES:
    importlib.import_module(f"mlnode.cli.{_name}").register(app)


def main() -> None:
    app()
