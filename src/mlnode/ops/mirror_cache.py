"""The node mirror's cache as ops sees it: where it is, what it holds, what may go.

The mirror (:mod:`mlnode.mirror`) writes a :class:`~mlnode.blobcache.BlobCache`; ops
never imports the mirror, it reads the cache directory. A cache directory that does not
exist means "no mirror on this node", never an error. Freeing the cache helps the image
filesystem only when both are on the same filesystem, so :func:`cache_for_image_fs`
gives GC and the free-space check the cache only then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnode.blobcache import BlobCache, CacheEntry
from mlnode.errors import InputError

__all__ = [
    "MirrorCacheUsage",
    "cache_for_image_fs",
    "measure_cache",
    "open_mirror_cache",
    "read_entries",
    "reclaimable_bytes",
    "same_filesystem",
]


def open_mirror_cache(directory: Path | None) -> BlobCache | None:
    """The cache at ``directory``, or None when there is none (no mirror here)."""
    if directory is None or not directory.is_dir():
        return None
    return BlobCache(directory)


def read_entries(cache: BlobCache) -> list[CacheEntry]:
    """Every blob of the cache; an unreadable directory is one InputError naming it."""
    try:
        return cache.entries()
    except OSError as e:
        raise InputError(
            f"cannot read the mirror cache: {e.strerror or e}", path=cache.directory
        ) from e


def _device(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return os.stat(probe).st_dev
    except OSError:
        return None


def same_filesystem(a: Path, b: Path) -> bool | None:
    """Whether ``a`` and ``b`` (or their nearest existing parents) share a filesystem;
    None when either cannot be told."""
    da, db = _device(a), _device(b)
    if da is None or db is None:
        return None
    return da == db


def cache_for_image_fs(directory: Path | None, image_fs: Path | None) -> BlobCache | None:
    """The cache, when it exists and freeing it frees the image filesystem (same
    filesystem, or ``image_fs`` unknown)."""
    cache = open_mirror_cache(directory)
    if cache is None or image_fs is None:
        return cache
    return cache if same_filesystem(cache.directory, image_fs) is not False else None


def _reclaimable(entry: CacheEntry, in_flight: frozenset[str]) -> bool:
    return entry.complete and entry.digest not in in_flight


def reclaimable_bytes(cache: BlobCache | None, in_flight: frozenset[str] = frozenset()) -> int:
    """Disk bytes GC may free from the cache now: complete blobs not being ingested."""
    if cache is None:
        return 0
    return sum(e.disk_bytes for e in read_entries(cache) if _reclaimable(e, in_flight))


@dataclass(frozen=True)
class MirrorCacheUsage:
    """What the mirror's cache holds on disk (``mlnode images``)."""

    directory: Path
    present: bool
    on_image_filesystem: bool | None = None
    complete_blobs: int = 0
    complete_size_bytes: int = 0
    complete_disk_bytes: int = 0
    partial_blobs: int = 0
    partial_size_bytes: int = 0
    partial_present_bytes: int = 0
    partial_disk_bytes: int = 0
    reclaimable_bytes: int = 0

    @property
    def blobs(self) -> int:
        return self.complete_blobs + self.partial_blobs

    @property
    def disk_bytes(self) -> int:
        return self.complete_disk_bytes + self.partial_disk_bytes

    def to_json(self) -> dict[str, Any]:
        """The ``mirror_cache`` object of ``mlnode.images/v1`` (README, docs/runtime.md)."""
        return {
            "dir": str(self.directory),
            "present": self.present,
            "on_image_filesystem": self.on_image_filesystem,
            "blobs": self.blobs,
            "disk_bytes": self.disk_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "complete": {
                "blobs": self.complete_blobs,
                "size_bytes": self.complete_size_bytes,
                "disk_bytes": self.complete_disk_bytes,
            },
            "partial": {
                "blobs": self.partial_blobs,
                "size_bytes": self.partial_size_bytes,
                "present_bytes": self.partial_present_bytes,
                "disk_bytes": self.partial_disk_bytes,
            },
        }


def measure_cache(
    directory: Path,
    *,
    image_fs: Path | None = None,
    in_flight: frozenset[str] = frozenset(),
) -> MirrorCacheUsage:
    """Count the cache at ``directory``: complete vs partial blobs and their disk bytes."""
    cache = open_mirror_cache(directory)
    if cache is None:
        return MirrorCacheUsage(directory=directory, present=False)
    entries = read_entries(cache)
    complete = [e for e in entries if e.complete]
    partial = [e for e in entries if not e.complete]
    return MirrorCacheUsage(
        directory=directory,
        present=True,
        on_image_filesystem=same_filesystem(directory, image_fs) if image_fs else None,
        complete_blobs=len(complete),
        complete_size_bytes=sum(e.size_bytes for e in complete),
        complete_disk_bytes=sum(e.disk_bytes for e in complete),
        partial_blobs=len(partial),
        partial_size_bytes=sum(e.size_bytes for e in partial),
        partial_present_bytes=sum(e.present_bytes for e in partial),
        partial_disk_bytes=sum(e.disk_bytes for e in partial),
        reclaimable_bytes=sum(e.disk_bytes for e in complete if e.digest not in in_flight),
    )
