"""`render --merge` never edits through a symlink.

render has no ``--root``: ``--merge FILE`` edits the file named. A FILE that is a symlink,
or is reached through a symlinked directory, could lead anywhere — out of a mounted node
tree — and an atomic rename onto it would silently replace the link by a regular file. So
it is refused: exit 2, one stderr line naming the file and where it leads, no byte changed
in the tree or outside it (no ``.bak`` either). Naming the real file works.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apply.layouts import CONTAINERD_CONFIG_V2, DEFAULT_KUBELET
from apply.treeutil import whole_tree_digest
from typer.testing import CliRunner

from mlnode.cli.app import app

runner = CliRunner()
HOST = "HOSTMARKER"
LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
VERSIONS = ["--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text(CONTAINERD_CONFIG_V2)
    outside.mkdir()
    (outside / "kubelet").write_text(f"# {HOST}\n{DEFAULT_KUBELET}")
    (outside / "config.toml").write_text(f"# {HOST}\n{CONTAINERD_CONFIG_V2}")
    return root, outside


def _abs(root: Path, outside: Path) -> Path:
    (root / "etc/default/kubelet").symlink_to(outside / "kubelet")
    return root / "etc/default/kubelet"


def _rel(root: Path, outside: Path) -> Path:
    link = root / "etc/default/kubelet"
    link.symlink_to(os.path.relpath(outside / "kubelet", link.parent))
    return link


def _dir(root: Path, outside: Path) -> Path:
    shutil.rmtree(root / "etc/containerd")
    (root / "etc/containerd").symlink_to(outside)
    return root / "etc/containerd/config.toml"


def _inside(root: Path, outside: Path) -> Path:
    """Even a link to a file inside the tree: the named file is the link, not a file."""
    (root / "etc/default/kubelet.real").write_text(DEFAULT_KUBELET)
    (root / "etc/default/kubelet").symlink_to("kubelet.real")
    return root / "etc/default/kubelet"


LINKS: dict[str, Callable[[Path, Path], Path]] = {
    "absolute-link-out": _abs,
    "relative-link-out": _rel,
    "symlinked-directory-out": _dir,
    "link-inside-the-tree": _inside,
}


def _merge(path: Path, *extra: str) -> object:
    return runner.invoke(
        app, ["render", "--merge", str(path), "--from-kubelet-args", LINE, *VERSIONS, *extra]
    )


@pytest.mark.parametrize("output", [[], ["-o", "json"]], ids=["human", "json"])
@pytest.mark.parametrize("link", sorted(LINKS))
def test_merge_through_a_symlink_is_refused(
    trees: tuple[Path, Path], link: str, output: list[str]
) -> None:
    root, outside = trees
    target = LINKS[link](root, outside)
    before = (whole_tree_digest(root), whole_tree_digest(outside))
    res = _merge(target, *output)
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    out, err = res.stdout, res.stderr  # type: ignore[attr-defined]
    assert out == "" and "Traceback" not in err and HOST not in err
    [line] = err.splitlines()
    real = os.path.realpath(target)
    assert line.startswith(f"mlnode: error: {target}: resolves through a symlink to {real}")
    assert (whole_tree_digest(root), whole_tree_digest(outside)) == before
    assert (root / "etc/default/kubelet").is_symlink() or link == "symlinked-directory-out"


def test_naming_the_real_file_merges_it(trees: tuple[Path, Path]) -> None:
    root, outside = trees
    link = _inside(root, outside)
    real = Path(os.path.realpath(link))
    res = _merge(real)
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "image-pull-progress-deadline" not in real.read_text()
    assert link.is_symlink() and os.readlink(link) == "kubelet.real"
