"""Capacity and free space of the filesystem holding the runtime's images (``statvfs``).

The kubelet's image GC takes capacity and available bytes from cAdvisor, which reads them
the same way, and rounds usage as ``100 - int(available * 100 / capacity)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlnode.errors import InputError

__all__ = ["FilesystemUsage", "image_filesystem"]


@dataclass(frozen=True)
class FilesystemUsage:
    """Sizes of one filesystem; ``path`` is the directory that was measured."""

    path: Path
    capacity_bytes: int
    available_bytes: int
    used_bytes: int

    def usage_percent(self) -> int:
        """Percent used the way the kubelet computes it (15.9 % free counts as 85 % used)."""
        if self.capacity_bytes <= 0:
            raise InputError("invalid capacity 0 on image filesystem", path=self.path)
        return 100 - int(self.available_bytes * 100 / self.capacity_bytes)


def image_filesystem(path: Path | str) -> FilesystemUsage:
    """Measure the filesystem that holds ``path``.

    If ``path`` does not exist yet (a runtime root before the first start), the nearest
    existing parent is measured: that is where the runtime's data would land.
    """
    probe = Path(path)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError as e:
        raise InputError(f"cannot statvfs: {e.strerror}", path=probe) from e
    block = st.f_frsize or st.f_bsize
    return FilesystemUsage(
        path=probe,
        capacity_bytes=st.f_blocks * block,
        available_bytes=st.f_bavail * block,
        used_bytes=(st.f_blocks - st.f_bfree) * block,
    )
