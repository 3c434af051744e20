"""Hostile input files through the real CLI (issue 8, deliverable 5).

Each case ends in exactly one stderr line ``mlnode: error: <file>:<line>: ...`` and exit 2
(or, for a value the kubelet or runtime refuses, a lint finding naming file:line and exit
1), no traceback, and nothing written anywhere under the test's directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from prereq import unavailable
from typer.testing import CliRunner, Result

from mlnode.cli.app import app
from mlnode.errors import InputError
from mlnode.formats.detect import detect_kind
from mlnode.formats.textcheck import MAX_NESTING_DEPTH, check_text

runner = CliRunner()

DEEP = 100_000
KUBELET_HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
LINT = ["lint", "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.20"]
LINT_CRIO = ["lint", "--kubernetes-version", "1.30", "--runtime", "crio@1.32.0"]


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def invoke(tmp_path: Path, args: list[str]) -> Result:
    before = digest(tmp_path)
    result = runner.invoke(app, args)
    assert digest(tmp_path) == before, "a file was written or changed"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def assert_one_error_line(result: Result, where: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mlnode: error: {where}: "), lines[0]


# --------------------------------------------------------------------------- exit 2 cases

DEEP_JSON = "[" * DEEP + "]" * DEEP
NESTED = f"nested more than {MAX_NESTING_DEPTH} levels deep"
NUL = "contains a NUL byte"


def laughs(head: str) -> str:
    """Nine levels of ten aliases: 10**9 values from a file of under 1 kB."""
    lines = [head + "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


LAUGHS = "YAML aliases expand to more than"

# (id, file name, content, argv before the file (the file's path is appended), line, text)
CASES: list[tuple[str, str, str, list[str], int, str]] = [
    ("snapshot-deep-json", "snap.json", DEEP_JSON, ["gc", "--snapshot"], 1, NESTED),
    ("profile-deep-json", "p.json", DEEP_JSON, ["plan", "--profile"], 1, NESTED),
    ("plan-deep-json", "plan.json", DEEP_JSON, ["render", "--plan"], 1, NESTED),
    (
        "profile-deep-yaml-flow",
        "p.yaml",
        "image_disk: 1TiB\nx: " + "[" * DEEP + "]" * DEEP + "\n",
        ["plan", "--profile"],
        2,
        NESTED,
    ),
    (
        "kubelet-deep-yaml-flow",
        "kubelet.yaml",
        KUBELET_HEAD + "evictionHard: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n",
        LINT,
        3,
        NESTED,
    ),
    (
        "kubelet-deep-yaml-block",
        "kubelet.yaml",
        KUBELET_HEAD + "x:\n  " + "- " * 2_000 + "1\n",
        LINT,
        4,
        "nested too deeply",
    ),
    (
        "containerd-deep-toml-array",
        "config.toml",
        "version = 2\nx = " + "[" * DEEP + "]" * DEEP + "\n",
        LINT,
        2,
        NESTED,
    ),
    (
        "containerd-deep-toml-inline-table",
        "config.toml",
        "version = 2\nx = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
        LINT,
        2,
        NESTED,
    ),
    ("profile-nul-yaml", "p.yaml", "image_disk: 1TiB\nx: \x00\n", ["plan", "--profile"], 2, NUL),
    ("profile-nul-json", "p.json", '{"image_disk":\n "1TiB\x00"}', ["plan", "--profile"], 2, NUL),
    ("snapshot-nul", "snap.json", '{"now": 1}\n\x00\n', ["gc", "--snapshot"], 2, NUL),
    ("plan-nul", "plan.json", '{\n\n "schema": "\x00"}', ["render", "--plan"], 3, NUL),
    ("lint-nul-toml", "config.toml", "version = 2\n\x00\n", LINT, 2, NUL),
    ("lint-nul-yaml", "kubelet.yaml", KUBELET_HEAD + "a: \x00\n", LINT, 3, NUL),
    ("lint-nul-env", "kubelet.env", "A=1\nB=2\nKUBELET_EXTRA_ARGS=\x00\n", LINT, 3, NUL),
    ("kubelet-alias-bomb", "kubelet.yaml", laughs(KUBELET_HEAD), LINT, 7, LAUGHS),
    ("profile-alias-bomb", "p.yaml", laughs("a: 1\n"), ["plan", "--profile"], 6, LAUGHS),
    (
        "kubespray-alias-bomb",
        "k8s-cluster.yml",
        laughs("kube_version: v1.30.0\n"),
        LINT,
        6,
        LAUGHS,
    ),
    (
        "kubelet-duplicate-key",
        "kubelet.yaml",
        KUBELET_HEAD + "imageGCHighThresholdPercent: 80\nimageGCHighThresholdPercent: 90\n",
        LINT,
        4,
        'duplicate key "imageGCHighThresholdPercent"',
    ),
    (
        "kubelet-dropin-duplicate-nested-key",
        "10-images.conf",
        KUBELET_HEAD + "evictionHard:\n  imagefs.available: 15%\n  imagefs.available: 20%\n",
        LINT,
        5,
        'duplicate key "imagefs.available"',
    ),
    (
        "kubeadm-duplicate-key",
        "kubeadm.yaml",
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"
        "nodeRegistration:\n  name: a\n  name: b\n",
        LINT,
        5,
        'duplicate key "name"',
    ),
    (
        "kubespray-duplicate-key",
        "k8s-cluster.yml",
        "kube_version: v1.30.0\nkubelet_max_pods: 110\nkubelet_max_pods: 200\n",
        LINT,
        3,
        'duplicate key "kubelet_max_pods"',
    ),
    (
        "containerd-duplicate-key",
        "config.toml",
        'version = 2\nroot = "/a"\nroot = "/b"\n',
        LINT,
        3,
        'key "root" is defined twice',
    ),
    (
        "containerd-duplicate-table",
        "config.toml",
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nx = 1\n'
        '[plugins."io.containerd.grpc.v1.cri"]\ny = 2\n',
        LINT,
        4,
        "defined twice",
    ),
    (
        "containerd-duplicate-only-top-level-keys",
        "config.toml",
        "version = 2\nversion = 3\n",
        LINT,
        2,
        'key "version" is defined twice',
    ),
    (
        "crio-duplicate-key",
        "crio.conf",
        '[crio.image]\npause_image = "a"\npause_image = "b"\n',
        LINT_CRIO,
        3,
        'key "pause_image" is defined twice',
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "argv", "line", "text"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_bad_file_is_one_error_line(
    tmp_path: Path, name: str, content: str, argv: list[str], line: int, text: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = invoke(tmp_path, [*argv, str(path)])
    assert_one_error_line(result, f"{path}:{line}")
    assert text in result.stderr


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param('version = 2\nroot = "/a"\nroot = "/b"\n', 3, id="duplicate-key"),
        pytest.param("version = 2\n\x00\n", 2, id="nul"),
        pytest.param("version = 2\nx = " + "[" * DEEP + "]" * DEEP + "\n", 2, id="deep"),
    ],
)
def test_render_merge_refuses_a_bad_target_and_writes_nothing(
    tmp_path: Path, content: str, line: int
) -> None:
    target = tmp_path / "config.toml"
    target.write_text(content, encoding="utf-8")
    args = ["render", "--image-pull-progress-deadline", "30m", "--kubernetes-version", "1.30"]
    result = invoke(tmp_path, [*args, "--runtime", "containerd@1.7.20", "--merge", str(target)])
    assert_one_error_line(result, f"{target}:{line}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


# --------------------------------------------------------------------------- lint findings

FINDINGS: list[tuple[str, str, str, list[str], int, str]] = [
    (
        "min-gc-age-overflow",
        "kubelet.yaml",
        KUBELET_HEAD + "imageMinimumGCAge: 99999999999999999h\n",
        LINT,
        3,
        'imageMinimumGCAge: time: invalid duration "99999999999999999h"',
    ),
    (
        "max-gc-age-overflow-by-one-ns",
        "kubelet.yaml",
        KUBELET_HEAD + "imageMaximumGCAge: 2562047h47m16.854775808s\n",
        LINT,
        3,
        'time: invalid duration "2562047h47m16.854775808s"',
    ),
    (
        "runtime-request-timeout-overflow",
        "kubelet.yaml",
        KUBELET_HEAD + "runtimeRequestTimeout: 9223372036854775808ns\n",
        LINT,
        3,
        'time: invalid duration "9223372036854775808ns"',
    ),
    (
        "flag-duration-overflow",
        "kubelet.env",
        'KUBELET_EXTRA_ARGS="--minimum-image-ttl-duration=99999999999999999h"\n',
        LINT,
        1,
        'time: invalid duration "99999999999999999h"',
    ),
    (
        "containerd-timeout-as-table",
        "config.toml",
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n'
        '[plugins."io.containerd.grpc.v1.cri".image_pull_progress_timeout]\na = 1\n',
        LINT,
        3,
        "image_pull_progress_timeout is a TOML table",
    ),
    (
        "containerd-timeout-as-inline-table",
        "config.toml",
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n'
        'image_pull_progress_timeout = { value = "5m" }\n',
        LINT,
        3,
        "image_pull_progress_timeout is a TOML table",
    ),
    (
        "containerd-timeout-as-array",
        "config.toml",
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n\n'
        'image_pull_progress_timeout = ["5m"]\n',
        LINT,
        4,
        "image_pull_progress_timeout is a TOML array",
    ),
    (
        "containerd-timeout-as-integer",
        "config.toml",
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nimage_pull_progress_timeout = 300\n',
        LINT,
        3,
        "image_pull_progress_timeout is a TOML integer",
    ),
    (
        "crio-timeout-as-table",
        "crio.conf",
        "[crio.image]\n[crio.image.pull_progress_timeout]\nseconds = 1\n",
        LINT_CRIO,
        2,
        "pull_progress_timeout is a TOML table",
    ),
    (
        "crio-timeout-as-bool",
        "crio.conf",
        "[crio.image]\npull_progress_timeout = true\n",
        LINT_CRIO,
        2,
        "pull_progress_timeout is a TOML boolean",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "argv", "line", "text"),
    [pytest.param(*c[1:], id=c[0]) for c in FINDINGS],
)
def test_refused_value_is_an_e103_finding(
    tmp_path: Path, name: str, content: str, argv: list[str], line: int, text: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    result = invoke(tmp_path, [*argv, "-o", "json", str(path)])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr == ""
    findings = json.loads(result.stdout)["findings"]
    e103 = [f for f in findings if f["code"] == "E103"]
    assert len(e103) == 1, findings
    assert text in e103[0]["message"]
    assert e103[0]["severity"] == "error"
    assert (e103[0]["file"], e103[0]["line"]) == (str(path), line)


def test_crio_integer_timeout_is_nanoseconds(tmp_path: Path) -> None:
    """BurntSushi/toml stores a TOML integer in a time.Duration as nanoseconds: no error."""
    path = tmp_path / "crio.conf"
    path.write_text("[crio.image]\npull_progress_timeout = 1800\n", encoding="utf-8")
    result = invoke(tmp_path, [*LINT_CRIO, "-o", "json", str(path)])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert not [f for f in report["findings"] if f["code"] == "E103"]
    assert report["effective"]["image_pull_progress_deadline_seconds"]["value"] == 1.8e-6


# --------------------------------------------------------------------------- the checks alone


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[" * (MAX_NESTING_DEPTH + 1), 1),
        ("a:\n  b: " + "{x: " * (MAX_NESTING_DEPTH + 1), 2),
        ('x = "' + "[" * 500 + '"\n' + "y = " + "[" * (MAX_NESTING_DEPTH + 1), 2),
    ],
)
def test_depth_limit_names_the_line(text: str, line: int) -> None:
    with pytest.raises(InputError) as e:
        check_text("f", text)
    assert e.value.line == line


@pytest.mark.parametrize(
    "text",
    [
        "[" * MAX_NESTING_DEPTH + "]" * MAX_NESTING_DEPTH,
        'x = "' + "[" * 500 + '"\n',  # brackets inside strings do not nest
        "x: '" + "{" * 500 + "'\n",
        "# " + "[" * 500 + "\n",  # nor inside comments
        "a: it's [1, [2, [3]]]\n",  # an apostrophe in a plain scalar is no quote
    ],
)
def test_depth_limit_leaves_real_files_alone(text: str) -> None:
    check_text("f", text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("A=1\nA=2\n", "env"),  # a name assigned twice is fine in an env file
        ("version = 2\n", "containerd"),
    ],
)
def test_duplicate_check_leaves_other_kinds_alone(text: str, kind: str) -> None:
    assert kind in detect_kind("f", text).value.replace("-", " ")


def _upstream_files() -> list[Path]:
    root = Path(__file__).parent.parent / "data" / "upstream"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "PROVENANCE.md")


@pytest.mark.parametrize("path", _upstream_files(), ids=lambda p: p.name)
def test_genuine_upstream_files_pass_the_text_checks(path: Path) -> None:
    check_text(path, path.read_text(encoding="utf-8"))


_CONTAINERD = shutil.which("containerd")


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        pytest.param(
            'version = 2\nroot = "/nonexistent/a"\nroot = "/nonexistent/b"\n',
            "defined twice",
            id="duplicate-key",
        ),
        # the type rule behind E103 for image_pull_progress_timeout, on a string field
        # this (1.x) binary has: a table where go-toml decodes a string
        pytest.param(
            'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = { a = 1 }\n',
            "Can't convert",
            id="table-for-a-string",
        ),
    ],
)
def test_real_containerd_refuses_it_too(tmp_path: Path, content: str, refusal: str) -> None:
    """`containerd config dump` loads the file and decodes each plugin's config as the
    daemon does at start: it must fail where mlnode says containerd does not start."""
    if _CONTAINERD is None:
        unavailable("no containerd binary (apt-get install containerd)")
    f = tmp_path / "config.toml"
    f.write_text(content)
    run = subprocess.run(
        [_CONTAINERD, "--config", str(f), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode != 0 and refusal in run.stderr, run.stderr
