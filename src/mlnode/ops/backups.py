"""Backup sets: what every file an apply touches looked like before, and putting it back.

:func:`create_backup` copies every file an apply may touch into
``<root>/var/lib/mlnode/backups/<UTC timestamp>/`` together with a ``manifest.json``
(schema below) *before* anything is written; :func:`restore_backup` puts back each file
byte for byte with its mode and owner, and removes files (and directories) that did not
exist before. Node paths become paths under the root only through
:func:`mlnode.node.host_path`, so a backup or a restore never leaves the root.

Manifest (``manifest.json``, version 1)::

    {"version": 1, "id": "20250301T101500.123456Z", "created_at": "2025-03-01T10:15:00Z",
     "command": "apply", "status": "prepared" | "applied" | "written" | "restored"
               | "rolled-back",
     "created_dirs": ["/etc/kubernetes/kubelet.conf.d"],
     "files": [{"path": "/etc/default/kubelet", "existed": true, "sha256": "…",
                "size": 123, "mode": "0644", "uid": 0, "gid": 0, "sha256_after": "…"|null}]}
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlnode.errors import ApplyError
from mlnode.node import host_path, node_path_of
from mlnode.ops.fileio import (
    TMP_MARK,
    atomic_write,
    file_sha256,
    fsync_dir,
    missing_parents,
    sha256_bytes,
)

__all__ = [
    "BACKUPS_DIR",
    "BackupEntry",
    "BackupSet",
    "RestoredFile",
    "create_backup",
    "latest_backup",
    "list_backups",
    "load_backup",
    "restore_backup",
    "update_backup",
]

BACKUPS_DIR = "/var/lib/mlnode/backups"
_MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class BackupEntry:
    """One file's state before an apply; ``existed`` False means restore deletes it."""

    path: str  # node path
    existed: bool
    sha256: str | None
    size: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    sha256_after: str | None = None  # filled in once the apply wrote the file

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "existed": self.existed,
            "sha256": self.sha256,
            "size": self.size,
            "mode": None if self.mode is None else f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "sha256_after": self.sha256_after,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BackupEntry:
        mode = d.get("mode")
        return cls(
            path=str(d["path"]),
            existed=bool(d["existed"]),
            sha256=d.get("sha256"),
            size=d.get("size"),
            mode=int(mode, 8) if isinstance(mode, str) else None,
            uid=d.get("uid"),
            gid=d.get("gid"),
            sha256_after=d.get("sha256_after"),
        )


@dataclass(frozen=True)
class BackupSet:
    """A backup set on disk: ``directory`` holds ``manifest.json`` and ``files/<node path>``."""

    id: str
    directory: Path
    created_at: str
    command: str
    status: str
    entries: tuple[BackupEntry, ...]
    created_dirs: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def entry(self, node_path: str) -> BackupEntry:
        for e in self.entries:
            if e.path == node_path:
                return e
        raise KeyError(node_path)

    def copy_path(self, node_path: str) -> Path:
        return host_path(self.directory / "files", node_path)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _MANIFEST_VERSION,
            "id": self.id,
            "created_at": self.created_at,
            "command": self.command,
            "status": self.status,
            "created_dirs": list(self.created_dirs),
            "files": [e.to_json() for e in self.entries],
            **({"extra": self.extra} if self.extra else {}),
        }


def _write_manifest(backup: BackupSet) -> None:
    text = json.dumps(backup.to_json(), indent=2, sort_keys=True) + "\n"
    atomic_write(backup.directory / _MANIFEST, text.encode(), mode=0o600)


