"""Atomic writes, backup sets, restore and the apply lock (ops.fileio, ops.backups)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlnode.errors import ApplyError, LockHeld
from mlnode.node import host_path
from mlnode.ops.backups import (
    create_backup,
    latest_backup,
    list_backups,
    load_backup,
    restore_backup,
    update_backup,
)
from mlnode.ops.fileio import ApplyLock, atomic_write, file_sha256

from .treeutil import tree_digest


def test_host_path_stays_under_root(tmp_path: Path) -> None:
    assert host_path(tmp_path, "/etc/default/kubelet") == tmp_path / "etc/default/kubelet"
    with pytest.raises(ValueError):
        host_path(tmp_path, "/etc/../../x")
    with pytest.raises(ValueError):
        host_path(tmp_path, "etc/x")


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "etc" / "default" / "kubelet"
    p.parent.mkdir(parents=True)
    p.write_text("KUBELET_EXTRA_ARGS=\n")
    p.chmod(0o600)
    atomic_write(p, b"KUBELET_EXTRA_ARGS=--v=2\n")
    assert p.read_text() == "KUBELET_EXTRA_ARGS=--v=2\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(os.listdir(p.parent)) == ["kubelet"]


def test_atomic_write_new_file_gets_0644_and_parents(tmp_path: Path) -> None:
    p = tmp_path / "etc" / "kubernetes" / "kubelet.conf.d" / "90-mlnode-images.conf"
    old_umask = os.umask(0o077)
    try:
        atomic_write(p, b"x\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    atomic_write(tmp_path / "secret", b"y", mode=0o600)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_atomic_write_failure_leaves_original_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"original")

    def boom(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(p, b"new contents")
    assert p.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["f"]


def _populate(root: Path) -> None:
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/kubelet").write_text("KUBELET_EXTRA_ARGS=--v=2\n")
    (root / "etc/default/kubelet").chmod(0o640)
    (root / "var/lib/kubelet").mkdir(parents=True)
    (root / "var/lib/kubelet/config.yaml").write_text("kind: KubeletConfiguration\n")


def test_backup_and_restore_is_byte_for_byte(tmp_path: Path) -> None:
    _populate(tmp_path)
    before = tree_digest(tmp_path)
    paths = [
        "/etc/default/kubelet",
        "/var/lib/kubelet/config.yaml",
        "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf",
    ]
    backup = create_backup(tmp_path, paths)
    assert backup.status == "prepared"
    assert backup.created_dirs == ("/etc/kubernetes", "/etc/kubernetes/kubelet.conf.d")
    assert [e.existed for e in backup.entries] == [True, True, False]
    assert backup.entry("/etc/default/kubelet").mode == 0o640

    atomic_write(tmp_path / "etc/default/kubelet", b"KUBELET_EXTRA_ARGS=--config-dir=/x\n")
    (tmp_path / "etc/default/kubelet").chmod(0o644)
    atomic_write(tmp_path / "etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf", b"new\n")
    (tmp_path / "var/lib/kubelet/config.yaml").unlink()
    backup = update_backup(backup, status="applied", root=tmp_path)
    assert backup.entry("/var/lib/kubelet/config.yaml").sha256_after is None
    assert load_backup(tmp_path, backup.id).status == "applied"

    results = restore_backup(tmp_path, backup)
    assert {r.path: r.action for r in results} == {
        "/etc/default/kubelet": "restored",
        "/var/lib/kubelet/config.yaml": "restored",
        "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf": "removed",
    }
    assert tree_digest(tmp_path) == before
    # A second restore finds nothing to do.
    assert {r.action for r in restore_backup(tmp_path, backup)} == {"unchanged"}


def test_damaged_backup_changes_nothing(tmp_path: Path) -> None:
    _populate(tmp_path)
    backup = create_backup(tmp_path, ["/etc/default/kubelet", "/var/lib/kubelet/config.yaml"])
    atomic_write(tmp_path / "etc/default/kubelet", b"changed\n")
    backup.copy_path("/var/lib/kubelet/config.yaml").write_text("tampered\n")
    with pytest.raises(ApplyError, match="does not match"):
        restore_backup(tmp_path, backup)
    assert (tmp_path / "etc/default/kubelet").read_bytes() == b"changed\n"


def test_list_and_latest_backup(tmp_path: Path) -> None:
    _populate(tmp_path)
    a = create_backup(tmp_path, ["/etc/default/kubelet"])
    b = create_backup(tmp_path, ["/etc/default/kubelet"])
    assert [x.id for x in list_backups(tmp_path)] == sorted([a.id, b.id])
    with pytest.raises(ApplyError, match="no backup set"):
        latest_backup(tmp_path)
    update_backup(a, status="applied")
    assert latest_backup(tmp_path).id == a.id
    # A directory without a manifest (an interrupted backup) is ignored.
    (host_path(tmp_path, "/var/lib/mlnode/backups") / "20990101T000000.000000Z").mkdir()
    assert len(list_backups(tmp_path)) == 2
    with pytest.raises(ApplyError, match="no such backup"):
        load_backup(tmp_path, "nope")


def test_lock_is_exclusive_and_names_the_holder(tmp_path: Path) -> None:
    with ApplyLock(tmp_path) as lock:
        assert lock.held
        with pytest.raises(LockHeld, match=rf"pid {os.getpid()}"):
            ApplyLock(tmp_path).acquire()
    # Released: a new lock succeeds.
    with ApplyLock(tmp_path):
        pass


def test_lock_held_by_another_process_and_dropped_when_it_dies(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from mlnode.ops.fileio import ApplyLock
        lock = ApplyLock(Path({str(tmp_path)!r}))
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=rf"pid {proc.pid}\)"):
            ApplyLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with ApplyLock(tmp_path):
        pass


def test_file_sha256_missing(tmp_path: Path) -> None:
    assert file_sha256(tmp_path / "nope") is None
