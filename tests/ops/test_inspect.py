"""Local inspection against a fake root and a fake command runner (and the real containerd)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from prereq import unavailable

from mlnode.node import (
    CommandResult,
    parse_containerd_version,
    parse_crio_version,
    parse_kubelet_version,
    run_command,
)
from mlnode.ops.inspect import inspect_node
from mlnode.versions import RuntimeKind, Version

KUBELET_OUT = "Kubernetes v1.30.2\n"
CONTAINERD_OUT = "containerd containerd.io 1.7.13 7c3aca7a610df76212171d200ca3811ff6096eb8\n"
DEBIAN_CONTAINERD_OUT = (
    "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n"
)
CRIO_OUT = "crio version 1.30.0\n   GitCommit:      abc\n"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (CONTAINERD_OUT, Version(1, 7, 13)),
        (DEBIAN_CONTAINERD_OUT, Version(1, 6, 20)),
        ("containerd github.com/containerd/containerd v1.7.13 7c3aca7\n", Version(1, 7, 13)),
        ("containerd github.com/containerd/containerd/v2 v2.0.0 207ad71\n", Version(2, 0, 0)),
        ("something else\n", None),
    ],
)
def test_parse_containerd(text: str, version: Version | None) -> None:
    assert parse_containerd_version(text) == version


def test_parse_kubelet_and_crio() -> None:
    assert parse_kubelet_version(KUBELET_OUT) == Version(1, 30, 2)
    assert parse_kubelet_version("v1.30.2") is None
    assert parse_crio_version(CRIO_OUT) == Version(1, 30, 0)
    assert parse_crio_version("crio version 1.20.0\nVersion:  1.20.0\n") == Version(1, 20, 0)
    assert parse_crio_version("Version:          1.24.1\nGitCommit: x\n") == Version(1, 24, 1)
    assert parse_crio_version("nothing") is None


@dataclass
class FakeStatVfs:
    f_frsize: int = 4096
    f_blocks: int = 256 * 1024 * 1024  # 1 TiB
    f_bavail: int = 128 * 1024 * 1024


class FakeRunner:
    def __init__(self, outputs: dict[str, str | None]) -> None:
        self.outputs = outputs
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        out = self.outputs.get(Path(argv[0]).name)
        return (
            CommandResult(tuple(argv), 1, "", "failed")
            if out is None
            else (CommandResult(tuple(argv), 0, out))
        )


def make_binary(root: Path, name: str, where: str = "usr/bin") -> Path:
    path = root / where / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return path


def test_fake_root_with_kubelet_and_containerd(tmp_path: Path) -> None:
    make_binary(tmp_path, "kubelet")
    make_binary(tmp_path, "containerd", "usr/local/bin")
    (tmp_path / "var/lib/containerd").mkdir(parents=True)
    seen: list[str] = []

    def statvfs(path: str) -> FakeStatVfs:
        seen.append(path)
        return FakeStatVfs()

    runner = FakeRunner({"kubelet": KUBELET_OUT, "containerd": CONTAINERD_OUT})
    got = inspect_node(tmp_path, runner=runner, statvfs=statvfs)
    assert got.kubelet_version == Version(1, 30, 2)
    assert got.runtime is not None and str(got.runtime) == "containerd@1.7.13"
    assert got.capacity_bytes == 1024**4 and got.available_bytes == 1024**4 // 2
    assert seen == [str(tmp_path / "var/lib/containerd")]
    assert got.image_dir == PurePosixPath("/var/lib/containerd")
    assert got.shared_with_os is True
    assert runner.calls[0] == [str(tmp_path / "usr/bin/kubelet"), "--version"]
    layer = got.as_profile_input()
    assert layer.image_disk_capacity_bytes == 1024**4
    assert layer.kubernetes_version == Version(1, 30, 2)
    assert layer.sources["image_disk_capacity_bytes"].startswith("inspection: statvfs")


def test_missing_data_dir_measures_nearest_parent(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    got = inspect_node(tmp_path, runner=FakeRunner({}), statvfs=lambda p: FakeStatVfs())
    assert got.measured_dir == tmp_path / "var"
    assert "nearest existing parent" in got.notes["image_disk"]
    assert got.kubelet_version is None and got.runtime is None
    assert got.notes["kubelet"].startswith("unknown: no kubelet binary")


def test_real_statvfs_of_a_temp_dir(tmp_path: Path) -> None:
    got = inspect_node(tmp_path, runner=FakeRunner({}))
    st = os.statvfs(tmp_path)
    assert got.capacity_bytes == st.f_blocks * st.f_frsize
    assert got.measured_dir == tmp_path


def test_configured_containerd_root(tmp_path: Path) -> None:
    conf = tmp_path / "etc/containerd/config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('version = 2\nroot = "/data/containerd"\n')
    (tmp_path / "data/containerd").mkdir(parents=True)
    got = inspect_node(tmp_path, runner=FakeRunner({}), statvfs=lambda p: FakeStatVfs())
    assert got.image_dir == PurePosixPath("/data/containerd")
    assert got.measured_dir == tmp_path / "data/containerd"
    assert "config.toml" in got.notes["image_disk"]


def test_crio_node(tmp_path: Path) -> None:
    make_binary(tmp_path, "crio")
    (tmp_path / "var/lib/containers/storage").mkdir(parents=True)
    got = inspect_node(
        tmp_path, runner=FakeRunner({"crio": CRIO_OUT}), statvfs=lambda p: FakeStatVfs()
    )
    assert got.runtime is not None and got.runtime.kind is RuntimeKind.CRIO
    assert got.image_dir == PurePosixPath("/var/lib/containers/storage")


def test_unknowns_are_notes_not_errors(tmp_path: Path) -> None:
    make_binary(tmp_path, "kubelet")
    make_binary(tmp_path, "containerd")

    def broken(path: str) -> FakeStatVfs:
        raise PermissionError(13, "Permission denied")

    runner = FakeRunner({"kubelet": None, "containerd": "containerd x 1.5.9 abc\n"})
    got = inspect_node(tmp_path, runner=runner, statvfs=broken)
    assert got.capacity_bytes is None and got.shared_with_os is None
    assert "Permission denied" in got.notes["image_disk"]
    assert got.kubelet_version is None and "did not run" in got.notes["kubelet"]
    assert got.runtime is None and "outside the versions" in got.notes["runtime"]
    assert got.as_profile_input().given() == {}


def test_kubelet_outside_known_versions(tmp_path: Path) -> None:
    make_binary(tmp_path, "kubelet")
    got = inspect_node(tmp_path, runner=FakeRunner({"kubelet": "Kubernetes v1.12.0"}))
    assert got.kubelet_version is None and "outside" in got.notes["kubelet"]


def test_path_is_searched_only_when_asked_for_a_fake_root(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    make_binary(elsewhere, "kubelet", "bin")
    root = tmp_path / "root"
    root.mkdir()
    runner = FakeRunner({"kubelet": KUBELET_OUT})
    assert inspect_node(root, runner=runner).kubelet_version is None
    got = inspect_node(root, runner=runner, path_env=str(elsewhere / "bin"))
    assert got.kubelet_version == Version(1, 30, 2)


def test_run_command_failures_are_not_ok(tmp_path: Path) -> None:
    assert not run_command([str(tmp_path / "absent")]).ok
    false, echo = shutil.which("false"), shutil.which("echo")
    if false is None or echo is None:
        pytest.skip("no false/echo on PATH")
    assert not run_command([false]).ok  # non-zero exit
    assert run_command([echo, "hi"]).stdout.strip() == "hi"


def test_real_debian_containerd() -> None:
    binary = Path("/usr/bin/containerd")
    if not binary.exists():
        unavailable("/usr/bin/containerd is not installed (apt-get install containerd)")
    result = run_command([str(binary), "--version"])
    assert result.ok, "`/usr/bin/containerd --version` failed"
    output = result.stdout + result.stderr
    version = parse_containerd_version(output)
    assert version is not None, f"cannot parse {output!r}"
    assert version.major in (1, 2) and version.patch is not None
    got = inspect_node(Path("/"), statvfs=lambda p: FakeStatVfs())
    assert got.runtime is not None and got.runtime.version == version
