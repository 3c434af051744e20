"""``mlnode pull --via``: the option is checked before any socket, and the human view
says which path a pull takes and when the mirror stops answering."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.cli.pull import _HumanView

runner = CliRunner()


def test_an_unknown_via_is_exit_2_before_any_socket() -> None:
    r = runner.invoke(
        app,
        ["pull", "registry.test/a:1", "--via", "sideways", "--runtime-endpoint", "/nonexistent"],
    )
    assert r.exit_code == 2
    assert r.stderr.strip() == "mlnode: error: --via: must be one of auto, mirror, engine"
    assert r.stdout == ""


def _view() -> tuple[_HumanView, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200, markup=False, highlight=False)
    return _HumanView(console), out


def test_the_human_view_names_the_path_and_a_mirror_that_went_away() -> None:
    view, out = _view()
    view({"event": "path", "via": "mirror", "mirror": "http://m", "reason": "wired [x]"})
    up = {"event": "mirror", "reachable": True, "error": None, "blobs": []}
    down = {**up, "reachable": False, "error": "http://m/mlnode/v1/status: unreachable"}
    for e in (up, down, down, up, down):
        view(e)
    lines = out.getvalue().splitlines()
    assert lines[0] == "via mirror: wired [x]"  # literal, no markup
    warnings = [ln for ln in lines if ln.startswith("warning: mirror unreachable")]
    assert len(warnings) == 2  # once per time it went away, not once per sample


def test_the_engine_path_says_nothing_in_human_output() -> None:
    """A node not wired pulls as it always did: no extra line (an error stays one line on
    stderr); the JSON ``path`` event carries the reason."""
    view, out = _view()
    view({"event": "path", "via": "engine", "mirror": None, "reason": "--via engine"})
    view({"event": "path", "via": "engine", "mirror": None, "reason": "not wired: no mirror"})
    assert out.getvalue() == ""
