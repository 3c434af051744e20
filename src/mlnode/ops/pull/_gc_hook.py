"""The GC hook a pull runs when the image does not fit: mlnode's ml policy, live."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mlnode.blobcache import BlobCache
from mlnode.ops.pull._plan import EventSink, FreeSpace
from mlnode.ports import ImageService, PullStatusSource
from mlnode.runtime.fs import FilesystemUsage

__all__ = ["gc_free_space"]


def gc_free_space(
    cri: ImageService,
    containerd: PullStatusSource,
    image_fs: Path,
    *,
    state_file: Path | None,
    emit: EventSink,
    measure: Callable[[], FilesystemUsage] | None = None,
    cache: BlobCache | None = None,
) -> FreeSpace:
    """A :data:`FreeSpace` hook running mlnode's ml GC policy against the live runtime.

    The policy's target is exactly the bytes the pull needs (headroom = required bytes,
    thresholds out of the way); the image being pulled is protected by name, digest and
    id (``keep_patterns``), and so is the runtime's sandbox image (the ml policy's rule in
    :func:`mlnode.ops.gc_session.run_gc`, which ``mlnode gc`` runs too); images whose
    blobs are being downloaded are protected by the GC itself (``being_pulled``).
    ``measure`` is the pull's own measure of the image filesystem, so both agree on what
    fits. ``cache`` is the node mirror's cache: its complete blobs are freed before any
    image (:func:`mlnode.ops.gc_session.make_room`).
    """
    from mlnode.ops import gc_session
    from mlnode.ops.gc_runtime import CriGcRuntime

    def run(required: int, protect: Sequence[str]) -> int:
        runtime = CriGcRuntime(cri, containerd, image_fs, measure=measure)
        done = gc_session.make_room(runtime, required, protect, cache=cache, state_file=state_file)
        the_plan, result = done.plan, done.run
        emit(
            {
                "event": "gc",
                "bytes_to_free": the_plan.bytes_to_free,
                "bytes_freed": result.bytes_freed,
                "mirror_cache_bytes_freed": sum(
                    r.size_bytes for r in result.removed if r.reason == "mirror-cache"
                ),
                "removed": [r.id for r in result.removed],
                "explanations": list(the_plan.explanations),
            }
        )
        return result.bytes_freed

    return run