def _new_backup_id(base: Path, now: _dt.datetime) -> str:
    stem = now.astimezone(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    candidate, n = stem, 0
    while (base / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def create_backup(
    root: Path,
    node_paths: Iterable[str],
    *,
    command: str = "apply",
    extra: dict[str, Any] | None = None,
    now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> BackupSet:
    """Copy the current state of ``node_paths`` into a new backup set and return it.

    The manifest is written last (atomically), so a set without one is incomplete and
    ignored by :func:`list_backups`.
    """
    base = host_path(root, BACKUPS_DIR)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = now()
    backup_id = _new_backup_id(base, stamp)
    directory = base / backup_id
    directory.mkdir(mode=0o700)
    entries: list[BackupEntry] = []
    created: list[str] = []
    for node_path in dict.fromkeys(node_paths):  # keep order, drop duplicates
        p = host_path(root, node_path)
        for d in missing_parents(p, root):
            rel = node_path_of(root, d)
            if rel not in created:
                created.append(rel)
        try:
            st = os.stat(p)
            data = p.read_bytes()
        except FileNotFoundError:
            entries.append(BackupEntry(node_path, existed=False, sha256=None))
            continue
        except OSError as e:
            raise ApplyError(f"{p}: cannot back up: {e.strerror or e}") from e
        copy = host_path(directory / "files", node_path)
        atomic_write(copy, data, mode=0o600, root=root)
        if file_sha256(copy) != sha256_bytes(data):
            raise ApplyError(f"{copy}: backup copy does not match {p}")
        entries.append(
            BackupEntry(
                node_path,
                existed=True,
                sha256=sha256_bytes(data),
                size=len(data),
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
            )
        )
    backup = BackupSet(
        id=backup_id,
        directory=directory,
        created_at=stamp.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=command,
        status="prepared",
        entries=tuple(entries),
        created_dirs=tuple(created),
        extra=dict(extra or {}),
    )
    _write_manifest(backup)
    return backup


def update_backup(
    backup: BackupSet, *, status: str | None = None, root: Path | None = None
) -> BackupSet:
    """Record a new status and, when ``root`` is given, each file's sha256 after the apply."""
    entries = backup.entries
    if root is not None:
        entries = tuple(
            replace(e, sha256_after=file_sha256(host_path(root, e.path))) for e in entries
        )
    updated = replace(backup, status=status or backup.status, entries=entries)
    _write_manifest(updated)
    return updated


def load_backup(root: Path, backup_id: str) -> BackupSet:
    """The backup set ``backup_id``; InputError-like ApplyError when absent or unreadable."""
    if "/" in backup_id or backup_id in ("", ".", ".."):
        raise ApplyError(f"{backup_id!r} is not a backup id")
    directory = host_path(root, BACKUPS_DIR) / backup_id
    manifest = directory / _MANIFEST
    try:
        d = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise ApplyError(f"{manifest}: no such backup set") from None
    except (OSError, ValueError) as e:
        raise ApplyError(f"{manifest}: unreadable manifest: {e}") from e
    if d.get("version") != _MANIFEST_VERSION:
        raise ApplyError(f"{manifest}: manifest version {d.get('version')!r} is not 1")
    return BackupSet(
        id=str(d["id"]),
        directory=directory,
        created_at=str(d.get("created_at", "")),
        command=str(d.get("command", "apply")),
        status=str(d.get("status", "prepared")),
        entries=tuple(BackupEntry.from_json(e) for e in d.get("files", [])),
        created_dirs=tuple(d.get("created_dirs", [])),
        extra=dict(d.get("extra", {})),
    )


def list_backups(root: Path) -> list[BackupSet]:
    """Every complete backup set under ``root``, oldest first."""
    base = host_path(root, BACKUPS_DIR)
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir(), key=lambda p: p.name):
        if (d / _MANIFEST).is_file():
            with contextlib.suppress(ApplyError, KeyError):
                out.append(load_backup(root, d.name))
    return out


def latest_backup(root: Path, *, statuses: Sequence[str] = ("applied", "written")) -> BackupSet:
    """The newest backup set whose status is one of ``statuses``."""
    for backup in reversed(list_backups(root)):
        if backup.status in statuses:
            return backup
    raise ApplyError(
        f"no backup set to roll back to under {host_path(root, BACKUPS_DIR)} "
        f"(looked for status {' or '.join(statuses)})"
    )


@dataclass(frozen=True)
class RestoredFile:
    """What :func:`restore_backup` did to one file."""

    path: str
    action: str  # "restored" | "removed" | "unchanged"
    sha256_before: str | None  # before the restore
    sha256_after: str | None


def _remove_stale_temps(directory: Path) -> None:
    """Temporary files an interrupted atomic_write left behind (the target is intact)."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        if p.name.startswith(".") and TMP_MARK in p.name:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def restore_backup(
    root: Path,
    backup: BackupSet,
    *,
    write: Callable[..., None] = atomic_write,
) -> list[RestoredFile]:
    """Put every file of ``backup`` back as it was, byte for byte, mode and owner included.

    Files that did not exist before are removed, then the directories the apply created,
    if empty. Every copy is checked against its recorded sha256 first, so a damaged backup
    set changes nothing; so is every target resolved first, so a path that now leads out of
    the root (:class:`~mlnode.node.RootEscape`) changes nothing either.
    """
    targets = {e.path: host_path(root, e.path) for e in backup.entries}
    created_dirs = [host_path(root, d) for d in sorted(backup.created_dirs, key=len, reverse=True)]
    payloads: dict[str, bytes] = {}
    for e in backup.entries:
        if not e.existed:
            continue
        copy = backup.copy_path(e.path)
        try:
            data = copy.read_bytes()
        except OSError as err:
            raise ApplyError(f"{copy}: backup copy unreadable: {err.strerror or err}") from err
        if sha256_bytes(data) != e.sha256:
            raise ApplyError(f"{copy}: backup copy does not match its recorded sha256")
        payloads[e.path] = data

    results: list[RestoredFile] = []
    for e in reversed(backup.entries):
        p = targets[e.path]
        before = file_sha256(p)
        if e.existed:
            data = payloads[e.path]
            st = None
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(p)
            same = (
                before == e.sha256
                and st is not None
                and stat.S_IMODE(st.st_mode) == e.mode
                and (st.st_uid, st.st_gid) == (e.uid, e.gid)
            )
            if not same:
                owner = (e.uid, e.gid) if e.uid is not None and e.gid is not None else None
                write(p, data, mode=e.mode, owner=owner, root=root)
            results.append(
                RestoredFile(e.path, "unchanged" if same else "restored", before, e.sha256)
            )
        else:
            if before is not None or p.is_symlink():
                p.unlink()
                fsync_dir(p.parent)
                results.append(RestoredFile(e.path, "removed", before, None))
            else:
                results.append(RestoredFile(e.path, "unchanged", None, None))
        _remove_stale_temps(p.parent)
    for hp in created_dirs:
        with contextlib.suppress(FileNotFoundError, OSError):
            _remove_stale_temps(hp)
            hp.rmdir()  # only when empty
    results.reverse()
    return results
