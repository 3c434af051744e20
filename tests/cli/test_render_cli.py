"""`mlnode render` end to end, including the issue's acceptance commands."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from mlnode.cli.app import app

LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
runner = CliRunner()


def render(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["render", *args])
    return result.exit_code, result.stdout, result.stderr


def test_containerd_1_7_gets_cri_table() -> None:
    code, out, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--format",
        "containerd",
    )
    assert code == 0
    doc = tomllib.loads(out)
    assert doc["version"] == 2
    assert doc["plugins"]["io.containerd.grpc.v1.cri"]["image_pull_progress_timeout"] == "30m0s"


def test_containerd_2_gets_images_table() -> None:
    code, out, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@2.0.0",
        "--format",
        "containerd",
    )
    assert code == 0
    doc = tomllib.loads(out)
    assert doc["plugins"]["io.containerd.cri.v1.images"]["image_pull_progress_timeout"] == "30m0s"
    assert "io.containerd.grpc.v1.cri" not in doc["plugins"]


def test_containerd_1_6_refuses_the_deadline() -> None:
    code, out, err = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.6.20",
        "--format",
        "containerd",
    )
    assert code == 1
    assert "image_pull_progress_timeout" not in tomllib.loads(out).get("plugins", {}).get(
        "io.containerd.grpc.v1.cri", {}
    )
    assert "containerd@1.6.20 has no image_pull_progress_timeout" in err


def test_kubelet_config_from_the_classic_line() -> None:
    code, out, err = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--format",
        "kubelet-config",
    )
    assert code == 0
    doc = YAML(typ="safe").load(out)
    assert doc["kind"] == "KubeletConfiguration"
    assert doc["imageGCHighThresholdPercent"] == 80
    assert doc["imageGCLowThresholdPercent"] == 70
    assert "imagePullProgressDeadline" not in out and "image-pull-progress" not in out
    assert "belongs in containerd@1.7.13 config" in err


def test_env_never_carries_the_removed_flag() -> None:
    code, out, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--format",
        "env",
    )
    assert code == 0
    assert "--image-pull-progress-deadline" not in out
    assert "--image-gc" not in out


def test_dockershim_keeps_the_flag_on_1_20() -> None:
    code, out, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.20",
        "--runtime",
        "docker",
        "--format",
        "env",
    )
    assert code == 0
    assert "--image-pull-progress-deadline=30m0s" in out


def test_all_to_out_dir_writes_every_applicable_file(tmp_path: Path) -> None:
    code, out, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--out",
        str(tmp_path),
        "-o",
        "json",
    )
    assert code == 0
    report = json.loads(out)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f["name"] for f in report["files"])
    assert "containerd-config.toml" in names and "kubelet-config.yaml" in names
    assert {s["format"] for s in report["skipped"]} >= {"crio", "env"}


def test_merge_keeps_comments_and_backs_up(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    original = (
        "# site config: do not lose this comment\nversion = 2\n\n"
        '[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "registry.k8s.io/pause:3.9"\n'
    )
    cfg.write_text(original)
    code, _, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--merge",
        str(cfg),
    )
    assert code == 0
    merged = cfg.read_text()
    assert merged.startswith("# site config: do not lose this comment\n")
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in merged
    assert (
        tomllib.loads(merged)["plugins"]["io.containerd.grpc.v1.cri"]["image_pull_progress_timeout"]
        == "30m0s"
    )
    backups = list(tmp_path.glob("config.toml.mlnode-*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == original
    # A second merge changes nothing and keeps no new backup.
    code, _, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--merge",
        str(cfg),
    )
    assert code == 0 and cfg.read_text() == merged
    assert len(list(tmp_path.glob("config.toml.mlnode-*.bak"))) == 1


def test_merge_env_removes_obsolete_flags(tmp_path: Path) -> None:
    env = tmp_path / "kubelet"
    env.write_text(f'# ours\nKUBELET_EXTRA_ARGS="--node-ip=10.0.0.5 {LINE}"\n')
    code, _, _ = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--merge",
        str(env),
    )
    assert code == 0
    assert env.read_text() == '# ours\nKUBELET_EXTRA_ARGS="--node-ip=10.0.0.5"\n'


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "--from-kubelet-args",
                LINE,
                "--kubernetes-version",
                "1.99",
                "--runtime",
                "containerd@1.7.13",
            ],
            "--kubernetes-version",
        ),
        (
            ["--from-kubelet-args", LINE, "--kubernetes-version", "1.30", "--runtime", "podman@4"],
            "--runtime",
        ),
        (
            [
                "--from-kubelet-args",
                LINE,
                "--kubernetes-version",
                "1.30",
                "--runtime",
                "containerd@1.7.13",
                "--image-gc-high-threshold",
                "90",
            ],
            "give it once",
        ),
        (
            [
                "--image-gc-high-threshold",
                "70",
                "--image-gc-low-threshold",
                "80",
                "--kubernetes-version",
                "1.30",
                "--runtime",
                "containerd@1.7.13",
            ],
            "must be less than",
        ),
        (
            [
                "--from-kubelet-args",
                "--image-gc-high-threshold eighty",
                "--kubernetes-version",
                "1.30",
                "--runtime",
                "containerd@1.7.13",
            ],
            "--from-kubelet-args",
        ),
        (
            [
                "--image-minimum-gc-age",
                "30",
                "--kubernetes-version",
                "1.30",
                "--runtime",
                "containerd@1.7.13",
            ],
            "missing unit",
        ),
        (["--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"], "no settings"),
        (["--from-kubelet-args", LINE, "--runtime", "containerd@1.7.13"], "--kubernetes-version"),
        (
            [
                "--from-kubelet-args",
                LINE,
                "--kubernetes-version",
                "1.30",
                "--runtime",
                "containerd@1.7.13",
                "--format",
                "crio",
            ],
            "not CRI-O",
        ),
    ],
)
def test_unusable_input_is_one_line_exit_2_nothing_written(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    out_dir = tmp_path / "out"
    code, _, err = render(*args, "--out", str(out_dir))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_bad_merge_target_is_exit_2_and_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nx: [\n")
    before = bad.read_bytes()
    code, _, err = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--merge",
        str(bad),
    )
    assert code == 2
    assert f"{bad}:" in err
    assert bad.read_bytes() == before
    assert list(tmp_path.iterdir()) == [bad]


def test_merge_kubeadm_join_keeps_settings_in_join_configuration(tmp_path: Path) -> None:
    """kubeadm join reads no KubeletConfiguration from its file: the thresholds become the
    JoinConfiguration's own (v1beta4 list-form) kubeletExtraArgs, nothing else changes."""
    corpus = Path(__file__).parent.parent / "data" / "upstream" / "kubeadm-config"
    join = tmp_path / "join.yaml"
    original = (corpus / "v1beta4-dual-stack-join-website.yaml").read_text()
    join.write_text(original)
    code, out, err = render(
        "--from-kubelet-args",
        LINE,
        "--kubernetes-version",
        "1.32",
        "--runtime",
        "containerd@1.7.20",
        "--merge",
        str(join),
        "-o",
        "json",
    )
    assert code == 0, err
    [merged] = json.loads(out)["files"]
    changed = [
        line
        for line in merged["diff"].splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        '+  - name: "image-gc-high-threshold"',
        '+    value: "80"',
        '+  - name: "image-gc-low-threshold"',
        '+    value: "70"',
    ]
    assert join.read_text() == original + "".join(line[1:] + "\n" for line in changed)
    assert "KubeletConfiguration" not in join.read_text()
