"""`mlnode apply --root` never writes outside the root, whatever the symlinks in the tree say.

Reading clamps inside the root (chroot semantics); writing through a symlink that leaves
the root is refused with exit 2 and not one byte written, inside the root or outside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

from .layouts import build_kubeadm
from .treeutil import whole_tree_digest

runner = CliRunner()
SETTINGS = ["--image-gc-high-threshold", "75", "--image-gc-low-threshold", "60"]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "kubelet").write_text('KUBELET_EXTRA_ARGS="--v=2"\n')
    return d


def _refused(root: Path, outside: Path, node_path: str) -> None:
    before, before_outside = whole_tree_digest(root), whole_tree_digest(outside)
    res = runner.invoke(app, ["apply", "--root", str(root), *SETTINGS])
    assert res.exit_code == 2, res.output
    assert node_path in res.output and str(root) in res.output
    assert whole_tree_digest(root) == before  # not even the lock file or a backup set
    assert whole_tree_digest(outside) == before_outside


def test_absolute_symlink_out_of_the_root(root: Path, outside: Path) -> None:
    build_kubeadm(root)
    target = root / "etc/default/kubelet"
    target.unlink()
    target.symlink_to(outside / "kubelet")
    # Reading re-roots the link: the plan sees no /etc/default/kubelet on the node.
    res = runner.invoke(app, ["apply", "--root", str(root), "--dry-run", "-o", "json", *SETTINGS])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    [edit] = [f for f in doc["files"] if f["path"] == "/etc/default/kubelet"]
    assert edit["change"] == "created"
    _refused(root, outside, "/etc/default/kubelet")


def test_relative_symlink_climbing_out(root: Path, outside: Path) -> None:
    build_kubeadm(root)
    target = root / "etc/default/kubelet"
    target.unlink()
    rel = os.path.relpath(outside / "kubelet", target.parent)
    assert rel.startswith("../../..")
    target.symlink_to(rel)
    _refused(root, outside, "/etc/default/kubelet")


def test_symlinked_directory_out_of_the_root(root: Path, outside: Path) -> None:
    build_kubeadm(root)
    (root / "etc/kubernetes").symlink_to(outside)  # the drop-in would land in `outside`
    _refused(root, outside, "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf")


def test_symlinked_directory_inside_the_root_is_written_through(root: Path) -> None:
    build_kubeadm(root)
    (root / "srv/k8s").mkdir(parents=True)
    (root / "etc/kubernetes").symlink_to("../srv/k8s")
    res = runner.invoke(app, ["apply", "--root", str(root), *SETTINGS])
    assert res.exit_code == 0, res.output
    assert (root / "srv/k8s/kubelet.conf.d/90-mlnode-images.conf").is_file()
    assert (root / "etc/kubernetes").is_symlink()
