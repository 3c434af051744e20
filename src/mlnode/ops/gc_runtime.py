"""Image GC against a live runtime: what it needs from the runtime, and carrying out a plan.

:class:`GcRuntime` is what GC needs: five calls, nothing more. :class:`CriGcRuntime`
implements it over ports: an :class:`~mlnode.ports.ImageService` (CRI: images,
containers, removal), a :class:`PullStatusSource` (containerd's Content service: pulls in
flight) and a :class:`~mlnode.ports.FilesystemMeter` (default: ``statvfs`` of the
runtime's root directory, as the kubelet's cAdvisor reads it; CRI ``ImageFsInfo`` counts
only containerd's snapshotter and would miss the content store). The in-memory fakes in
:mod:`mlnode.testing` stand in for the ports in tests.

:func:`collect` turns what the runtime reports into planner input, recording first-seen
and last-used times in the :class:`~mlnode.ops.image_state.ImageStateFile`.
:func:`execute` carries out a :class:`~mlnode.gc.GcPlan`: just before each removal
it asks the runtime again and skips the image if it is now in use, pinned, being pulled
or already gone. A ``mirror-cache`` removal (the ml policy's first tier) is carried out
on the node mirror's :class:`~mlnode.blobcache.BlobCache` instead, and only while the
blob is still complete and containerd is not ingesting it (:func:`mirror_blobs`).
A container created between that check and the removal can still race
it, as with the kubelet. Removal failures are recorded and the rest continue, as the
kubelet does; losing the runtime altogether raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from mlnode.blobcache import BlobCache
from mlnode.errors import (
    RuntimeError_,
    RuntimePermissionDenied,
    RuntimeUnavailable,
    UsageError,
)
from mlnode.gc import (
    FilesystemState,
    GcImage,
    GcPlan,
    ImageState,
    MirrorBlob,
    ObservedImage,
    Removal,
    detect,
)
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.mirror_cache import read_entries
from mlnode.ports import FilesystemMeter, ImageService, PullStatusSource

if TYPE_CHECKING:  # the gRPC clients load only when a live runtime is used
    pass

__all__ = [
    "CollectedState",
    "CriGcRuntime",
    "GcRun",
    "GcRuntime",
    "Outcome",
    "RemovalOutcome",
    "RuntimeImage",
    "collect",
    "digests_from_ingest_refs",
    "execute",
    "images_being_pulled",
    "images_in_use",
    "mirror_blobs",
    "open_gc_runtime",
]


@dataclass(frozen=True)
class RuntimeImage:
    """An image as the runtime lists it; ``names`` are its tags and ``repo@digest``s."""

    id: str
    size_bytes: int
    pinned: bool
    names: tuple[str, ...] = ()


class GcRuntime(Protocol):
    """What image GC needs from a container runtime."""

    def list_images(self) -> Sequence[RuntimeImage]:
        """Every image, with its size and pinned flag."""
        ...

    def container_image_refs(self) -> frozenset[str]:
        """Every string by which any container, in any state, names its image."""
        ...

    def in_flight_pull_digests(self) -> frozenset[str]:
        """Digests (``sha256:…``) of blobs being downloaded right now, by anyone."""
        ...

    def remove_image(self, image_id: str) -> None:
        """Remove one image by id."""
        ...

    def image_filesystem(self) -> FilesystemState:
        """Capacity and available bytes of the filesystem holding the images."""
        ...


def images_in_use(images: Iterable[RuntimeImage], refs: frozenset[str]) -> frozenset[str]:
    """Ids of the images some container refers to, by id, tag or digest reference."""
    return frozenset(i.id for i in images if i.id in refs or any(n in refs for n in i.names))


def digests_from_ingest_refs(refs: Iterable[str]) -> frozenset[str]:
    """``layer-sha256:ab…`` / ``config-sha256:…`` / ``manifest-…`` / ``index-…`` → ``sha256:…``."""
    out: set[str] = set()
    for ref in refs:
        _, sep, rest = ref.partition("-")
        candidate = rest if sep else ref
        if ":" in candidate:
            out.add(candidate)
    return frozenset(out)


def images_being_pulled(images: Iterable[RuntimeImage], digests: frozenset[str]) -> frozenset[str]:
    """Ids of images whose id (the config digest) or manifest digest is being downloaded."""
    pulled: set[str] = set()
    for image in images:
        manifest_digests = {n.rpartition("@")[2] for n in image.names if "@" in n}
        if image.id in digests or manifest_digests & digests:
            pulled.add(image.id)
    return frozenset(pulled)


@dataclass(frozen=True)
class CollectedState:
    """Planner input gathered from a runtime at one moment."""

    images: tuple[GcImage, ...]
    filesystem: FilesystemState
    state: ImageState


def collect(
    runtime: GcRuntime,
    *,
    now: datetime,
    state_file: ImageStateFile | None,
    persist: bool = True,
) -> CollectedState:
    """Ask the runtime, update the persisted times, and build :class:`GcImage`s.

    With ``persist`` False the state file is read but not written (a dry run changes
    nothing on the node). With ``state_file`` None there is no history: every image
    counts as first seen ``now``, so the minimum age protects all of them.
    """
    listed = list(runtime.list_images())
    refs = runtime.container_image_refs()
    pulling = images_being_pulled(listed, runtime.in_flight_pull_digests())
    filesystem = runtime.image_filesystem()
    in_use = images_in_use(listed, refs)
    observed = [ObservedImage(i.id, i.size_bytes) for i in listed]
    if state_file is None:
        state = detect(ImageState(), observed, in_use, now)
    elif persist:
        state = state_file.observe(observed, in_use, now)
    else:
        state = detect(state_file.load(), observed, in_use, now)
    images = tuple(
        GcImage(
            id=i.id,
            size_bytes=i.size_bytes,
            pinned=i.pinned,
            in_use=i.id in in_use,
            being_pulled=i.id in pulling,
            last_used=state.images[i.id].last_used,
            first_detected=state.images[i.id].first_detected,
            names=i.names,
        )
        for i in listed
    )
    return CollectedState(images=images, filesystem=filesystem, state=state)


def mirror_blobs(cache: BlobCache, in_flight: frozenset[str]) -> tuple[MirrorBlob, ...]:
    """The mirror cache's blobs as the ml policy plans over them; ``in_flight`` are the
    digests containerd is ingesting now (such a blob is being served: never removed)."""
    return tuple(
        MirrorBlob(
            digest=e.digest,
            disk_bytes=e.disk_bytes,
            complete=e.complete,
            last_access_unix=e.last_access_unix,
            in_flight=e.digest in in_flight,
            name=f"{e.registry}/{e.repository}" if e.registry else e.repository,
        )
        for e in read_entries(cache)
    )


Outcome = Literal["removed", "would remove", "skipped", "failed"]


@dataclass(frozen=True)
class RemovalOutcome:
    """What happened to one planned removal; ``detail`` says why for skipped/failed."""

    removal: Removal
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class GcRun:
    """A plan and what carrying it out did."""

    plan: GcPlan
    outcomes: tuple[RemovalOutcome, ...]
    dry_run: bool
    available_after_bytes: int | None = None

    @property
    def removed(self) -> tuple[Removal, ...]:
        """Removals done (dry run: the ones that would be done)."""
        wanted: tuple[Outcome, ...] = ("would remove",) if self.dry_run else ("removed",)
        return tuple(o.removal for o in self.outcomes if o.outcome in wanted)

    @property
    def not_removed(self) -> tuple[RemovalOutcome, ...]:
        return tuple(o for o in self.outcomes if o.outcome in ("skipped", "failed"))

    @property
    def bytes_freed(self) -> int:
        return sum(r.size_bytes for r in self.removed)

    @property
    def satisfied(self) -> bool:
        """Enough was freed, and the plan carries no error (capacity 0 is the kubelet's
        "invalid capacity 0 on image filesystem" even after the age pass removed images)."""
        return self.plan.error is None and self.bytes_freed >= self.plan.bytes_to_free


def _recheck(runtime: GcRuntime, image_id: str) -> str | None:
    """Why ``image_id`` must not be removed now, or None if it still may be."""
    listed = list(runtime.list_images())
    current = next((i for i in listed if i.id == image_id), None)
    if current is None:
        return "already gone"
    if current.pinned:
        return "pinned by the runtime now"
    if image_id in images_in_use([current], runtime.container_image_refs()):
        return "in use by a container now"
    if image_id in images_being_pulled([current], runtime.in_flight_pull_digests()):
        return "being pulled now"
    return None


def _recheck_blob(runtime: GcRuntime, cache: BlobCache | None, digest: str) -> str | None:
    """Why the mirror cache's blob ``digest`` must not be removed now, or None."""
    entry = cache.entry(digest) if cache is not None else None
    if entry is None:
        return "already gone"
    if not entry.complete:
        return "no longer complete (the mirror is fetching it)"
    if digest in runtime.in_flight_pull_digests():
        return "being pulled now"
    return None


