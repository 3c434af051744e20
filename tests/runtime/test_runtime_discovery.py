"""Pure tests of endpoint parsing and runtime discovery under an injected root."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlnode.errors import RuntimeUnavailable, UsageError
from mlnode.runtime.discovery import (
    discover_runtime,
    guess_kind,
    parse_endpoint,
    runtime_root_dir,
)
from mlnode.versions import RuntimeKind


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ("unix:/var/run/crio/crio.sock", "/var/run/crio/crio.sock"),
        ("/run/x.sock", "/run/x.sock"),
        ("  unix:///a/b.sock ", "/a/b.sock"),
    ],
)
def test_parse_endpoint(text: str, path: str) -> None:
    assert parse_endpoint(text) == Path(path)


@pytest.mark.parametrize("text", ["tcp://127.0.0.1:1234", "npipe:////./pipe/x", "", "unix://"])
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_endpoint(text)
    assert str(e.value).startswith("--runtime-endpoint: ")


def test_guess_kind() -> None:
    assert guess_kind("/run/containerd/containerd.sock") is RuntimeKind.CONTAINERD
    assert guess_kind("/var/run/crio/crio.sock") is RuntimeKind.CRIO
    assert guess_kind("/var/run/cri-dockerd.sock") is RuntimeKind.CRI_DOCKERD
    assert guess_kind("/tmp/x.sock") is None


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def _sock(path: Path, held: list[socket.socket]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    held.append(s)


def test_nothing_found_names_every_path(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable) as e:
        discover_runtime(root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "run/containerd/containerd.sock") in msg
    assert str(tmp_path / "var/run/crio/crio.sock") in msg
    assert "--runtime-endpoint" in msg


def test_containerd_default_and_config_root(tmp_path: Path, sockets: list[socket.socket]) -> None:
    _sock(tmp_path / "run/containerd/containerd.sock", sockets)
    _sock(tmp_path / "var/run/crio/crio.sock", sockets)  # containerd wins, like crictl
    ep = discover_runtime(root=tmp_path)
    assert ep.kind is RuntimeKind.CONTAINERD
    assert ep.socket_path == tmp_path / "run/containerd/containerd.sock"
    assert ep.uri == f"unix://{tmp_path}/run/containerd/containerd.sock"
    assert ep.root_dir == tmp_path / "var/lib/containerd"

    cfg = tmp_path / "etc/containerd/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('version = 2\nroot = "/data/containerd"\n')
    assert discover_runtime(root=tmp_path).root_dir == tmp_path / "data/containerd"


def test_crio_root_from_dropins_then_storage_conf(
    tmp_path: Path, sockets: list[socket.socket]
) -> None:
    _sock(tmp_path / "var/run/crio/crio.sock", sockets)
    ep = discover_runtime(root=tmp_path)
    assert ep.kind is RuntimeKind.CRIO
    assert ep.root_dir == tmp_path / "var/lib/containers/storage"

    storage = tmp_path / "etc/containers/storage.conf"
    storage.parent.mkdir(parents=True)
    storage.write_text('[storage]\ndriver = "overlay"\ngraphroot = "/srv/storage"\n')
    assert runtime_root_dir(RuntimeKind.CRIO, root=tmp_path) == tmp_path / "srv/storage"

    dropins = tmp_path / "etc/crio/crio.conf.d"
    dropins.mkdir(parents=True)
    (dropins / "10-a.conf").write_text('[crio]\nroot = "/first"\n')
    (dropins / "20-b.conf").write_text('[crio]\nroot = "/second"\n')
    (dropins / "30-c.conf").write_text("[crio.runtime]\n")  # says nothing about root
    assert runtime_root_dir(RuntimeKind.CRIO, root=tmp_path) == tmp_path / "second"


def test_broken_config_falls_back_to_default(tmp_path: Path) -> None:
    cfg = tmp_path / "etc/containerd/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("root = [unterminated\n")
    assert runtime_root_dir(RuntimeKind.CONTAINERD, root=tmp_path) == (
        tmp_path / "var/lib/containerd"
    )


def test_explicit_endpoint_wins(tmp_path: Path, sockets: list[socket.socket]) -> None:
    _sock(tmp_path / "run/containerd/containerd.sock", sockets)
    ep = discover_runtime("unix:///somewhere/else.sock", root=tmp_path)
    assert ep.socket_path == Path("/somewhere/else.sock")
    assert ep.kind is None and ep.root_dir is None
    ep = discover_runtime("/x/crio.sock", root=tmp_path)
    assert ep.kind is RuntimeKind.CRIO
    assert ep.root_dir == tmp_path / "var/lib/containers/storage"
