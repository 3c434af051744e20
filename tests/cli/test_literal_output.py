"""Human output prints every literal as written: square brackets are text, not markup.

Rich console markup would read ``[plugins."io.containerd.grpc.v1.cri"]``, ``[bold]`` or
``[/]`` in a file name, flag value, image name or diff line as a style tag and drop it.
One test per command family puts such text where that family prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apply.layouts import CONTAINERD_CONFIG_V2, build_kubeadm
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.ops.images import build_report
from mlnode.runtime.cri import CriImage, RuntimeVersion
from mlnode.runtime.fs import FilesystemUsage

runner = CliRunner()
TARGET = ["--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"]


def test_lint_findings_keep_brackets(tmp_path: Path) -> None:
    env = tmp_path / "kubeadm-flags.env"
    env.write_text('KUBELET_KUBEADM_ARGS="--image-gc-high-threshold=[bold]80[/] --[red]x=1"\n')
    result = runner.invoke(app, ["lint", *TARGET, str(env)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert 'invalid argument "[bold]80[/]" for "--image-gc-high-threshold"' in out
    assert "error E102: --[red]x is not a flag" in out


def test_render_notes_keep_brackets() -> None:
    line = "--image-gc-high-threshold=80 --image-gc-low-threshold=70 --node-labels=[bold]gpu[/]"
    result = runner.invoke(
        app, ["render", "--from-kubelet-args", line, *TARGET, "--format", "kubelet-config"]
    )
    assert result.exit_code == 0, result.output
    assert "left as they are: --node-labels=[bold]gpu[/]" in result.stderr


def test_plan_table_keeps_brackets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[b]").mkdir()
    (tmp_path / "[b]" / "p.yaml").write_text("image_disk: 1TiB\nlargest_image: 15GiB\n")
    result = runner.invoke(app, ["plan", "--no-inspect", "--profile", "[b]/p.yaml", *TARGET])
    assert result.exit_code == 0, result.output
    assert "profile [b]/p.yaml" in result.stdout


def _snapshot(tmp_path: Path) -> Path:
    image = {
        "pinned": False,
        "in_use": False,
        "last_used": None,
        "first_detected": "2024-05-01T12:00:00Z",
    }
    doc = {
        "now": "2024-05-01T12:00:00Z",
        "filesystem": {"capacity_bytes": 1000, "available_bytes": 50},
        "policy": {
            "high_threshold_percent": 90,
            "low_threshold_percent": 80,
            "minimum_age_seconds": 0,
            "maximum_age_seconds": 0,
        },
        "images": [
            {**image, "id": "sha256:a", "names": ["reg/[red]x[/]:[1]"], "size_bytes": 450},
            {**image, "id": "sha256:b", "names": ["reg/[bold]k"], "size_bytes": 10, "pinned": True},
        ],
    }
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("policy", ["kubelet", "ml"])
def test_gc_tables_keep_brackets(tmp_path: Path, policy: str) -> None:
    result = runner.invoke(app, ["gc", "--snapshot", str(_snapshot(tmp_path)), "--policy", policy])
    assert result.exit_code == 0, result.output
    assert "reg/[red]x[/]:[1]" in result.stdout  # Would remove
    assert "reg/[bold]k" in result.stdout  # Kept


def test_images_table_keeps_brackets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = build_report(
        endpoint="unix:///run/[x]/containerd.sock",
        runtime=RuntimeVersion("0.1.0", "containerd", "v1.7.13", "v1"),
        images=[CriImage("sha256:" + "a" * 64, ("reg/[bold]img[/]:1",), (), 1000, False)],
        containers=[],
        filesystem=FilesystemUsage(tmp_path, 10_000, 5_000, 5_000),
    )
    monkeypatch.setattr("mlnode.cli.images.collect_report", lambda *a, **k: report)
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["images", "--state-file", str(tmp_path / "state.json")])
    assert result.exit_code == 0, result.output
    assert "reg/[bold]img[/]:1" in result.stdout
    assert "(unix:///run/[x]/containerd.sock)" in result.stdout


def test_apply_diff_keeps_brackets(tmp_path: Path) -> None:
    comment = "# keep at most [bold]3[/] layer downloads per pull"
    config = CONTAINERD_CONFIG_V2.replace("# keep at most 3 layer downloads per pull", comment)
    assert comment in config
    build_kubeadm(tmp_path, containerd_config=config)
    result = runner.invoke(
        app,
        [
            "apply",
            "--root",
            str(tmp_path),
            "--dry-run",
            "--image-gc-high-threshold",
            "75",
            "--image-gc-low-threshold",
            "60",
            "--image-pull-progress-deadline",
            "30m",
        ],
    )
    assert result.exit_code == 0, result.output
    # context lines of the containerd diff
    assert f"\n     {comment}\n" in result.stdout
    assert '\n     [plugins."io.containerd.grpc.v1.cri".containerd]\n' in result.stdout
    assert "dry run: nothing written" in result.stdout
