"""Nothing under ``--root`` leads mlnode outside the root, whatever the tree's symlinks say.

Each escape of issue 8 — ``T/etc/default/kubelet`` a symlink to a file outside T (absolute
and relative ``../../..``), ``T/etc/containerd`` a symlinked directory pointing outside, a
unit with ``EnvironmentFile=/../../etc/kubelet.env`` — against each command:

* ``lint --root`` reads leniently: reads clamp inside the root (chroot semantics), so the
  host's file is never read: its content never appears in the output;
* ``apply --root`` and ``apply --root --dry-run`` refuse: exit 2, one stderr line naming
  the node path and the root, and not one byte changed inside the root (not even the lock
  file or a backup set) or outside it;
* ``rollback --root`` after a successful apply whose files, backup copy or manifest were
  then tampered into an escape: the same refusal, every byte as it was.

``render --merge`` (no ``--root``) is in tests/cli/test_render_merge_escape.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app

from .layouts import DEFAULT_KUBELET, KUBEADM_DROPIN, build_kubeadm
from .treeutil import whole_tree_digest

runner = CliRunner()
HOST = "HOSTMARKER"
SETTINGS = [
    "--image-gc-high-threshold",
    "75",
    "--image-gc-low-threshold",
    "60",
    "--image-pull-progress-deadline",
    "30m",
]
VERSIONS = ["--kubernetes-version", "1.30", "--runtime", "containerd@1.7.13"]
DROPIN = "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files of "the host", outside the root; each carries a marker."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "kubelet").write_text(f'# {HOST}\nKUBELET_EXTRA_ARGS="--image-gc-high-threshold=93"\n')
    (d / "config.toml").write_text(f"# {HOST}\nversion = 2\n")
    return d


def _abs_link(root: Path, outside: Path) -> str:
    link = root / "etc/default/kubelet"
    link.unlink()
    link.symlink_to(outside / "kubelet")
    return "/etc/default/kubelet"


def _rel_link(root: Path, outside: Path) -> str:
    link = root / "etc/default/kubelet"
    link.unlink()
    rel = os.path.relpath(outside / "kubelet", link.parent)
    assert rel.startswith("../../..")
    link.symlink_to(rel)
    return "/etc/default/kubelet"


def _dir_link(root: Path, outside: Path) -> str:
    shutil.rmtree(root / "etc/containerd")
    (root / "etc/containerd").symlink_to(outside)
    return "/etc/containerd/config.toml"


def _dotdot_envfile(root: Path, outside: Path) -> str:
    (root / DROPIN).write_text(KUBEADM_DROPIN.format(extra="/../../etc/kubelet.env"))
    # What the node reads there (/etc/kubelet.env): a flag apply has to take out.
    (root / "etc/kubelet.env").write_text('KUBELET_EXTRA_ARGS="--image-gc-high-threshold=90"\n')
    return "/../../etc/kubelet.env"


ESCAPES: dict[str, Callable[[Path, Path], str]] = {
    "absolute-link": _abs_link,
    "relative-link": _rel_link,
    "symlinked-directory": _dir_link,
    "dotdot-environmentfile": _dotdot_envfile,
}


def _tree(root: Path, outside: Path, escape: str) -> str:
    build_kubeadm(root)
    return ESCAPES[escape](root, outside)


@dataclass(frozen=True)
class Digests:
    root: dict[str, str]
    outside: dict[str, str]

    @classmethod
    def of(cls, root: Path, outside: Path) -> Digests:
        return cls(whole_tree_digest(root), whole_tree_digest(outside))


def _assert_refused(res: object, root: Path, node_path: str) -> None:
    out, err, code = res.stdout, res.stderr, res.exit_code  # type: ignore[attr-defined]
    assert code == 2, out + err
    assert "Traceback" not in out + err and HOST not in out + err
    [line] = err.splitlines()
    assert line.startswith("mlnode: error: "), line
    assert repr(node_path) in line and str(root) in line, line
    assert out == ""


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_lint_reads_clamp_inside_the_root(root: Path, outside: Path, escape: str) -> None:
    _tree(root, outside, escape)
    before = Digests.of(root, outside)
    for output in (["-o", "json"], []):
        res = runner.invoke(app, ["lint", "--root", str(root), *VERSIONS, *output])
        assert res.exit_code in (0, 1), res.output
        assert "Traceback" not in res.output
        assert HOST not in res.stdout + res.stderr  # the host's file is never read
        assert str(outside) not in res.stdout.replace(str(root), "<root>")
        if output:
            report = json.loads(res.stdout)
            assert all(f.startswith(str(root) + "/") for f in report["files"]), report["files"]
            gc_high = report["effective"].get("image_gc_high_threshold_percent", {})
            assert gc_high.get("value") != 93  # the host file's value
            if escape == "dotdot-environmentfile":  # /../../etc/kubelet.env is <root>/etc/...
                assert str(root / "etc/kubelet.env") in report["files"]
    assert Digests.of(root, outside) == before


def test_lint_reads_the_node_file_a_link_means(root: Path, outside: Path) -> None:
    """The absolute link means ``<root>/<its target>`` on the node: that file is read."""
    _abs_link(build_kubeadm(root), outside)
    inside = root / str(outside / "kubelet").lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text('KUBELET_EXTRA_ARGS="--image-gc-high-threshold=91"\n')
    res = runner.invoke(app, ["lint", "--root", str(root), *VERSIONS, "-o", "json"])
    report = json.loads(res.stdout)
    assert str(inside) in report["files"]
    assert report["effective"]["image_gc_high_threshold_percent"]["value"] == 91


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "apply"])
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_apply_refuses(root: Path, outside: Path, escape: str, dry_run: bool) -> None:
    node_path = _tree(root, outside, escape)
    before = Digests.of(root, outside)
    extra = ["--dry-run"] if dry_run else ["--no-restart"]
    for output in (["-o", "json"], []):
        res = runner.invoke(app, ["apply", "--root", str(root), *extra, *SETTINGS, *output])
        _assert_refused(res, root, node_path)
        assert Digests.of(root, outside) == before  # not even the lock file or a backup set


def test_symlinked_directory_inside_the_root_is_written_through(root: Path) -> None:
    build_kubeadm(root)
    (root / "srv/k8s").mkdir(parents=True)
    (root / "etc/kubernetes").symlink_to("../srv/k8s")
    res = runner.invoke(app, ["apply", "--root", str(root), "--no-restart", *SETTINGS])
    assert res.exit_code == 0, res.output
    assert (root / "srv/k8s/kubelet.conf.d/90-mlnode-images.conf").is_file()
    assert (root / "etc/kubernetes").is_symlink()


# --------------------------------------------------------------------------- rollback


def _backup_dir(root: Path) -> Path:
    [d] = (root / "var/lib/mlnode/backups").iterdir()
    return d


def _tamper_target_abs(root: Path, outside: Path) -> str:
    return _abs_link(root, outside)


def _tamper_target_rel(root: Path, outside: Path) -> str:
    return _rel_link(root, outside)


def _tamper_dir(root: Path, outside: Path) -> str:
    return _dir_link(root, outside)


def _tamper_backup_copy(root: Path, outside: Path) -> str:
    """The backup copy becomes a link to a host file with the very bytes recorded, so only
    the link (not the sha256) gives it away."""
    copy = _backup_dir(root) / "files/etc/default/kubelet"
    assert copy.read_text() == DEFAULT_KUBELET
    (outside / "kubelet").write_text(DEFAULT_KUBELET)
    copy.unlink()
    copy.symlink_to(outside / "kubelet")
    return "/etc/default/kubelet"


def _tamper_manifest(root: Path, outside: Path) -> str:
    """The manifest names a file that "did not exist before" through ``..``: a restore that
    followed it would delete a file outside the root."""
    (outside / "victim").write_text(HOST)
    manifest = _backup_dir(root) / "manifest.json"
    doc = json.loads(manifest.read_text())
    node_path = "/.." * (len(root.parts) + 2) + str(outside / "victim")
    doc["files"].append({**doc["files"][0], "path": node_path, "existed": False})
    manifest.write_text(json.dumps(doc))
    return node_path


TAMPERS: dict[str, Callable[[Path, Path], str]] = {
    "target-now-absolute-link": _tamper_target_abs,
    "target-now-relative-link": _tamper_target_rel,
    "directory-now-link-out": _tamper_dir,
    "backup-copy-is-link-out": _tamper_backup_copy,
    "manifest-path-climbs-out": _tamper_manifest,
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_rollback_refuses(root: Path, outside: Path, tamper: str) -> None:
    build_kubeadm(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "--no-restart", *SETTINGS])
    assert res.exit_code == 0, res.output
    node_path = TAMPERS[tamper](root, outside)
    before = Digests.of(root, outside)
    res = runner.invoke(app, ["rollback", "--root", str(root), "--no-restart"])
    # A tampered backup copy is refused under the backup set's copy tree (files/ in it).
    refused_root = _backup_dir(root) / "files" if tamper == "backup-copy-is-link-out" else root
    _assert_refused(res, refused_root, node_path)
    assert Digests.of(root, outside) == before
    listed = runner.invoke(app, ["rollback", "--root", str(root), "--list", "-o", "json"])
    assert [b["status"] for b in json.loads(listed.stdout)["backups"]] == ["written"]
