"""`mlnode lint` end to end: files in, findings and exit codes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

CLASSIC = (
    'KUBELET_EXTRA_ARGS="--image-gc-low-threshold 70 --image-gc-high-threshold 80 '
    '--image-pull-progress-deadline 30m"\n'
)
runner = CliRunner()


def lint(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["lint", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def classic(tmp_path: Path) -> Path:
    path = tmp_path / "kubelet"
    path.write_text(CLASSIC)
    return path


def test_classic_line_on_1_28_containerd_is_an_error(classic: Path) -> None:
    code, out, _ = lint(
        str(classic), "--kubernetes-version", "1.28", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert code == 1
    report = json.loads(out)
    [e101] = [f for f in report["findings"] if f["code"] == "E101"]
    assert e101["severity"] == "error" and e101["line"] == 1
    assert "--image-pull-progress-deadline" in e101["message"]
    assert "1.24" in e101["message"]
    assert "image_pull_progress_timeout" in e101["fix"]
    assert 'plugins."io.containerd.grpc.v1.cri"' in e101["fix"]


def test_classic_line_on_1_20_docker_is_clean(classic: Path) -> None:
    code, out, _ = lint(
        str(classic), "--kubernetes-version", "1.20", "--runtime", "docker", "-o", "json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["summary"]["error"] == 0
    assert report["effective"]["image_pull_progress_deadline_seconds"]["value"] == 1800


def test_deadline_flag_on_1_22_with_containerd_does_nothing(classic: Path) -> None:
    code, out, _ = lint(
        str(classic), "--kubernetes-version", "1.22", "--runtime", "containerd@1.6.20", "-o", "json"
    )
    assert code == 0
    codes = {f["code"] for f in json.loads(out)["findings"]}
    assert "W202" in codes


def test_human_output_names_file_line_and_fix(classic: Path) -> None:
    code, out, _ = lint(
        str(classic), "--kubernetes-version", "1.30", "--runtime", "containerd@2.0.0"
    )
    assert code == 1
    assert f"{classic}:1: error E101" in out
    assert "io.containerd.cri.v1.images" in out


def test_unknown_version_is_exit_2(classic: Path) -> None:
    code, _, err = lint(
        str(classic), "--kubernetes-version", "1.99", "--runtime", "containerd@1.7.13"
    )
    assert code == 2
    assert "--kubernetes-version" in err


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    code, _, err = lint(
        str(tmp_path / "nope"), "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"
    )
    assert code == 2
    assert "nope: no such file" in err
    assert len(err.strip().splitlines()) == 1


def test_unparseable_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "imageGCHighThresholdPercent: [80\n"
    )
    code, _, err = lint(str(bad), "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13")
    assert code == 2
    assert f"{bad}:" in err


def test_validation_error_uses_kubelet_wording(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "imageGCHighThresholdPercent: 80\nimageGCLowThresholdPercent: 80\n"
    )
    code, out, _ = lint(
        str(cfg), "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert code == 1
    [e104] = [f for f in json.loads(out)["findings"] if f["code"] == "E104"]
    assert e104["message"] == (
        "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 80 must "
        "be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 80"
    )
    assert e104["line"] in (3, 4)


def test_flag_overrides_config_and_headroom(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "imageGCHighThresholdPercent: 90\nimageGCLowThresholdPercent: 80\n"
    )
    env = tmp_path / "kubelet"
    env.write_text('KUBELET_EXTRA_ARGS="--image-gc-high-threshold=95"\n')
    code, out, _ = lint(
        str(cfg),
        str(env),
        "--kubernetes-version",
        "1.30",
        "--runtime",
        "containerd@1.7.13",
        "--image-disk",
        "500GiB",
        "--largest-image",
        "30GiB",
        "-o",
        "json",
    )
    report = json.loads(out)
    codes = {f["code"] for f in report["findings"]}
    assert {"W208", "W206", "W210"} <= codes
    assert report["effective"]["image_gc_high_threshold_percent"]["value"] == 95
    assert code == 0


def test_containerd_1_6_ignores_the_deadline_key(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text(
        'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n'
        '  image_pull_progress_timeout = "30m0s"\n'
    )
    code, out, _ = lint(
        str(toml), "--kubernetes-version", "1.30", "--runtime", "containerd@1.6.20", "-o", "json"
    )
    assert code == 0
    [w] = [f for f in json.loads(out)["findings"] if f["code"] == "W201"]
    assert w["line"] == 4


def test_max_gc_age_on_1_29_needs_gate(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        'imageMaximumGCAge: "168h"\n'
    )
    code, out, _ = lint(
        str(cfg), "--kubernetes-version", "1.29", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert code == 1
    assert "E105" in {f["code"] for f in json.loads(out)["findings"]}
    code, out, _ = lint(
        str(cfg), "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert code == 0
    code, out, _ = lint(
        str(cfg), "--kubernetes-version", "1.28", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert "W211" in {f["code"] for f in json.loads(out)["findings"]}


def test_unknown_flag_is_fatal_where_the_flag_list_is_known(tmp_path: Path) -> None:
    env = tmp_path / "kubelet"
    env.write_text('KUBELET_EXTRA_ARGS="--container-runtime=remote --imag-gc-high-threshold=80"\n')
    code, out, _ = lint(
        str(env), "--kubernetes-version", "1.27", "--runtime", "containerd@1.7.13", "-o", "json"
    )
    assert code == 1
    codes = [f["code"] for f in json.loads(out)["findings"]]
    assert codes.count("E101") == 1 and codes.count("E102") == 1


def test_unknown_flag_not_guessed_without_a_flag_list(tmp_path: Path) -> None:
    env = tmp_path / "kubelet"
    env.write_text('KUBELET_EXTRA_ARGS="--some-new-flag=1"\n')
    code, out, _ = lint(
        str(env), "--kubernetes-version", "1.34", "--runtime", "containerd@2.1.0", "-o", "json"
    )
    assert code == 0
    assert [f["code"] for f in json.loads(out)["findings"]].count("I302") == 1