def _remove_one(runtime: GcRuntime, cache: BlobCache | None, removal: Removal) -> RemovalOutcome:
    is_blob = removal.reason == "mirror-cache"
    reason = _recheck_blob(runtime, cache, removal.id) if is_blob else _recheck(runtime, removal.id)
    if reason is not None:
        return RemovalOutcome(removal, "skipped", reason)
    try:
        if is_blob and cache is not None:
            cache.remove(removal.id)
        else:
            runtime.remove_image(removal.id)
    except (RuntimeUnavailable, RuntimePermissionDenied):
        raise
    except RuntimeError_ as e:
        return RemovalOutcome(removal, "failed", str(e))
    except OSError as e:
        return RemovalOutcome(removal, "failed", f"{removal.id}: {e.strerror or e}")
    return RemovalOutcome(removal, "removed")


def execute(
    runtime: GcRuntime, plan: GcPlan, *, dry_run: bool, cache: BlobCache | None = None
) -> GcRun:
    """Carry out ``plan`` (or, with ``dry_run``, only say what would be removed).

    ``cache`` is the node mirror's cache the plan's ``mirror-cache`` removals come from."""
    if dry_run:
        return GcRun(
            plan=plan,
            outcomes=tuple(RemovalOutcome(r, "would remove") for r in plan.removed),
            dry_run=True,
        )
    outcomes = [_remove_one(runtime, cache, removal) for removal in plan.removed]
    after = runtime.image_filesystem().available_bytes if plan.removed else None
    return GcRun(plan=plan, outcomes=tuple(outcomes), dry_run=False, available_after_bytes=after)


