"""Durable file changes on a node: atomic writes and the apply lock.

Every node path (``/etc/default/kubelet``) becomes a path on this machine through
:func:`mlnode.node.host_path`, which refuses anything that would leave the root (``/`` on a
real node, a temporary tree in tests, a mounted image when preparing one).

* :func:`atomic_write` writes a temporary file in the same directory, fsyncs it, renames it
  over the target and fsyncs the directory: a reader (or a crash) sees the old file or the
  new one, never a mix. An existing file keeps its mode and owner. Given ``root`` it never
  follows a symlink out of it (see there).
* :class:`ApplyLock` is ``<root>/run/mlnode/apply.lock``, held with ``flock`` for the whole
  apply or rollback; a second one fails at once with :class:`~mlnode.errors.LockHeld`
  naming the holder's pid. The kernel drops the lock when the holder dies.

Backup sets are :mod:`mlnode.ops.backups`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from mlnode.errors import ApplyError, LockHeld
from mlnode.node import RootEscape, host_path

__all__ = [
    "DEFAULT_NEW_FILE_MODE",
    "LOCK_PATH",
    "TMP_MARK",
    "ApplyLock",
    "atomic_write",
    "file_sha256",
    "fsync_dir",
    "missing_parents",
    "node_lock",
    "sha256_bytes",
]

LOCK_PATH = "/run/mlnode/apply.lock"
DEFAULT_NEW_FILE_MODE = 0o644
_DIR_MODE = 0o755
TMP_MARK = ".mlnode-tmp-"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str | None:
    """The file's sha256, or None when it does not exist."""
    try:
        return sha256_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


def missing_parents(path: Path, stop: Path) -> list[Path]:
    """The directories between ``stop`` and ``path`` that do not exist yet, outermost first."""
    out: list[Path] = []
    parent = path.parent
    while parent != stop and stop in parent.parents and not parent.exists():
        out.append(parent)
        parent = parent.parent
    return list(reversed(out))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems refuse fsync on directories
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _check_inside(root: Path, directory: Path, path: Path) -> None:
    real_root = os.path.realpath(root)
    real = os.path.realpath(directory)
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise RootEscape("/" + os.path.relpath(path, root), root, f"{directory} resolves to {real}")


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
    root: Path | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    The mode and owner are, in order of preference: the ``mode``/``owner`` given, those of
    the file being replaced, and for a new file 0644 and the current user. Missing parent
    directories are created with 0755.

    Without ``root`` a symlink is followed (its target is replaced). With ``root`` (a node
    file; ``path`` comes from :func:`mlnode.node.host_path`) nothing outside ``root`` is
    touched: the parent directory, once created, must resolve inside ``root`` (else
    :class:`~mlnode.node.RootEscape`), and a symlink in the final component — one that
    appeared after ``path`` was resolved — is replaced by the file, never followed.
    """
    follow = root is None and path.is_symlink()
    target = Path(os.path.realpath(path)) if follow else path
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    if root is not None:
        _check_inside(root, directory, path)
    try:
        st: os.stat_result | None = os.stat(target, follow_symlinks=root is None)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        st = None  # a symlink in our way: the new file gets the defaults, not its mode
    if mode is None:
        mode = stat.S_IMODE(st.st_mode) if st is not None else DEFAULT_NEW_FILE_MODE
    if owner is None and st is not None:
        owner = (st.st_uid, st.st_gid)
    tmp = directory / f".{target.name}{TMP_MARK}{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            if owner is not None:
                own = os.fstat(fd)
                if (own.st_uid, own.st_gid) != owner:
                    try:
                        os.fchown(fd, owner[0], owner[1])
                    except PermissionError as e:
                        raise ApplyError(
                            f"{target}: cannot keep owner {owner[0]}:{owner[1]} "
                            "(run as root, or as the file's owner)"
                        ) from e
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


# --------------------------------------------------------------------------- lock


class ApplyLock:
    """``<root>/run/mlnode/apply.lock`` held with a non-blocking exclusive ``flock``."""

    def __init__(self, root: Path) -> None:
        self.path = host_path(root, LOCK_PATH)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(
                f"{self.path}: another mlnode apply or rollback holds the lock (pid {holder})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> ApplyLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@contextlib.contextmanager
def node_lock(root: Path) -> Iterator[ApplyLock]:
    """``with node_lock(root):`` — the apply lock for the duration of the block."""
    lock = ApplyLock(root)
    with lock:
        yield lock
