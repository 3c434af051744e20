"""The one place a node path (``/etc/default/kubelet``) becomes a path on this machine.

mlnode reads and writes a node's files under a *root*: ``/`` on the node itself, a mounted
disk image or a temporary tree otherwise. A node path names a file *as the node sees it*, so
symlinks inside the tree are resolved as if the root were ``/`` — the semantics of
``openat2(RESOLVE_IN_ROOT)`` and of ``chroot``: an absolute symlink target starts again at
the root, and ``..`` never climbs above it (at the root it stays at the root).

Two entry points share one resolver (:func:`_resolve`):

* :func:`read_path` — for reading. Resolution is *clamped* in the root exactly as above, so
  a link ``etc/default/kubelet -> /etc/passwd`` reads ``<root>/etc/passwd``, never the
  host's, and ``../../..`` ends at the root. Reading never leaves the root.
* :func:`host_path` — for writing (and for anything that must be unambiguous). It refuses,
  with :class:`RootEscape` (an :class:`~mlnode.errors.InputError`, exit 2), every path whose
  meaning would differ between the node and this machine: a ``..`` that would climb above
  the root (in the node path or in a relative symlink target), and an absolute symlink
  target when the root is not this machine's ``/`` (on the host it points outside the
  root). When the root is ``/`` both functions agree. A writer that uses it never follows
  a symlink out of the root: the path returned has no symlink left in it (each existing
  component was checked with ``lstat``), so the write lands on that path itself.

A relative node path is always refused: node paths are absolute.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlnode.errors import InputError

__all__ = ["RootEscape", "host_path", "node_path_of", "read_path", "read_text"]

# Linux gives up after 40 symlinks in one lookup (ELOOP); so does mlnode.
_MAX_SYMLINKS = 40


class RootEscape(InputError, ValueError):
    """A node path that would leave the root (or is not absolute); nothing is written.

    Also a :class:`ValueError`: a malformed node path is a bad value as much as a bad input.
    """

    def __init__(self, node_path: str, root: Path, why: str) -> None:
        self.node_path = node_path
        self.root = root
        super().__init__(f"node path {node_path!r} under root {root}: {why}", path=root)


def _is_host_root(root: Path) -> bool:
    return os.path.realpath(root) == "/"


def _resolve(root: Path, node_path: str, *, strict: bool) -> Path:
    if not node_path.startswith("/"):
        raise RootEscape(node_path, root, "not an absolute node path")
    todo = list(reversed(node_path.split("/")))
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            elif strict:
                raise RootEscape(node_path, root, "'..' climbs above the root")
            continue
        candidate = root.joinpath(*done, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:  # missing (or unreadable): the rest of the path is taken as written
            is_link = False
        if not is_link:
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise InputError(f"too many levels of symbolic links in {node_path}", path=candidate)
        target = os.readlink(candidate)
        if target.startswith("/"):
            if strict and not _is_host_root(root):
                raise RootEscape(
                    node_path,
                    root,
                    f"{candidate} is a symlink to {target}, which on this machine is "
                    "outside the root",
                )
            done = []
        todo.extend(reversed(target.split("/")))
    return root.joinpath(*done) if done else root


def read_path(root: Path, node_path: str) -> Path:
    """Where to read ``node_path``: symlinks resolved inside ``root`` (chroot semantics)."""
    return _resolve(root, node_path, strict=False)


def host_path(root: Path, node_path: str) -> Path:
    """Where to write ``node_path``; :class:`RootEscape` when that would leave ``root``."""
    return _resolve(root, node_path, strict=True)


def node_path_of(root: Path, path: Path) -> str:
    """The node path of ``path``, a path under ``root`` (the inverse of :func:`read_path`)."""
    return "/" + path.relative_to(root).as_posix() if path != root else "/"


def read_text(root: Path, node_path: str, *, strict: bool) -> str | None:
    """The text of ``node_path`` (None when it does not exist).

    ``strict``: an unreadable file or a directory raises :class:`InputError`; otherwise it
    reads as None too (lenient readers note it themselves).
    """
    p = read_path(root, node_path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        if strict:
            raise InputError("is a directory, expected a file", path=p) from None
        return None
    except (OSError, UnicodeDecodeError) as e:
        if strict:
            raise InputError(f"cannot read: {e}", path=p) from e
        return None
