"""Assembles the ``mlnode`` Typer application from one module per subcommand.

Subcommand modules are imported only when their command runs (or ``--help`` lists them),
so ``mlnode lint`` does not pay for loading gRPC and the HTTP client that ``pull`` needs.

This is also the CLI boundary: :meth:`_LazyCommands.main` turns every usage error click
finds (unknown option, missing argument, bad choice, a path that does not exist) into the
one ``mlnode: error: <where>: <what>`` line, exit 2, and any exception that is not one of
mlnode's own (those are mapped by :func:`mlnode.cli._common.run`) into one
``internal error`` line; ``--debug`` or ``MLNODE_DEBUG=1`` prints its traceback too.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # Typer 0.2x vendors click; before, click was a dependency
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from mlnode import __version__
from mlnode.cli._help import HelpContext, plain_help
from mlnode.cli._usage import internal_error_line, usage_error_line

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
    "mirror",
    "agent",
    "doctor",
)

#: Set by ``--debug`` (or MLNODE_DEBUG=1 in the environment) for this invocation.
_debug = False


def _debug_wanted() -> bool:
    return _debug or os.environ.get("MLNODE_DEBUG", "") not in ("", "0")


class _LazyCommands(TyperGroup):
    context_class = HelpContext

    # ctx is click's Context (vendored by recent Typer, a dependency before): Any fits both.
    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMAND_MODULES)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _COMMAND_MODULES:
            return None
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        importlib.import_module(f"mlnode.cli.{cmd_name}").register(single)
        return plain_help(typer.main.get_command(single))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # click cuts each command's summary to fit one line ("... that do..."); we wrap it.
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            rows.append((name, command.get_short_help_str(limit=1_000)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _parse_and_run(
        self, argv: list[str], prog_name: str | None, complete_var: str | None, extra: Any
    ) -> Any:
        """Run click on ``argv``; ``--debug`` after the command name works as before it."""
        global _debug
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoSuchOption as e:
            # Only parsing has happened: nothing ran, so trying again without it is safe. A
            # "--debug" that is an option's value is never reported here and stays.
            if e.option_name != "--debug" or "--debug" not in argv:
                raise
            argv.remove("--debug")
            _debug = True
            return self._parse_and_run(argv, prog_name, complete_var, extra)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _debug
        _debug = False
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = self._parse_and_run(argv, prog_name, complete_var, extra)
        except click_exceptions.NoArgsIsHelpError as e:
            e.show()
            code = e.exit_code
        except click_exceptions.ClickException as e:
            typer.echo(usage_error_line(e), err=True)
            code = e.exit_code
        except typer.Abort:
            typer.echo("mlnode: error: aborted", err=True)
            code = 1
        except Exception as e:  # the boundary: nothing unexpected leaves as a traceback
            if _debug_wanted():
                traceback.print_exc()
            line, code = internal_error_line(e)
            typer.echo(line, err=True)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="mlnode",
    cls=_LazyCommands,
    help="Make Kubernetes ML nodes right for huge container images, and keep them right.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlnode {__version__}")
        raise typer.Exit()


def _set_debug(value: bool) -> None:
    global _debug
    _debug = _debug or value


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        callback=_set_debug,
        is_eager=True,
        help="On an internal error, print its traceback (also after the command name, "
        "or MLNODE_DEBUG=1).",
    ),
) -> None:
    """mlnode: image settings and image operations for Kubernetes ML nodes."""


def main() -> None:
    app()
