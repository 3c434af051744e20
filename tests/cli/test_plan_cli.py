"""`mlnode plan` through Typer's CliRunner: human and JSON output, exit codes, round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.errors import InputError
from mlnode.knowledge.model import ImageSettings
from mlnode.planning.plan import PLAN_SCHEMA, load_plan_settings
from mlnode.versions import RuntimeKind, Version

runner = CliRunner()

NODE = [
    "plan",
    "--no-inspect",
    "--image-disk",
    "1TiB",
    "--largest-image",
    "15GiB",
    "--concurrent-pulls",
    "2",
    "--kubernetes-version",
    "1.30",
    "--runtime",
    "containerd@1.7.13",
]


def plan_json(args: list[str]) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*args, "--output", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_human_output() -> None:
    result = runner.invoke(app, NODE)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Recommended settings" in out and "Node profile" in out
    assert "imageGCHighThresholdPercent = 76" in out
    assert "imageGCLowThresholdPercent = 71" in out
    assert "image_pull_progress_timeout = 5m0s" in out
    assert "/etc/containerd/config.toml (version = 2)" in out


def test_json_output_schema() -> None:
    code, doc = plan_json(NODE)
    assert code == 0
    assert doc["schema"] == PLAN_SCHEMA
    assert doc["feasible"] is True and doc["reason"] is None
    assert doc["settings"]["image_gc_high_threshold_percent"] == 76
    assert doc["settings"]["image_minimum_gc_age_seconds"] == 720.0
    assert doc["profile"]["kubernetes_version"] == "1.30"
    assert doc["profile"]["image_disk_capacity_bytes"] == 1024**4
    assert doc["sources"]["image_disk_capacity_bytes"] == "option --image-disk"
    assert doc["sources"]["link_bandwidth_bytes_per_second"].startswith("ML default")
    assert doc["placement"]["kubelet_fields"]["imageGCHighThresholdPercent"] == 76
    assert doc["placement"]["runtime_values"][0]["name"] == "image_pull_progress_timeout"
    assert {"setting", "value", "formula", "numbers"} <= set(doc["justifications"][0])
    assert isinstance(doc["warnings"], list)
    assert doc["numbers"]["need_bytes"] > 0


def test_json_round_trip_through_load_plan_settings(tmp_path: Path) -> None:
    code, doc = plan_json(NODE)
    assert code == 0
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc, indent=2))
    settings, k8s, runtime = load_plan_settings(path)
    assert isinstance(settings, ImageSettings)
    assert settings.set_fields() == doc["settings"]
    assert settings.image_gc_high_threshold_percent == 76
    assert settings.serialize_image_pulls is False
    assert k8s == Version(1, 30)
    assert runtime is not None and runtime.kind is RuntimeKind.CONTAINERD
    assert str(runtime) == "containerd@1.7.13"


def test_infeasible_exits_1_and_cannot_be_rendered(tmp_path: Path) -> None:
    args = ["plan", "--no-inspect", "--image-disk", "100GiB", "--shared-with-os"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Not feasible" in result.output and "at least" in result.output
    code, doc = plan_json(args)
    assert code == 1 and doc["feasible"] is False
    assert "image_gc_high_threshold_percent" not in doc["settings"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(InputError, match="not feasible") as err:
        load_plan_settings(path)
    assert err.value.line is not None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--image-disk", "0"], "--image-disk"),
        (["--image-disk", "1TiB", "--bandwidth", "fast"], "--bandwidth"),
        (["--image-disk", "1TiB", "--concurrent-pulls", "0"], "--concurrent-pulls"),
        (["--image-disk", "1TiB", "--runtime", "containerd@9.9.9"], "outside"),
        ([], "capacity is unknown"),
        (["--image-disk", "10GiB", "--largest-image", "20GiB"], "larger than the image disk"),
    ],
)
def test_bad_input_exits_2(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["plan", "--no-inspect", *args])
    assert result.exit_code == 2
    assert words in result.output


def test_profile_file_and_option_override(tmp_path: Path) -> None:
    profile = tmp_path / "node.yaml"
    profile.write_text("image_disk: 2TiB\nlargest_image: 10GiB\nconcurrent_pulls: 1\n")
    code, doc = plan_json(
        ["plan", "--no-inspect", "--profile", str(profile), "--largest-image", "12GiB"]
    )
    assert code == 0
    assert doc["profile"]["largest_image_bytes"] == 12 * 1024**3
    assert doc["sources"]["largest_image_bytes"] == "option --largest-image"
    assert doc["sources"]["image_disk_capacity_bytes"] == f"profile {profile}:1"
    assert doc["settings"]["serialize_image_pulls"] is True


def test_bad_profile_names_file_and_line(tmp_path: Path) -> None:
    profile = tmp_path / "node.yaml"
    profile.write_text("image_disk: 2TiB\nbandwith: 1Gbit/s\n")
    result = runner.invoke(app, ["plan", "--no-inspect", "--profile", str(profile)])
    assert result.exit_code == 2
    assert f"{profile}:2: unknown key 'bandwith'" in result.output


def test_inspection_under_root(tmp_path: Path) -> None:
    code, doc = plan_json(["plan", "--root", str(tmp_path), "--largest-image", "1GiB"])
    assert code in (0, 1)
    assert doc["sources"]["image_disk_capacity_bytes"].startswith("inspection: statvfs")


@pytest.mark.parametrize(
    ("mutate", "needle", "words"),
    [
        (
            lambda d: d.update(schema="other/v1"),
            '"schema": "other/v1"',
            "expected 'mlnode.plan/v1'",
        ),
        (lambda d: d["settings"].update(bogus=1), '"bogus": 1', "unknown setting 'bogus'"),
        (
            lambda d: d["settings"].update(image_gc_high_threshold_percent="76"),
            '"image_gc_high_threshold_percent": "76"',
            "not a whole number",
        ),
        (
            lambda d: d["settings"].update(image_gc_low_threshold_percent=90),
            '"image_gc_low_threshold_percent": 90',
            "must be less than",
        ),
        (
            lambda d: d["profile"].update(runtime="podman@1"),
            '"runtime": "podman@1"',
            "unknown runtime",
        ),
    ],
)
def test_load_plan_settings_errors_have_lines(
    tmp_path: Path, mutate: Any, needle: str, words: str
) -> None:
    _, doc = plan_json(NODE)
    mutate(doc)
    path = tmp_path / "plan.json"
    text = json.dumps(doc, indent=2)
    path.write_text(text)
    expected_line = next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
    with pytest.raises(InputError) as err:
        load_plan_settings(path)
    assert words in str(err.value)
    assert err.value.line == expected_line


def test_load_plan_settings_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{\n  "schema": "mlnode.plan/v1",\n}\n')
    with pytest.raises(InputError) as err:
        load_plan_settings(path)
    assert err.value.line == 3
