"""mlnode.node.discovery: one reading of a node, strict for apply, lenient for lint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from mlnode.errors import InputError
from mlnode.node import (
    CommandResult,
    find_binary,
    probe_version,
    read_kubelet_command,
    unit_files,
)
from mlnode.versions import Version


def write(root: Path, node_path: str, text: str, mode: int = 0o644) -> Path:
    p = root / node_path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)
    return p


UNIT = "[Service]\nEnvironmentFile=/etc/default/kubelet\nExecStart=/usr/bin/kubelet $ARGS\n"


def test_unit_under_usr_local_lib_and_dropin_order(tmp_path: Path) -> None:
    write(tmp_path, "/usr/local/lib/systemd/system/kubelet.service", UNIT)
    write(tmp_path, "/usr/lib/systemd/system/kubelet.service", "[Service]\n")
    write(tmp_path, "/lib/systemd/system/kubelet.service.d/20-b.conf", "[Service]\n")
    write(tmp_path, "/etc/systemd/system/kubelet.service.d/10-a.conf", "[Service]\n")
    write(tmp_path, "/usr/lib/systemd/system/kubelet.service.d/10-a.conf", "[Service]\n")
    notes: list[str] = []
    main, dropins = unit_files(tmp_path, "kubelet", notes)
    assert main == "/usr/local/lib/systemd/system/kubelet.service"
    assert dropins == [
        "/etc/systemd/system/kubelet.service.d/10-a.conf",
        "/lib/systemd/system/kubelet.service.d/20-b.conf",
    ]
    assert any("masked" in n for n in notes)


def test_strict_and_lenient_on_a_missing_environment_file(tmp_path: Path) -> None:
    write(tmp_path, "/etc/systemd/system/kubelet.service", UNIT)
    with pytest.raises(InputError, match="requires this EnvironmentFile"):
        read_kubelet_command(tmp_path, strict=True)
    lenient = read_kubelet_command(tmp_path, strict=False)
    assert any("systemd will not start" in n for n in lenient.notes)
    assert lenient.argv == ("/usr/bin/kubelet",)
    write(tmp_path, "/etc/default/kubelet", 'ARGS="--config /k.yaml --v=2"\n')
    strict = read_kubelet_command(tmp_path, strict=True)
    assert strict.argv == ("/usr/bin/kubelet", "--config", "/k.yaml", "--v=2")
    assert strict.flag("config") == "/k.yaml"
    assert strict.files["/etc/default/kubelet"] == 'ARGS="--config /k.yaml --v=2"\n'
    assert strict.binary == "/usr/bin/kubelet"


def test_strict_needs_a_unit_and_an_exec_start(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="/usr/local/lib/systemd/system"):
        read_kubelet_command(tmp_path, strict=True)
    assert read_kubelet_command(tmp_path, strict=False).argv == ()
    write(tmp_path, "/etc/systemd/system/kubelet.service", "[Service]\n")
    with pytest.raises(InputError, match="no ExecStart="):
        read_kubelet_command(tmp_path, strict=True)


def test_binary_order_exec_start_then_fixed_dirs(tmp_path: Path) -> None:
    write(tmp_path, "/usr/bin/kubelet", "#!/bin/sh\n", 0o755)
    write(tmp_path, "/usr/local/bin/kubelet", "#!/bin/sh\n", 0o755)
    write(tmp_path, "/opt/bin/kubelet", "#!/bin/sh\n", 0o644)  # not executable
    found = find_binary(tmp_path, "kubelet", exec_start="/usr/bin/kubelet", path_env="")
    assert found is not None and found.path == "/usr/bin/kubelet"
    found = find_binary(tmp_path, "kubelet", exec_start="/opt/bin/kubelet", path_env="")
    assert found is not None and found.path == "/usr/local/bin/kubelet"
    assert found.host == tmp_path / "usr/local/bin/kubelet"
    assert find_binary(tmp_path, "crio", path_env="") is None


def test_probe_uses_the_binary_own_parser(tmp_path: Path) -> None:
    outputs = {
        "kubelet": "Kubernetes v1.30.2\n",
        "containerd": "containerd github.com/containerd/containerd v2.0.2 abc\n",
        "crio": "crio version 1.30.0\n",
    }

    def runner(argv: Sequence[str]) -> CommandResult:
        return CommandResult(tuple(argv), 0, outputs[Path(argv[0]).name])

    assert probe_version("kubelet", tmp_path / "kubelet", runner).version == Version(1, 30, 2)
    assert probe_version("containerd", tmp_path / "containerd", runner).version == Version(2, 0, 2)
    assert probe_version("crio", tmp_path / "crio", runner).version == Version(1, 30, 0)
    # "v1.30.2" alone is not what a kubelet prints: no version, but the probe ran.
    outputs["kubelet"] = "v1.30.2\n"
    probe = probe_version("kubelet", tmp_path / "kubelet", runner)
    assert probe.ran and probe.version is None and probe.first_line() == "v1.30.2"