# --- the adapter over the ports -------------------------------------------------------


class CriGcRuntime:
    """:class:`GcRuntime` over an image service (CRI), a pull-status source (containerd's
    Content service) and a filesystem meter (``statvfs`` of ``image_fs`` by default).

    ``containerd`` may be None for runtimes other than containerd; then no pull is seen
    as in flight.
    """

    def __init__(
        self,
        cri: ImageService,
        containerd: PullStatusSource | None,
        image_fs: Path,
        *,
        measure: FilesystemMeter | None = None,
    ) -> None:
        self._cri = cri
        self._containerd = containerd
        self.image_fs_path = image_fs
        # How the image filesystem is measured: statvfs of image_fs unless the caller
        # measures it its own way (a pull shares its measure with the GC it triggers).
        self._measure = measure

    def list_images(self) -> list[RuntimeImage]:
        return [
            RuntimeImage(id=i.id, size_bytes=i.size_bytes, pinned=i.pinned, names=i.names)
            for i in self._cri.list_images()
        ]

    def container_image_refs(self) -> frozenset[str]:
        refs: set[str] = set()
        for c in self._cri.list_containers():
            refs |= c.image_keys()
        return frozenset(refs)

    def in_flight_pull_digests(self) -> frozenset[str]:
        if self._containerd is None:
            return frozenset()
        statuses = self._containerd.list_statuses()
        digests = digests_from_ingest_refs(s.ref for s in statuses)
        return digests | {s.expected_digest for s in statuses if s.expected_digest}

    def remove_image(self, image_id: str) -> None:
        self._cri.remove_image(image_id)

    def sandbox_image(self) -> str | None:
        """The runtime's pod sandbox image, when its verbose status says (containerd)."""
        return self._cri.status(verbose=True).sandbox_image()

    def image_filesystem(self) -> FilesystemState:
        from mlnode.runtime.fs import image_filesystem

        usage = self._measure() if self._measure else image_filesystem(self.image_fs_path)
        return FilesystemState(
            capacity_bytes=usage.capacity_bytes,
            available_bytes=min(usage.available_bytes, usage.capacity_bytes),
        )

    def close(self) -> None:
        self._cri.close()
        if self._containerd is not None:
            self._containerd.close()


def open_gc_runtime(endpoint: str | None, *, image_fs: Path | None = None) -> CriGcRuntime:
    """Connect to the runtime at ``endpoint`` (discovered if None).

    The image filesystem is ``image_fs`` if given, else the runtime's root directory
    (containerd: what CRI ``Status`` reports, else ``root`` in its config). Raises
    RuntimeUnavailable / RuntimePermissionDenied when the socket cannot be used.
    """
    from mlnode.runtime.containerd import ContainerdClient
    from mlnode.runtime.cri import CriClient
    from mlnode.runtime.discovery import discover_runtime
    from mlnode.versions import RuntimeKind

    found = discover_runtime(endpoint)
    cri = CriClient(found.socket_path)
    try:
        kind = found.kind
        if kind is None:
            name = cri.version().runtime_name.lower()
            kind = RuntimeKind.CONTAINERD if "containerd" in name else None
        root = image_fs
        if root is None and kind is RuntimeKind.CONTAINERD:
            # What the running containerd says beats its config file on disk.
            root = cri.status(verbose=True).containerd_root_dir()
        root = root or found.root_dir
        if root is None:
            raise UsageError(
                "cannot tell which filesystem holds the runtime's images", option="--image-fs"
            )
        containerd = ContainerdClient(found.socket_path) if kind is RuntimeKind.CONTAINERD else None
    except BaseException:
        cri.close()
        raise
    return CriGcRuntime(cri, containerd, root)
