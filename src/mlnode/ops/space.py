"""Room on the image filesystem before bytes arrive: :class:`ImageFsSpaceKeeper`.

The implementation of :class:`mlnode.ports.SpaceKeeper` the CLI hands to the node
mirror, which asks before it fetches a blob. It uses the arithmetic of ``mlnode pull``'s
free-space check itself (:func:`mlnode.ops.pull.plan_space`: incoming bytes + the
reserve must fit in what is available, the mirror cache's reclaimable bytes recorded as
freeable) and, for a shortfall, the ml GC run a pull runs
(:func:`mlnode.ops.gc_session.make_room`): the mirror cache's complete blobs first, then
images. ``incoming_bytes`` are the bytes about to land on the image filesystem; the
caller decides what that is (the mirror: the blob's bytes still missing from its cache).

States, for one call: fits → nothing done; short and GC frees enough (from the cache
alone, or cache then images) → done; short and GC cannot (nothing removable: pinned, in
use, younger than the minimum age, partial blobs only) or GC off → InsufficientSpace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlnode.blobcache import BlobCache
from mlnode.errors import InsufficientSpace, InvalidValue
from mlnode.ops.gc_runtime import CriGcRuntime, GcRun, GcRuntime
from mlnode.ops.mirror_cache import cache_for_image_fs, reclaimable_bytes
from mlnode.ops.pull import BlobPlan, SpacePlan, plan_space
from mlnode.ports import FilesystemMeter, ImageService, PullStatusSource, SpaceKeeper
from mlnode.registry.manifest import BlobDescriptor
from mlnode.runtime.fs import FilesystemUsage, image_filesystem
from mlnode.units import format_bytes

__all__ = ["GcRunner", "ImageFsSpaceKeeper", "live_space_keeper", "ml_gc_runner"]

#: Runs the ml GC until ``required_bytes`` are available; returns what it did.
GcRunner = Callable[[int], GcRun]

_NO_DIGEST = "sha256:" + "0" * 64


def ml_gc_runner(
    runtime: GcRuntime, *, cache: BlobCache | None, state_file: Path | None
) -> GcRunner:
    """The GC a pull's free-space check runs, as a :data:`GcRunner`: mirror cache first."""
    from mlnode.ops import gc_session

    def run(required_bytes: int) -> GcRun:
        return gc_session.make_room(runtime, required_bytes, cache=cache, state_file=state_file).run

    return run


def _account(run: GcRun) -> str:
    cache = [r for r in run.removed if r.reason == "mirror-cache"]
    images = [r for r in run.removed if r.reason != "mirror-cache"]
    text = (
        f"GC freed {format_bytes(sum(r.size_bytes for r in cache))} from the mirror cache "
        f"({len(cache)} blob(s)) and {format_bytes(sum(r.size_bytes for r in images))} "
        f"from {len(images)} image(s)"
    )
    if run.not_removed:
        text += f", {len(run.not_removed)} planned removal(s) skipped or failed"
    return text


class ImageFsSpaceKeeper:
    """:class:`mlnode.ports.SpaceKeeper` over the image filesystem.

    ``meter`` measures it (the pull's measure); ``cache`` is the node mirror's cache (its
    reclaimable bytes are reported as freeable); ``gc`` frees a shortfall (None: never
    remove anything); ``reserve_bytes`` as ``mlnode pull --reserve`` (None: the pull's
    default). One call at a time: concurrent fetches ask in turn, so two do not both
    count the same free bytes.
    """

    def __init__(
        self,
        *,
        meter: FilesystemMeter,
        cache: BlobCache | None,
        gc: GcRunner | None,
        reserve_bytes: int | None = None,
    ) -> None:
        self.meter = meter
        self.cache = cache
        self.gc = gc
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()

    def _plan(self, incoming_bytes: int) -> SpacePlan:
        blob = BlobPlan(
            "blob", BlobDescriptor("application/octet-stream", _NO_DIGEST, incoming_bytes)
        )
        return plan_space(
            [blob],
            self.meter(),
            reserve_bytes=self.reserve_bytes,
            mirror_cache_reclaimable_bytes=reclaimable_bytes(self.cache),
        )

    def ensure_room(self, incoming_bytes: int, *, what: str) -> str:
        """Make room for ``incoming_bytes`` more; a one-line account of what was done.
        Raises :class:`~mlnode.errors.InsufficientSpace` when it cannot."""
        if isinstance(incoming_bytes, bool) or incoming_bytes < 0:
            raise InvalidValue(f"incoming bytes must be 0 or more, got {incoming_bytes!r}")
        with self._lock:
            space = self._plan(incoming_bytes)
            if space.fits:
                return f"{what}: fits, nothing freed: {space.describe()}"
            if self.gc is None:
                raise InsufficientSpace(
                    f"{what} does not fit: {space.describe()}, short by "
                    f"{format_bytes(space.shortfall_bytes)}; image GC is off"
                )
            run = self.gc(space.required_bytes)
            after = self._plan(incoming_bytes)
            if after.fits:
                return f"{what}: {_account(run)}: {after.describe()}"
            raise InsufficientSpace(
                f"{what} does not fit: {after.describe()}, short by "
                f"{format_bytes(after.shortfall_bytes)}; {_account(run)}, not enough"
            )


def live_space_keeper(
    cri: ImageService,
    containerd: PullStatusSource | None,
    image_fs: Path,
    *,
    cache_dir: Path | None,
    state_file: Path | None,
    reserve_bytes: int | None = None,
    gc: bool = True,
) -> ImageFsSpaceKeeper:
    """The keeper for a live node: ``statvfs`` of ``image_fs``, the mirror cache at
    ``cache_dir`` (when it shares that filesystem), the ml GC over CRI."""

    def meter() -> FilesystemUsage:
        return image_filesystem(image_fs)

    cache = cache_for_image_fs(cache_dir, image_fs)
    runtime = CriGcRuntime(cri, containerd, image_fs, measure=meter)
    return ImageFsSpaceKeeper(
        meter=meter,
        cache=cache,
        gc=ml_gc_runner(runtime, cache=cache, state_file=state_file) if gc else None,
        reserve_bytes=reserve_bytes,
    )


if TYPE_CHECKING:  # mypy checks the keeper satisfies its port; never runs

    def _port(k: ImageFsSpaceKeeper) -> SpaceKeeper:
        return k
