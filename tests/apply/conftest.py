"""Fixtures for the apply tests: node trees, the kubelet stand-in, free ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .standin_services import StandinServiceManager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def standin_factory(tmp_path: Path) -> Iterator[list[StandinServiceManager]]:
    managers: list[StandinServiceManager] = []
    yield managers
    for m in managers:
        m.stop()


@pytest.fixture
def make_standin(tmp_path: Path, standin_factory: list[StandinServiceManager]) -> object:
    def make(root: Path, version: str) -> StandinServiceManager:
        m = StandinServiceManager(
            root, tmp_path / f"state{len(standin_factory)}", version, free_port()
        )
        standin_factory.append(m)
        return m

    return make


def containerd_dump_runner(root: Path):  # type: ignore[no-untyped-def]
    """A runner answering ``containerd config dump`` with the root's config.toml."""
    from mlnode.node import CommandResult

    def run(argv):  # type: ignore[no-untyped-def]
        argv = tuple(argv)
        if argv[-2:] == ("config", "dump"):
            p = root / "etc/containerd/config.toml"
            return CommandResult(argv, 0, p.read_text() if p.exists() else "version = 2\n")
        return CommandResult(argv, 1, "", "unsupported")

    return run
