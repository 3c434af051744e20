"""`mlnode render --format containerd-hosts|crio-mirror --mirror URL`: each file under a
`# <node path>` line, or `mlnode.render.mirror/v1` JSON; bad input is one line, exit 2."""

from __future__ import annotations

import json
import tomllib

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

runner = CliRunner()
MIRROR = "http://127.0.0.1:6055"


def test_human_output_has_a_path_line_per_file() -> None:
    res = runner.invoke(
        app,
        ["render", "-f", "containerd-hosts", "--mirror", MIRROR, "--runtime", "containerd@2.1.0",
         "--mirror-registry", "docker.io", "--mirror-registry", "127.0.0.1:5000"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    parts = res.stdout.split("# /etc/containerd/certs.d/")
    assert [p.split("\n", 1)[0] for p in parts[1:]] == [
        "docker.io/hosts.toml",
        "127.0.0.1:5000/hosts.toml",
    ]
    for part in parts[1:]:
        doc = tomllib.loads(part.split("\n", 1)[1])
        assert next(iter(doc["host"])) == MIRROR
    assert "need no config change" not in res.stderr
    assert "config_path" in res.stderr  # 2.1 has no default config_path


def test_json_schema() -> None:
    res = runner.invoke(
        app,
        ["render", "-f", "containerd-hosts", "--mirror", MIRROR, "--runtime", "containerd@1.6.20",
         "-o", "json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "mlnode.render.mirror/v1"
    assert doc["registries"] == ["_default"]
    assert doc["files"][0]["path"] == "/etc/containerd/certs.d/_default/hosts.toml"
    assert tomllib.loads(doc["files"][0]["content"])["host"][MIRROR]["capabilities"] == [
        "pull",
        "resolve",
    ]
    assert set(doc) == {
        "schema", "format", "runtime", "mirror", "registries", "files", "notes", "warnings"
    }  # fmt: skip


def test_crio_mirror() -> None:
    res = runner.invoke(
        app, ["render", "-f", "crio-mirror", "--mirror", MIRROR, "--mirror-registry", "quay.io"]
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("# /etc/containers/registries.conf.d/90-mlnode-mirror.conf\n")
    body = tomllib.loads(res.stdout.split("\n", 1)[1])
    assert body["registry"][0]["mirror"][0]["location"] == "127.0.0.1:6055/quay.io"


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["-f", "containerd-hosts", "--runtime", "containerd@1.6.20"], "--mirror: required"),
        (["-f", "containerd-hosts", "--mirror", MIRROR], "--runtime: required"),
        (["-f", "containerd-hosts", "--mirror", "http://x", "--runtime", "containerd@1.6.20"],
         "--mirror:"),
        (["-f", "containerd-hosts", "--mirror", MIRROR, "--runtime", "containerd@1.6.16"],
         "--mirror-registry"),
        (["-f", "crio-mirror", "--mirror", MIRROR], "--mirror-registry"),
        (["-f", "containerd-hosts", "--mirror", MIRROR, "--runtime", "crio@1.30.0"], "--runtime"),
        (["-f", "containerd", "--mirror", MIRROR, "--runtime", "containerd@1.6.20"],
         "goes with --format containerd-hosts"),
        (["-f", "containerd-hosts", "--mirror", MIRROR, "--runtime", "containerd@1.6.20",
          "--out", "/tmp/x"], "printed only"),
    ],
)  # fmt: skip
def test_bad_input_one_line(args: list[str], what: str) -> None:
    res = runner.invoke(app, ["render", *args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: ") and what in lines[0], lines
