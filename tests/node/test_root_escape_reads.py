"""Discovery under --root never reads outside it: an ``EnvironmentFile=/../../etc/...`` and
an env file or config directory that is a symlink out of the tree all resolve inside the
root (chroot semantics), so the host's files are never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlnode.formats.node_paths import NodeFileRole
from mlnode.node import discover_node_files, read_kubelet_command

UNIT = "[Service]\nExecStart=/usr/bin/kubelet\n"
DROPIN = """\
[Service]
EnvironmentFile=-{env}
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_EXTRA_ARGS
"""
UNIT_DIR = "usr/lib/systemd/system"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / UNIT_DIR / "kubelet.service.d").mkdir(parents=True)
    (root / UNIT_DIR / "kubelet.service").write_text(UNIT)
    (root / "etc/containerd").mkdir(parents=True)
    outside.mkdir()
    (outside / "kubelet.env").write_text('KUBELET_EXTRA_ARGS="--v=9 --host-file"\n')
    (outside / "config.toml").write_text("version = 2\n# host\n")
    return root, outside


def _dropin(root: Path, env: str) -> None:
    (root / UNIT_DIR / "kubelet.service.d/10-kubeadm.conf").write_text(DROPIN.format(env=env))


def test_environmentfile_dotdot_stays_at_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    _dropin(root, "/../../etc/kubelet.env")
    (root / "etc/kubelet.env").write_text('KUBELET_EXTRA_ARGS="--v=2"\n')
    command = read_kubelet_command(root, strict=False)
    assert "--v=2" in command.argv
    files = discover_node_files(root)
    assert root / "etc/kubelet.env" in files.kubelet_env_files
    assert all(str(p).startswith(str(root) + "/") for p in files.kubelet_env_files)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_env_file_linked_out_of_the_tree_is_not_read(
    tree: tuple[Path, Path], relative: bool
) -> None:
    root, outside = tree
    _dropin(root, "/etc/default/kubelet")
    link = root / "etc/default/kubelet"
    link.parent.mkdir(parents=True)
    target = outside / "kubelet.env"
    link.symlink_to(os.path.relpath(target, link.parent) if relative else target)
    command = read_kubelet_command(root, strict=False)
    assert "--host-file" not in command.argv
    files = discover_node_files(root)
    assert all(str(p).startswith(str(root) + "/") for p in files.kubelet_env_files)
    assert "--host-file" not in files.kubelet_argv


def test_containerd_dir_linked_out_of_the_tree_is_not_read(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "etc/containerd").rmdir()
    (root / "etc/containerd").symlink_to(outside)
    files = discover_node_files(root)
    assert files.files(NodeFileRole.CONTAINERD_CONFIG) == ()
