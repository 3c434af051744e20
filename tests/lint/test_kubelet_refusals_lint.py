"""`mlnode lint` on settings the kubelet refuses at start: feature gates (E109/E110, I303),
eviction thresholds (E111), flag values pflag rejects (E103), flags that accept only some
values (E112). Each on both sides of its version boundary, with file:line and the kubelet's
own words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

runner = CliRunner()
KCFG = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def lint(path: Path, k8s: str, runtime: str = "containerd@1.7.13") -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app, ["lint", str(path), "--kubernetes-version", k8s, "--runtime", runtime, "-o", "json"]
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, json.loads(result.stdout)


def findings(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["code"] == code]


def env(tmp_path: Path, args: str) -> Path:
    path = tmp_path / "kubelet"
    path.write_text(f'# node overrides\nKUBELET_EXTRA_ARGS="{args}"\n')
    return path


# --- feature gates ---------------------------------------------------------------------


def test_gate_in_config_file_unknown_before_its_version(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + "featureGates:\n  ImageMaximumGCAge: true\n")
    code, report = lint(path, "1.28")
    assert code == 1
    [e] = findings(report, "E109")
    assert (e["file"], e["line"], e["severity"]) == (str(path), 3, "error")
    assert e["consequence"] == (
        'the kubelet does not start: "unrecognized feature gate: ImageMaximumGCAge"'
    )
    code, report = lint(path, "1.29")
    assert not findings(report, "E109")


def test_gate_in_flag_unknown_after_its_removal(tmp_path: Path) -> None:
    path = env(tmp_path, "--feature-gates=DynamicKubeletConfig=false,AllAlpha=false")
    code, report = lint(path, "1.24")
    assert not findings(report, "E109")
    code, report = lint(path, "1.26")
    assert code == 1
    [e] = findings(report, "E109")
    assert (e["file"], e["line"]) == (str(path), 2)
    assert "unrecognized feature gate: DynamicKubeletConfig" in e["consequence"]


def test_locked_gate_set_to_the_other_value(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + "cgroupDriver: systemd\nfeatureGates:\n  CPUManager: false\n")
    code, report = lint(path, "1.24")
    assert not findings(report, "E110")
    code, report = lint(path, "1.26")
    assert code == 1
    [e] = findings(report, "E110")
    assert (e["file"], e["line"]) == (str(path), 4)
    assert e["consequence"] == (
        'the kubelet does not start: "cannot set feature gate CPUManager to false,'
        ' feature is locked to true"'
    )


def test_gate_in_kubeadm_kubelet_extra_args(tmp_path: Path) -> None:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
        "  kubeletExtraArgs:\n    feature-gates: KubeletSeparateDiskGC=true\n"
    )
    code, report = lint(path, "1.28")
    assert code == 1
    [e] = findings(report, "E109")
    assert (e["file"], e["line"]) == (str(path), 5)
    _code, report = lint(path, "1.29")
    assert not findings(report, "E109")


def test_gate_in_kubespray_group_vars(tmp_path: Path) -> None:
    path = tmp_path / "k8s-cluster.yml"
    path.write_text('kubelet_feature_gates: ["ImageVolume=true"]\n')
    code, report = lint(path, "1.30")
    assert code == 1
    [e] = findings(report, "E109")
    assert e["file"] == str(path)
    assert "unrecognized feature gate: ImageVolume" in e["consequence"]
    _code, report = lint(path, "1.31")
    assert not findings(report, "E109")


@pytest.mark.parametrize("k8s", ["1.25", "1.33", "1.35"])
def test_version_without_a_gate_list_says_so(tmp_path: Path, k8s: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + "featureGates:\n  NoSuchGate: true\n")
    _code, report = lint(path, k8s)
    assert not findings(report, "E109")
    [i] = findings(report, "I303")
    assert i["message"] == (
        f"mlnode has no feature gate list for kubelet {k8s}: NoSuchGate not checked"
    )


def test_version_without_a_list_checks_the_gates_the_website_has(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + "featureGates:\n  ImageMaximumGCAge: false\n  NoSuchGate: true\n")
    code, report = lint(path, "1.34")
    assert not findings(report, "E110")
    [i] = findings(report, "I303")
    assert "NoSuchGate not checked" in i["message"]
    code, report = lint(path, "1.35")
    assert code == 1
    [e] = findings(report, "E110")
    assert (e["file"], e["line"]) == (str(path), 3)
    assert (
        "cannot set feature gate ImageMaximumGCAge to false, feature is locked to true"
        in (e["consequence"])
    )
    assert findings(report, "I303")[0]["message"].endswith(": NoSuchGate not checked")


# --- eviction thresholds ---------------------------------------------------------------


def test_containerfs_signal_refused_before_1_29(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + "evictionHard:\n  containerfs.available: 10%\n")
    code, report = lint(path, "1.28")
    assert code == 1
    [e] = findings(report, "E111")
    assert (e["file"], e["line"]) == (str(path), 3)
    assert e["consequence"] == (
        'the kubelet does not start: "failed to run Kubelet: unsupported eviction signal'
        ' containerfs.available"'
    )
    code, report = lint(path, "1.29")
    assert not findings(report, "E111")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('"-5%"', "eviction percentage threshold imagefs.available must be >= 0%: -5%"),
        ('"150%"', "eviction percentage threshold imagefs.available must be <= 100%: 150%"),
        (
            '"ten"',
            "quantities must match the regular expression"
            " '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        ('"0Mi"', "eviction threshold imagefs.available must be positive: 0"),
    ],
)
def test_threshold_values_refused(tmp_path: Path, value: str, error: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + f"evictionHard:\n  imagefs.available: {value}\n")
    for k8s in ("1.21", "1.32"):
        code, report = lint(path, k8s)
        assert code == 1
        [e] = findings(report, "E111")
        assert e["line"] == 3
        assert e["consequence"] == f'the kubelet does not start: "failed to run Kubelet: {error}"'


def test_threshold_from_the_flag(tmp_path: Path) -> None:
    path = env(tmp_path, "--eviction-hard=imagefs.available<101%")
    _code, report = lint(path, "1.30")
    [e] = findings(report, "E111")
    assert (e["file"], e["line"]) == (str(path), 2)
    assert "must be <= 100%: 101%" in e["consequence"]


def test_good_thresholds_pass(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(KCFG + 'evictionHard:\n  imagefs.available: "15%"\n  memory.available: 100Mi\n')
    _code, report = lint(path, "1.30")
    assert not findings(report, "E111")


# --- flag values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            "--image-gc-high-threshold=99999999999",
            'invalid argument "99999999999" for "--image-gc-high-threshold" flag:'
            ' strconv.ParseInt: parsing "99999999999": value out of range',
        ),
        (
            "--serialize-image-pulls=nope",
            'invalid argument "nope" for "--serialize-image-pulls" flag:'
            ' strconv.ParseBool: parsing "nope": invalid syntax',
        ),
        (
            "--minimum-image-ttl-duration=5",
            'invalid argument "5" for "--minimum-image-ttl-duration" flag:'
            ' time: missing unit in duration "5"',
        ),
    ],
)
def test_flag_values_pflag_rejects(tmp_path: Path, args: str, problem: str) -> None:
    path = env(tmp_path, args)
    for k8s in ("1.21", "1.32"):
        code, report = lint(path, k8s)
        assert code == 1
        [e] = findings(report, "E103")
        assert (e["file"], e["line"], e["message"]) == (str(path), 2, problem)


def test_hex_int_flag_is_accepted_like_pflag(tmp_path: Path) -> None:
    path = env(tmp_path, "--image-gc-high-threshold=0x5A --image-gc-low-threshold=0120")
    _code, report = lint(path, "1.30")
    assert not findings(report, "E103")
    assert report["effective"]["image_gc_high_threshold_percent"]["value"] == 90
    assert report["effective"]["image_gc_low_threshold_percent"]["value"] == 80


def test_deadline_flag_value_until_it_is_removed(tmp_path: Path) -> None:
    path = env(tmp_path, "--image-pull-progress-deadline=30")
    code, report = lint(path, "1.23", "docker")
    assert code == 1
    [e] = findings(report, "E103")
    assert e["message"] == (
        'invalid argument "30" for "--image-pull-progress-deadline" flag:'
        ' time: missing unit in duration "30"'
    )
    _code, report = lint(path, "1.24", "containerd@1.7.13")
    assert findings(report, "E101") and not findings(report, "E103")


# --- flags that accept only some values ------------------------------------------------


def test_container_runtime_docker_refused_from_1_24(tmp_path: Path) -> None:
    path = env(tmp_path, "--container-runtime=docker")
    code, report = lint(path, "1.23", "docker")
    assert not findings(report, "E112")
    code, report = lint(path, "1.24")
    assert code == 1
    [e] = findings(report, "E112")
    assert (e["file"], e["line"]) == (str(path), 2)
    assert e["consequence"] == (
        'the kubelet does not start: "failed to validate kubelet flags: unsupported CRI'
        ' runtime: "docker", only "remote" is currently supported"'
    )


def test_container_runtime_remote_until_the_flag_goes(tmp_path: Path) -> None:
    path = env(tmp_path, "--container-runtime=remote")
    for k8s in ("1.24", "1.26"):
        _code, report = lint(path, k8s)
        assert not findings(report, "E112")
    _code, report = lint(path, "1.27")
    assert findings(report, "E101") and not findings(report, "E112")


def test_container_runtime_unknown_value_before_1_24(tmp_path: Path) -> None:
    path = env(tmp_path, "--container-runtime=containerd")
    _code, report = lint(path, "1.23")
    [e] = findings(report, "E112")
    assert e["consequence"] == (
        'the kubelet does not start: "failed to run Kubelet: unsupported CRI runtime: "containerd""'
    )


def test_threshold_in_the_config_file_survives_a_drop_in(tmp_path: Path) -> None:
    base = tmp_path / "config.yaml"
    base.write_text(KCFG + "evictionHard:\n  nodefs.available: 0Gi\n")
    dropin = tmp_path / "10-eviction.conf"
    dropin.write_text(KCFG + 'evictionHard:\n  imagefs.available: "15%"\n')
    result = runner.invoke(
        app,
        [
            "lint", str(base), str(dropin), "--kubernetes-version", "1.30",
            "--runtime", "containerd@1.7.13", "-o", "json",
        ],
    )  # fmt: skip
    [e] = findings(json.loads(result.stdout), "E111")
    assert (e["file"], e["line"]) == (str(base), 3)
    assert "eviction threshold nodefs.available must be positive: 0" in e["consequence"]


def test_flag_replaces_the_files_thresholds(tmp_path: Path) -> None:
    base = tmp_path / "config.yaml"
    base.write_text(KCFG + "evictionHard:\n  nodefs.available: 0Gi\n")
    flags = env(tmp_path, "--eviction-hard=imagefs.available<15%")
    result = runner.invoke(
        app,
        [
            "lint", str(base), str(flags), "--kubernetes-version", "1.30",
            "--runtime", "containerd@1.7.13", "-o", "json",
        ],
    )  # fmt: skip
    assert not findings(json.loads(result.stdout), "E111")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "ImageMaximumGCAge",
            'invalid argument "ImageMaximumGCAge" for "--feature-gates" flag:'
            " malformed pair, expect string=bool",
        ),
        (
            "ImageMaximumGCAge=yes",
            'invalid argument "ImageMaximumGCAge=yes" for "--feature-gates" flag: invalid value'
            ' of ImageMaximumGCAge: yes, err: strconv.ParseBool: parsing "yes": invalid syntax',
        ),
    ],
)
def test_feature_gates_flag_pflag_refuses(tmp_path: Path, value: str, error: str) -> None:
    path = env(tmp_path, f"--feature-gates={value}")
    code, report = lint(path, "1.30")
    assert code == 1
    [e] = findings(report, "E103")
    assert (e["file"], e["line"], e["message"]) == (str(path), 2, error)
    assert (
        e["consequence"] == f'the kubelet does not start: "failed to parse kubelet flag: {error}"'
    )


def test_feature_gates_flag_accepts_go_booleans(tmp_path: Path) -> None:
    path = env(tmp_path, "--feature-gates=ImageMaximumGCAge=T,,KubeletSeparateDiskGC=0")
    code, report = lint(path, "1.30")
    assert code == 0, report["findings"]
    assert not findings(report, "E103") and not findings(report, "E109")
