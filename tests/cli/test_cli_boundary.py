"""The CLI boundary: every usage error and every unexpected exception is one stderr line.

``mlnode: error: <where>: <what>``, exit 2 for unusable input (1 for an internal error
that is not an input's fault), never a traceback unless ``--debug`` / ``MLNODE_DEBUG=1``;
options are checked before any socket is opened or any byte written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from apply.layouts import build_kubeadm
from apply.treeutil import whole_tree_digest
from typer.testing import CliRunner

from mlnode.cli._common import finite_float
from mlnode.cli.app import _COMMAND_MODULES, app

runner = CliRunner()
TARGET = ["--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"]


def one_line(args: list[str], code: int, env: dict[str, str] | None = None) -> str:
    """Run mlnode; assert the exit code and exactly one stderr line, no traceback."""
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlnode: error: "), lines[0]
    return lines[0]


# --- click's usage errors -------------------------------------------------------------


def test_missing_argument() -> None:
    assert one_line(["pull"], 2) == "mlnode: error: IMAGE: missing (pull needs it)"


def test_unknown_option() -> None:
    assert one_line(["lint", "--bogus"], 2) == "mlnode: error: --bogus: no such option for lint"


def test_unknown_command() -> None:
    line = one_line(["bogus"], 2)
    assert line == "mlnode: error: bogus: no such command (`mlnode --help` lists them)"


def test_bad_choice() -> None:
    line = one_line(["render", "--format", "yaml"], 2)
    assert line.startswith("mlnode: error: --format: 'yaml' is not one of 'env', ")


def test_option_without_its_value() -> None:
    assert one_line(["gc", "--snapshot"], 2) == "mlnode: error: --snapshot: requires an argument"


def test_not_a_number() -> None:
    line = one_line(["gc", "--snapshot", "x.json", "--high", "lots"], 2)
    assert line.startswith("mlnode: error: --high: ")


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    line = one_line(["images", "--state-file", str(tmp_path)], 2)
    assert line == f"mlnode: error: --state-file: file '{tmp_path}' is a directory"


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = one_line(["lint", *TARGET, str(missing)], 2)
    assert line == f"mlnode: error: {missing}: no such file"


def test_no_arguments_prints_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Commands:" in result.output


# --- options validated before any I/O --------------------------------------------------


def _commands() -> list[tuple[str, Any]]:
    group = typer.main.get_command(app)
    ctx = group.make_context("mlnode", ["lint"])
    return [(name, group.get_command(ctx, name)) for name in _COMMAND_MODULES]


def _float_options() -> list[tuple[str, Any]]:
    found = []
    for name, command in _commands():
        for param in command.params:
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is not None and descriptor.annotation is float:
                found.append((name, param))
    return found


def test_every_float_option_is_parsed_as_a_finite_number() -> None:
    floats = _float_options()
    assert {f"{n} {p.opts[0]}" for n, p in floats} >= {
        "progress --interval",
        "pull --unpack-factor",
    }
    for _, param in floats:
        assert param.type_descriptor.parameter_info.parser is finite_float, param.opts


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
@pytest.mark.parametrize(
    ("command", "option"), [("progress", "--interval"), ("pull", "--unpack-factor")]
)
def test_non_finite_floats_refused_before_the_runtime(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    endpoint = ["--runtime-endpoint", str(tmp_path / "no.sock")]
    image = ["busybox"] if command == "pull" else []
    line = one_line([command, *endpoint, f"{option}={value}", *image], 2)
    assert line == f"mlnode: error: {option}: must be a finite number, got {value!r}"


@pytest.mark.parametrize(
    ("command", "option"), [("progress", "--interval"), ("pull", "--unpack-factor")]
)
def test_out_of_range_floats_refused_before_the_runtime(
    tmp_path: Path, command: str, option: str
) -> None:
    endpoint = ["--runtime-endpoint", str(tmp_path / "no.sock")]
    image = ["busybox"] if command == "pull" else []
    line = one_line([command, *endpoint, f"{option}=-1", *image], 2)
    assert line.startswith(f"mlnode: error: {option}: must be ")


def test_the_runtime_is_dialled_only_with_good_options(tmp_path: Path) -> None:
    # the control: the same command with good options reaches the (absent) socket: exit 3
    result = runner.invoke(
        app, ["pull", "--runtime-endpoint", str(tmp_path / "no.sock"), "busybox"]
    )
    assert result.exit_code == 3, result.output


@pytest.mark.parametrize(
    "image", ["Busybox", "busybox:", "busybox@sha256:12", "reg.io//x", "a b", "busybox:tag!"]
)
def test_malformed_image_refused_before_any_socket(tmp_path: Path, image: str) -> None:
    line = one_line(["pull", "--runtime-endpoint", str(tmp_path / "no.sock"), image], 2)
    assert line.startswith("mlnode: error: IMAGE: ")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("imagefs.available<<<", "quantities must match the regular expression"),
        ("imagefs.available<15", None),  # a good one, for contrast
        ("imagefs.avail<15%", "unsupported eviction signal imagefs.avail"),
        ("imagefs.available<-5%", "must be >= 0%"),
        ("imagefs.available<120%", "must be <= 100%"),
        ("imagefs.available<0", "must be positive"),
        ("imagefs.available<10Zi", "quantities must match the regular expression"),
        ("imagefs.available<10K", "unable to parse quantity's suffix"),
        # nan% passes both of the kubelet's comparisons (Go NaN): it starts, the threshold
        # never fires; knowledge.eviction follows the kubelet
        ("imagefs.available<nan%", None),
        ("imagefs.available", "malformed pair"),
    ],
)
def test_eviction_hard_checked_like_the_kubelet(
    tmp_path: Path, value: str, what: str | None
) -> None:
    build_kubeadm(tmp_path)
    before = whole_tree_digest(tmp_path)
    args = ["apply", "--root", str(tmp_path), "--no-restart", f"--eviction-hard={value}"]
    if what is None:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return
    line = one_line(args, 2)
    assert line.startswith("mlnode: error: --eviction-hard: ") and what in line, line
    assert whole_tree_digest(tmp_path) == before


def test_eviction_hard_in_kubelet_args_checked_too() -> None:
    line = one_line(["render", *TARGET, "--from-kubelet-args", "--eviction-hard=foo<5%"], 2)
    assert line.startswith(
        "mlnode: error: --from-kubelet-args: --eviction-hard: unsupported eviction signal foo"
    ), line


@pytest.mark.parametrize(
    "args",
    [
        '--image-gc-high-threshold="80 --image-gc-low-threshold=70',
        "--image-gc-high-threshold=80 --node-labels='gpu=a100",
    ],
)
def test_unbalanced_quote_in_kubelet_args(tmp_path: Path, args: str) -> None:
    build_kubeadm(tmp_path)
    before = whole_tree_digest(tmp_path)
    for command in (["render", *TARGET], ["apply", "--root", str(tmp_path), "--no-restart"]):
        line = one_line([*command, "--from-kubelet-args", args], 2)
        assert line.startswith("mlnode: error: --from-kubelet-args: unbalanced "), line
    assert whole_tree_digest(tmp_path) == before


def test_balanced_and_escaped_quotes_are_fine() -> None:
    args = "--image-gc-high-threshold='80' --image-gc-low-threshold=\"70\" --node-labels=a\\'b"
    result = runner.invoke(app, ["render", *TARGET, "--from-kubelet-args", args])
    assert result.exit_code == 0, result.output


# --- deep nesting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["gc", "--snapshot"],
        ["plan", "--no-inspect", *TARGET, "--profile"],
        ["render", *TARGET, "--plan"],
    ],
)
def test_deep_json_is_one_line_naming_the_file(tmp_path: Path, command: list[str]) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    # the readers refuse it at the line where it passes the depth limit (formats.textcheck)
    assert one_line([*command, str(deep)], 2) == (
        f"mlnode: error: {deep}:1: nested more than 100 levels deep; no configuration nests"
        " that deep"
    )


# --- the catch-all -----------------------------------------------------------------------


def _explode(exc: BaseException) -> Any:
    def raiser(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return raiser


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (KeyError("boom"), 1, "KeyError: 'boom'"),
        (AttributeError("no attribute x"), 1, "AttributeError: no attribute x"),
        (ValueError("bad\nvalue"), 2, "ValueError: bad value"),
        (TypeError("wrong type"), 2, "TypeError: wrong type"),
    ],
)
def test_unexpected_exception_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception, code: int, text: str
) -> None:
    monkeypatch.setattr("mlnode.cli.lint.lint_documents", _explode(exc))
    config = tmp_path / "config.toml"
    config.write_text("version = 2\n")
    line = one_line(["lint", *TARGET, str(config)], code)
    assert line == f"mlnode: error: internal error: {text} (run with --debug for the traceback)"


def test_recursion_error_anywhere_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("mlnode.cli.lint.lint_documents", _explode(RecursionError("too deep")))
    config = tmp_path / "config.toml"
    config.write_text("version = 2\n")
    line = one_line(["lint", *TARGET, str(config)], 2)
    assert line == (
        "mlnode: error: input nested too deeply to read (run with --debug for the traceback)"
    )


@pytest.mark.parametrize(
    ("before", "after", "env"),
    [(["--debug"], [], {}), ([], ["--debug"], {}), ([], [], {"MLNODE_DEBUG": "1"})],
)
def test_debug_prints_the_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    before: list[str],
    after: list[str],
    env: dict[str, str],
) -> None:
    monkeypatch.setattr("mlnode.cli.lint.lint_documents", _explode(KeyError("boom")))
    config = tmp_path / "config.toml"
    config.write_text("version = 2\n")
    result = runner.invoke(app, [*before, "lint", *TARGET, str(config), *after], env=env)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("mlnode: error: internal error: KeyError")


def test_debug_is_per_invocation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mlnode.cli.lint.lint_documents", _explode(KeyError("boom")))
    config = tmp_path / "config.toml"
    config.write_text("version = 2\n")
    runner.invoke(app, ["--debug", "lint", *TARGET, str(config)])
    one_line(["lint", *TARGET, str(config)], 1)


def test_debug_as_an_options_value_stays_a_value() -> None:
    # "--debug" here is --from-kubelet-args' value: a flag that is not an image setting
    settings = ["--image-gc-high-threshold", "80", "--image-gc-low-threshold", "70"]
    args = ["render", *TARGET, "--from-kubelet-args", "--debug", *settings]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not image settings, left as they are: --debug" in result.stderr
