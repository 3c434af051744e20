"""``mlnode pull``: fetch an image's blobs into containerd's content store, then unpack via CRI.

How a pull runs (details and the JSON event schema: docs/pull.md):

1. **Resolve** the reference at the registry (mirrors from containerd's ``hosts.toml``
   first, as containerd does) to one platform's manifest.
2. **Already there?** If CRI ``ImageStatus`` knows the reference with this manifest
   digest, stop.
3. **Lease** ``mlnode-pull-<first 32 hex of the manifest digest>``: created once with a
   :data:`LEASE_EXPIRE_SECONDS` expiry (``containerd.io/gc.expire``) and reused by
   every later attempt for the same manifest. Everything written is attached to it, so
   containerd's GC keeps half-written ingests and committed blobs until the image is
   registered or the lease expires.
4. **Free space** (:func:`plan_space`): bytes still to download + an unpacked estimate
   + a reserve must fit in the available bytes of the filesystem holding containerd's
   root; otherwise run image GC (mlnode's ml policy, the image being pulled protected)
   for the difference, or refuse with InsufficientSpace.
5. **Fetch** config and layers over HTTP straight into the content store
   (``Content.Write`` on refs ``layer-sha256:<hex>`` / ``config-sha256:<hex>``, the
   names containerd's own pulls use, so ``mlnode progress`` and ``ctr`` see them),
   starting at the ingest's committed offset with ``Range: bytes=N-``. A blob of at
   least ``split_threshold_bytes`` is fetched as consecutive ranges over several
   connections into a bounded window of in-memory chunks written in order (the
   Content API only appends). containerd verifies size and digest on commit; mlnode
   also hashes a blob it wrote from byte 0, and on a mismatch aborts the ingest.
6. **Unpack** with CRI ``PullImage`` of the same reference: with every blob present
   containerd only resolves the manifest (one ``HEAD``) and unpacks, and registers the
   image the way the kubelet expects. Then the lease is deleted.

Failures never register an image (only step 6 creates the record, and only when it
succeeds). Partial ingests stay under the lease, so running ``mlnode pull`` again
resumes each blob from its committed offset.

Stall deadline: a connection that delivers no new byte for ``stall_timeout_seconds``
is closed and reopened from where it got to, with exponential backoff, up to
``retries`` times in a row without progress; then PullStalled. A dropped connection is
retried the same way (RegistryError when retries run out). A containerd restart
breaks the content writer: the writer is reopened (waiting up to
``runtime_wait_seconds``) and the fetch continues from the ingest's offset.

The package: ``_plan`` (pure: refs, ranges, space plan, backoff, options and results),
``_progress`` (offsets and rates on the injected clock), ``_blob`` (one blob: ranged
fetch, stall and drop retries, resume, commit), ``_puller`` (the steps above),
``_gc_hook`` (the GC run by step 4), ``_via_mirror`` (:class:`MirrorPuller`: on a node
wired to the node mirror, steps 5 and 6 are one CRI ``PullImage`` through the mirror,
watched for byte progress at the mirror and in containerd; docs/pull.md).
:class:`Puller` takes the ports of :mod:`mlnode.ports`, so :mod:`mlnode.testing`'s
fakes and virtual clock can drive it.
"""

from __future__ import annotations

from mlnode.ops.pull._gc_hook import gc_free_space
from mlnode.ops.pull._plan import (
    DEFAULT_UNPACK_FACTOR,
    LEASE_EXPIRE_SECONDS,
    BlobPlan,
    EventSink,
    FreeSpace,
    PullOptions,
    PullResult,
    SpacePlan,
    backoff_seconds,
    choose_chunk_bytes,
    chunk_ranges,
    default_reserve,
    ingest_ref,
    lease_id_for,
    plan_space,
)
from mlnode.ops.pull._puller import Puller
from mlnode.ops.pull._via_mirror import MirrorPuller

__all__ = [
    "DEFAULT_UNPACK_FACTOR",
    "LEASE_EXPIRE_SECONDS",
    "BlobPlan",
    "EventSink",
    "FreeSpace",
    "MirrorPuller",
    "PullOptions",
    "PullResult",
    "Puller",
    "SpacePlan",
    "backoff_seconds",
    "choose_chunk_bytes",
    "chunk_ranges",
    "default_reserve",
    "gc_free_space",
    "ingest_ref",
    "lease_id_for",
    "plan_space",
]
