"""The ml policy's first tier: the node mirror's cache is freed before any image.

A blob in the mirror's cache is a copy: containerd holds the bytes it pulled through the
mirror in its own content store, so dropping the mirror's copy costs at most a re-fetch
from upstream the next time some node pull misses, while removing an image costs a
re-pull of the whole image. So when the ml policy has bytes to free, it takes them from
the cache first, least recently accessed blob first, and touches images only for what
the cache cannot cover.

Only complete blobs that containerd is not ingesting right now are candidates: a partial
blob is a fetch the mirror may be carrying on (kept across a cancelled pull on purpose),
and the mirror bounds those itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlnode.gc._model import MirrorBlob, Removal

__all__ = ["mirror_tier"]


def mirror_tier(blobs: Sequence[MirrorBlob], need_bytes: int) -> tuple[list[Removal], str]:
    """The cache blobs to remove for ``need_bytes`` (oldest access first, until covered),
    and one explanation line. Nothing when ``need_bytes <= 0`` or there is no cache."""
    removable = sorted(
        (b for b in blobs if b.removable and b.disk_bytes > 0),
        key=lambda b: (b.last_access_unix, b.digest),
    )
    kept = [b for b in blobs if not b.removable]
    chosen: list[Removal] = []
    freed = 0
    for blob in removable:
        if freed >= need_bytes:
            break
        names = (blob.name,) if blob.name else ()
        chosen.append(Removal(blob.digest, blob.disk_bytes, "mirror-cache", names))
        freed += blob.disk_bytes
    offered = sum(b.disk_bytes for b in removable)
    note = (
        f"mirror cache first: {len(chosen)} of {len(removable)} complete blob(s) "
        f"({offered} bytes reclaimable) free {freed} of the {max(need_bytes, 0)} bytes needed"
    )
    if kept:
        note += (
            f"; {len(kept)} partial or in-flight blob(s) "
            f"({sum(b.disk_bytes for b in kept)} bytes) are left to the mirror"
        )
    return chosen, note
