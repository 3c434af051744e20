"""``--help`` at 80 columns: every option name whole, each default shown once."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mlnode.cli.app import _COMMAND_MODULES, app

runner = CliRunner()


def _command(name: str) -> Any:
    group = typer.main.get_command(app)
    ctx = group.make_context("mlnode", [name])
    return group.get_command(ctx, name)


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, color=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("name", _COMMAND_MODULES)
def test_every_option_name_whole_at_80_columns(name: str) -> None:
    out = _help(name)
    names = [o for p in _command(name).params for o in (*p.opts, *p.secondary_opts)]
    assert names
    for option in names:
        if option.startswith("-"):
            # whole, and not split across two lines at one of its hyphens
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", out), option
    assert "…" not in out
    assert all(len(line) <= 80 for line in out.splitlines()), out


@pytest.mark.parametrize("name", _COMMAND_MODULES)
def test_each_default_shown_once(name: str) -> None:
    command = _command(name)
    ctx = command.make_context(name, [], resilient_parsing=True)
    for param in command.params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        text = record[1]
        assert len(re.findall(r"\bdefault\b", text, re.I)) <= 1, (param.name, text)
        # and the help page shows that entry as it is
        assert " ".join(text.split()) in " ".join(_help(name).split())


def test_root_help_lists_commands_whole() -> None:
    out = _help()
    assert "--debug" in out and "--version" in out
    commands = out.split("Commands:")[1]
    assert "..." not in commands  # click's cut summaries
    for name in _COMMAND_MODULES:
        assert re.search(rf"^  {name}\s", out, re.M), name
