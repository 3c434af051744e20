"""mlnode.rootpath: node paths under a root, symlinks resolved as if the root were ``/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlnode.errors import InputError
from mlnode.node import RootEscape, host_path, read_path, read_text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc/default").mkdir(parents=True)
    return r


def test_plain_paths(root: Path) -> None:
    assert read_path(root, "/etc/default/kubelet") == root / "etc/default/kubelet"
    assert host_path(root, "/etc/default/kubelet") == root / "etc/default/kubelet"
    assert host_path(root, "/etc/../etc/default/./kubelet") == root / "etc/default/kubelet"
    assert read_path(root, "/") == root


def test_relative_node_path_is_refused(root: Path) -> None:
    for resolve in (read_path, host_path):
        with pytest.raises(RootEscape, match="not an absolute node path"):
            resolve(root, "etc/default/kubelet")


def test_dotdot_clamps_for_reads_and_is_refused_for_writes(root: Path) -> None:
    assert read_path(root, "/etc/../../../x") == root / "x"
    with pytest.raises(RootEscape) as e:
        host_path(root, "/etc/../../x")
    assert isinstance(e.value, InputError) and e.value.exit_code == 2
    assert "'/etc/../../x'" in str(e.value) and str(root) in str(e.value)


def test_absolute_symlink_is_re_rooted(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kubelet").write_text("HOST\n")
    link = root / "etc/default/kubelet"
    link.symlink_to(outside / "kubelet")  # absolute: on the node it means <root>/<that path>
    inside = root / str(outside / "kubelet").lstrip("/")
    assert read_path(root, "/etc/default/kubelet") == inside
    assert read_text(root, "/etc/default/kubelet", strict=True) is None  # not the host's file
    inside.parent.mkdir(parents=True)
    inside.write_text("NODE\n")
    assert read_text(root, "/etc/default/kubelet", strict=True) == "NODE\n"
    with pytest.raises(RootEscape, match="symlink to"):
        host_path(root, "/etc/default/kubelet")


def test_relative_symlink_climbing_out_is_clamped_or_refused(tmp_path: Path, root: Path) -> None:
    (tmp_path / "x").write_text("HOST\n")
    (root / "x").write_text("NODE\n")
    link = root / "etc/default/kubelet"
    link.symlink_to("../../../../x")  # from <root>/etc/default: four levels up is above root
    assert read_path(root, "/etc/default/kubelet") == root / "x"
    assert read_text(root, "/etc/default/kubelet", strict=True) == "NODE\n"
    with pytest.raises(RootEscape, match="climbs above the root"):
        host_path(root, "/etc/default/kubelet")


def test_symlinked_directory_inside_the_root_is_followed(root: Path) -> None:
    (root / "srv/k8s").mkdir(parents=True)
    (root / "etc/kubernetes").symlink_to("../srv/k8s")
    assert host_path(root, "/etc/kubernetes/kubelet.conf.d/x.conf") == (
        root / "srv/k8s/kubelet.conf.d/x.conf"
    )
    (root / "lib").symlink_to("usr/lib")  # merged /usr
    assert read_path(root, "/lib/systemd/system") == root / "usr/lib/systemd/system"


def test_symlinked_directory_out_of_the_root(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "etc/kubernetes").symlink_to(outside)
    assert read_path(root, "/etc/kubernetes/a.conf") == root / str(outside / "a.conf").lstrip("/")
    with pytest.raises(RootEscape):
        host_path(root, "/etc/kubernetes/a.conf")


def test_symlink_loop(root: Path) -> None:
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    with pytest.raises(InputError, match="too many levels"):
        read_path(root, "/a/x")


def test_root_is_slash_absolute_links_are_fine(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    node = str(link)
    assert host_path(Path("/"), node) == tmp_path / "target"
