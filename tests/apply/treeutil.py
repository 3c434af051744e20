"""Hashing a whole root tree, to prove what changed and what did not."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# mlnode's own state under the root: the lock and the backup sets.
MLNODE_STATE = ("run/mlnode", "var/lib/mlnode")


def tree_digest(root: Path, *, exclude: tuple[str, ...] = MLNODE_STATE) -> dict[str, str]:
    """Every file, symlink and directory under ``root`` -> sha256 of content and mode."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not any((f"{rel_dir}/{d}" if rel_dir != "." else d).startswith(x) for x in exclude)
        )
        for d in dirnames:
            rel = f"{rel_dir}/{d}" if rel_dir != "." else d
            out[rel + "/"] = f"dir {stat.S_IMODE(os.lstat(Path(dirpath) / d).st_mode):o}"
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link " + os.readlink(p)
            else:
                h = hashlib.sha256(p.read_bytes()).hexdigest()
                out[rel] = f"{h} {stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid}"
    # Directories that exist only to hold mlnode's state (run/, var/lib/) do not count.
    ancestors = {"/".join(x.split("/")[:i]) for x in exclude for i in range(1, x.count("/") + 1)}
    for a in sorted(ancestors, key=len, reverse=True):
        if not any(k.startswith(a + "/") and k != a + "/" for k in out):
            out.pop(a + "/", None)
    return out


def whole_tree_digest(root: Path) -> dict[str, str]:
    """Like tree_digest, mlnode's own state included (for --dry-run: not one byte)."""
    return tree_digest(root, exclude=())
