"""The pull itself: resolve, lease, space check, fetch every blob, unpack through CRI."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from mlnode.errors import InsufficientSpace, MlnodeError
from mlnode.ops.pull._blob import BlobJob, Cancelled
from mlnode.ops.pull._plan import (
    LEASE_IMAGE_LABEL,
    BlobPlan,
    EventSink,
    FreeSpace,
    PullOptions,
    PullResult,
    SpacePlan,
    ingest_ref,
    lease_id_for,
    plan_space,
)
from mlnode.ops.pull._progress import Progress
from mlnode.ports import Clock, ContentStore, ImageService, Registry, SystemClock
from mlnode.registry.client import PullTarget
from mlnode.registry.manifest import BlobDescriptor
from mlnode.registry.reference import Reference, parse_reference
from mlnode.runtime.cri import RegistryAuth
from mlnode.runtime.errors import AlreadyExists
from mlnode.runtime.fs import FilesystemUsage
from mlnode.units import format_bytes

__all__ = ["Puller"]


class Puller:
    """Carries out one pull. ``filesystem`` measures the image filesystem (tests inject
    a small fake one); ``free_space`` runs GC when the image does not fit.

    ``registry``, ``containerd`` and ``cri`` are ports (:mod:`mlnode.ports`): the real
    clients, or the fakes of :mod:`mlnode.testing`; ``clock`` times every deadline,
    backoff and rate.
    """

    #: the result's ``via``: which path brought the bytes (``MirrorPuller`` says "mirror")
    VIA = "engine"

    def __init__(
        self,
        *,
        registry: Registry,
        containerd: ContentStore,
        cri: ImageService,
        filesystem: Callable[[], FilesystemUsage],
        options: PullOptions | None = None,
        emit: EventSink | None = None,
        free_space: FreeSpace | None = None,
        clock: Clock | None = None,
        reclaimable: Callable[[], int] | None = None,
    ) -> None:
        self.registry = registry
        self.containerd = containerd
        self.cri = cri
        self.filesystem = filesystem
        self.options = options or PullOptions()
        self._emit = emit or (lambda _e: None)
        self._emit_lock = threading.Lock()
        self.free_space = free_space
        #: the node mirror's cache bytes GC may free (counted as freeable in the space plan)
        self.reclaimable = reclaimable
        self.clock: Clock = clock or SystemClock()
        self.progress = Progress(self.emit, self.options.progress_interval_seconds, self.clock)
        self.lease_id = ""
        self.reference = Reference("", "")
        self._target: PullTarget | None = None
        self._labels: dict[str, dict[str, str]] = {}

    def emit(self, event: dict[str, Any]) -> None:
        with self._emit_lock:
            self._emit(event)

    # helpers used by the blob jobs

    def blob_url(self, digest: str) -> str:
        host = self.registry.hosts(self.reference, "pull")[0]
        return host.url(f"/{self.reference.repository}/blobs/{digest}")

    def commit_labels(self, role: str, digest: str) -> dict[str, str]:
        return self._labels.get(digest, {})

    def attach_content(self, digest: str) -> None:
        """Hold a committed blob with our lease until the image record holds it."""
        with contextlib.suppress(AlreadyExists):
            self.containerd.add_lease_resource(self.lease_id, digest, "content")

    # steps

    def _blob_plans(self, target: PullTarget) -> list[BlobPlan]:
        m = target.manifest
        wanted: list[tuple[str, BlobDescriptor]] = [("config", m.config)]
        wanted += [("layer", d) for d in m.layers]
        plans: list[BlobPlan] = []
        seen: set[str] = set()
        for role, d in wanted:
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if self.containerd.has_content(d.digest):
                plans.append(BlobPlan(role, d, committed=True))
                continue
            status = self.containerd.status(ingest_ref(role, d.digest))
            plans.append(
                BlobPlan(role, d, ingest_offset_bytes=status.offset_bytes if status else 0)
            )
        return plans

    def _ensure_lease(self, manifest_digest: str) -> None:
        self.lease_id = lease_id_for(manifest_digest)
        # AlreadyExists: an earlier attempt's lease, holding that attempt's partial data
        with contextlib.suppress(AlreadyExists):
            self.containerd.create_lease(
                self.lease_id,
                labels={LEASE_IMAGE_LABEL: str(self.reference)[:4000]},
                expire_after_seconds=self.options.lease_expire_seconds,
            )

    def _plan_space(self, plans: Sequence[BlobPlan]) -> SpacePlan:
        return plan_space(
            plans,
            self.filesystem(),
            reserve_bytes=self.options.reserve_bytes,
            unpack_factor=self.options.unpack_factor,
            mirror_cache_reclaimable_bytes=self.reclaimable() if self.reclaimable else 0,
        )

    def _check_space(self, plans: Sequence[BlobPlan], protect: Sequence[str]) -> SpacePlan:
        opts = self.options
        space = self._plan_space(plans)
        self.emit({"event": "space", **space.to_json()})
        if space.fits:
            return space
        freed = 0
        if opts.gc and self.free_space is not None:
            self.emit({"event": "phase", "phase": "gc", "elapsed_seconds": 0.0})
            freed = self.free_space(space.required_bytes, protect)
            space = self._plan_space(plans)
            self.emit({"event": "space", **space.to_json(), "gc_freed_bytes": freed})
            if space.fits:
                return space
        how = (
            f"image GC freed {format_bytes(freed)}, not enough"
            if opts.gc and self.free_space is not None
            else "image GC not run (--no-gc)"
        )
        raise InsufficientSpace(
            f"{self.reference} does not fit: {space.describe()}, short by "
            f"{format_bytes(space.shortfall_bytes)}; {how}; free space, or lower --reserve"
        )

    def _write_manifests(self, target: PullTarget) -> None:
        items: list[tuple[str, str, bytes]] = [
            ("manifest", target.manifest_blob.digest, target.manifest_blob.raw)
        ]
        if target.index is not None:
            items.append(("index", target.index.digest, target.index.raw))
        for role, digest, raw in items:
            if self.containerd.has_content(digest):
                self.attach_content(digest)
                continue
            job = BlobJob(
                self, BlobPlan(role, BlobDescriptor("application/json", digest, len(raw)))
            )
            writer = job.open_writer()
            if writer is None:
                self.attach_content(digest)
                continue
            try:
                if writer.offset_bytes:
                    writer.restart_from_zero()
                writer.write(raw)
                job.commit(writer, hashlib.sha256(raw))
            finally:
                writer.close()

    def _labels_for(self, target: PullTarget) -> dict[str, dict[str, str]]:
        """containerd's GC references, as its own pull sets them: a manifest points at
        its config and layers, an index at its manifests."""
        m = target.manifest
        labels: dict[str, dict[str, str]] = {
            m.digest: {"containerd.io/gc.ref.content.config": m.config.digest}
            | {f"containerd.io/gc.ref.content.l.{i}": d.digest for i, d in enumerate(m.layers)}
        }
        if target.index is not None:
            labels[target.index.digest] = {"containerd.io/gc.ref.content.m.0": m.digest}
        return labels

    def _present(self, ref: Reference, manifest_digest: str) -> str | None:
        image = self.cri.image_status(str(ref))
        if image is None:
            return None
        if any(d.endswith("@" + manifest_digest) for d in image.repo_digests):
            return image.id
        return None

    def _fetch(self, plans: Sequence[BlobPlan]) -> None:
        todo = sorted((b for b in plans if not b.committed), key=lambda b: -b.descriptor.size)
        jobs = [BlobJob(self, b) for b in todo]
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=self.options.connections) as pool:
            futures = [pool.submit(j.run) for j in jobs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for j in jobs:
                    j.cancelled.set()
                wait(futures)
                errors = [f.exception() for f in futures if f.exception() is not None]
                real = [e for e in errors if not isinstance(e, Cancelled)]
                raise (real or errors)[0]  # type: ignore[misc]

    def _unpack(self, ref: Reference) -> str:
        started = self.clock.monotonic()
        stop = threading.Event()

        def heartbeat() -> None:
            # a display cadence in real time (like Progress's); the elapsed time is the clock's
            while not stop.wait(5.0):
                self.emit(
                    {
                        "event": "phase",
                        "phase": "unpacking",
                        "elapsed_seconds": round(self.clock.monotonic() - started, 1),
                    }
                )

        self.emit({"event": "phase", "phase": "unpacking", "elapsed_seconds": 0.0})
        t = threading.Thread(target=heartbeat, daemon=True, name="unpack-heartbeat")
        t.start()
        creds = self.registry.credentials(ref)
        auth = (
            RegistryAuth(
                username=creds.username, password=creds.password, server_address=ref.registry
            )
            if creds is not None and (creds.username or creds.password)
            else None
        )
        try:
            return self.cri.pull_image(str(ref), auth=auth, timeout_seconds=None)
        finally:
            stop.set()

    def _resolved_event(self, target: PullTarget, plans: Sequence[BlobPlan]) -> dict[str, Any]:
        manifest, total = target.manifest, target.manifest.blobs_size
        return {
            "event": "resolved",
            "image": str(self.reference),
            "manifest_digest": manifest.digest,
            "index_digest": target.index.digest if target.index else None,
            "platform": str(target.platform),
            "lease": self.lease_id,
            "total_bytes": total,
            "present_bytes": total - sum(b.remaining_bytes for b in plans),
            "blobs": [
                {
                    "role": b.role,
                    "digest": b.descriptor.digest,
                    "media_type": b.descriptor.media_type,
                    "size_bytes": b.descriptor.size,
                    "committed": b.committed,
                    "offset_bytes": b.descriptor.size if b.committed else b.ingest_offset_bytes,
                }
                for b in plans
            ],
        }

    def _fetch_all(self, target: PullTarget, plans: Sequence[BlobPlan]) -> float:
        """Step 5: every blob, then the manifests; returns the seconds it took."""
        fetch_start = self.clock.monotonic()
        self.emit({"event": "phase", "phase": "fetching", "elapsed_seconds": 0.0})
        for b in plans:
            self.progress.add(
                b.role,
                b.descriptor.digest,
                b.descriptor.size,
                b.descriptor.size if b.committed else b.ingest_offset_bytes,
            )
        self.progress.start()
        try:
            self._fetch(plans)
        finally:
            self.progress.stop()
        self._write_manifests(target)
        return self.clock.monotonic() - fetch_start

    def _register(self, target: PullTarget) -> tuple[str, float]:
        """Step 6: unpack through CRI, drop the lease; the image id and the seconds taken."""
        ref = self.reference
        unpack_start = self.clock.monotonic()
        self._unpack(ref)
        unpack_seconds = self.clock.monotonic() - unpack_start
        return self._registered_id(target, "fetched"), unpack_seconds

    def _registered_id(self, target: PullTarget, verb: str) -> str:
        """The image id CRI now reports for the reference (a warning when the tag moved
        to another image meanwhile), and the pull's lease dropped."""
        ref, manifest = self.reference, target.manifest
        status = self.cri.image_status(str(ref))
        image_id = status.id if status is not None else ""
        if image_id and image_id != manifest.config.digest:
            self.emit(
                {
                    "event": "warning",
                    "message": f"{ref} now points at image {image_id}, not the "
                    f"{manifest.config.digest} {verb} (the tag moved during the pull)",
                }
            )
        with contextlib.suppress(MlnodeError):
            self.containerd.delete_lease(self.lease_id)
        return image_id

    def pull(self, image: str) -> PullResult:
        """Pull ``image``; see the package docstring. Emits events through ``emit``."""
        t0 = self.clock.monotonic()
        self.reference = ref = parse_reference(image)
        self.emit({"event": "phase", "phase": "resolving", "elapsed_seconds": 0.0})
        target = self.registry.pull_target(ref, self.options.platform)
        self._target = target
        manifest = target.manifest
        present_id = self._present(ref, manifest.digest)
        if present_id is not None:
            result = PullResult(
                reference=str(ref),
                manifest_digest=manifest.digest,
                image_id=present_id,
                total_bytes=manifest.blobs_size,
                fetched_bytes=0,
                fetch_seconds=0.0,
                unpack_seconds=0.0,
                total_seconds=self.clock.monotonic() - t0,
                retries=0,
                already_present=True,
                via=self.VIA,
            )
            self.emit({"event": "done", **result.to_json()})
            return result
        self._ensure_lease(manifest.digest)
        self._labels = self._labels_for(target)
        plans = self._blob_plans(target)
        for b in plans:
            if b.committed:
                self.attach_content(b.descriptor.digest)
        self.emit(self._resolved_event(target, plans))
        protect = (str(ref), f"{ref.name}@{manifest.digest}", manifest.config.digest)
        self._check_space(plans, protect)
        fetch_seconds = self._fetch_all(target, plans)
        image_id, unpack_seconds = self._register(target)
        result = PullResult(
            reference=str(ref),
            manifest_digest=manifest.digest,
            image_id=image_id,
            total_bytes=manifest.blobs_size,
            fetched_bytes=self.progress.fetched_bytes,
            fetch_seconds=fetch_seconds,
            unpack_seconds=unpack_seconds,
            total_seconds=self.clock.monotonic() - t0,
            retries=self.progress.retries,
            via=self.VIA,
        )
        self.emit({"event": "done", **result.to_json()})
        return result
