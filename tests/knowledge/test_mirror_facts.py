"""The hosts.toml facts per containerd version, at the edges of each span (read from
containerd's tags: _default from v1.6.17/v1.7.0, dial_timeout from v2.0.7/v2.1.0,
config_path's default from v2.2.0)."""

from __future__ import annotations

import pytest

from mlnode.knowledge.table import hosts_config_path, hosts_default_dir, hosts_dial_timeout
from mlnode.versions import Version


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.5.18", False),
        ("1.6.16", False),
        ("1.6.17", True),
        ("1.6.20", True),
        ("1.7.0", True),
        ("2.0.0", True),
        ("2.3.0", True),
    ],
)
def test_default_dir(version: str, expected: bool) -> None:
    assert hosts_default_dir(Version.parse(version)).supported is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.6.20", False),
        ("1.7.34", False),
        ("2.0.6", False),
        ("2.0.7", True),
        ("2.1.0", True),
        ("2.2.3", True),
    ],
)
def test_dial_timeout(version: str, expected: bool) -> None:
    assert hosts_dial_timeout(Version.parse(version)).supported is expected


@pytest.mark.parametrize(
    ("version", "plugin", "default"),
    [
        ("1.6.20", "io.containerd.grpc.v1.cri", ""),
        ("1.7.20", "io.containerd.grpc.v1.cri", ""),
        ("2.0.0", "io.containerd.cri.v1.images", ""),
        ("2.1.9", "io.containerd.cri.v1.images", ""),
        ("2.2.0", "io.containerd.cri.v1.images", "/etc/containerd/certs.d:/etc/docker/certs.d"),
    ],
)
def test_config_path(version: str, plugin: str, default: str) -> None:
    row = hosts_config_path(Version.parse(version))
    assert row.table == ("plugins", plugin, "registry")
    assert row.config_version == (2 if version.startswith("1.") else 3)
    assert row.default == default
