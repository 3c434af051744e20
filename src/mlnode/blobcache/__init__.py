"""A content-addressed, resumable blob cache on disk: the node mirror's store.

The mirror (:mod:`mlnode.mirror`) writes it; ``mlnode images``, the free-space check and GC
(:mod:`mlnode.ops`) read it to count and free its bytes. It does no network I/O, so both
sides can use it without importing each other.
"""

from mlnode.blobcache._ranges import Ranges
from mlnode.blobcache._store import DEFAULT_CACHE_DIR, BlobCache, BlobFile, CacheEntry

__all__ = ["DEFAULT_CACHE_DIR", "BlobCache", "BlobFile", "CacheEntry", "Ranges"]
