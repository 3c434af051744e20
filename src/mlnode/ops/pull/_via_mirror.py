"""A pull through the node mirror: CRI ``PullImage`` fetches, mlnode watches the bytes.

When the node is wired (containerd's hosts.toml sends the registry to the mirror first),
the fastest path is containerd's own: its in-process content writes (~170 MB/s against
60-80 MB/s through the Content ``Write`` gRPC), with the mirror fetching from upstream
over several ranged connections and keeping what it got across cancellation. So
:class:`MirrorPuller` resolves, checks space and takes the lease exactly as the engine
does (:class:`~mlnode.ops.pull.Puller`), then makes one CRI ``PullImage`` call and, while
it runs, samples containerd's ingests (``ListStatuses``) and the mirror's status
(``/mlnode/v1/status``) for the image's blobs, emitting the same ``progress`` events
(``offset_bytes`` = what containerd holds) and ``mirror`` events (upstream and served
bytes per blob).

Stalls: the mirror retries its upstream itself, so the only deadline here is "no byte
progress anywhere": neither containerd's ingests nor the mirror's upstream or served
bytes moved for ``stall_timeout_seconds``. Then the CRI call is cancelled (closing its
connection, :meth:`ImageService.close`) and the pull fails with PullStalled. Once every
blob is committed the unpack runs, which has no byte progress and no deadline (as in the
engine).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlnode.errors import MlnodeError, PullStalled
from mlnode.ops.mirror_status import MirrorBlob, MirrorStatus, MirrorStatusError
from mlnode.ops.pull._plan import BlobPlan, ingest_ref
from mlnode.ops.pull._puller import Puller
from mlnode.ports import ImageService
from mlnode.registry.client import PullTarget
from mlnode.runtime.cri import RegistryAuth
from mlnode.units import format_bytes

__all__ = ["MirrorPuller"]


@dataclass(frozen=True)
class _Observation:
    """One look at the image's blobs: containerd's bytes per digest, and the mirror's."""

    containerd_bytes: dict[str, int]
    committed: frozenset[str]
    mirror: dict[str, MirrorBlob]
    mirror_error: str | None

    @property
    def signature(self) -> tuple[int, int, int]:
        """What moving bytes change: a new value means progress somewhere."""
        return (
            sum(self.containerd_bytes.values()),
            sum(b.upstream_bytes for b in self.mirror.values()),
            sum(b.served_bytes for b in self.mirror.values()),
        )


class _Call:
    """The CRI PullImage call on its own thread; ``done`` is set when it returns."""

    def __init__(self, run: Callable[[], str]) -> None:
        self.done = threading.Event()
        self.image_ref: str | None = None
        self.error: BaseException | None = None
        self._run = run
        self.thread = threading.Thread(target=self._main, daemon=True, name="cri-pull")

    def _main(self) -> None:
        try:
            self.image_ref = self._run()
        except BaseException as e:  # handed to the watching thread, which raises it
            self.error = e
        finally:
            self.done.set()


class MirrorPuller(Puller):
    """:class:`Puller` whose fetch is CRI ``PullImage`` through the mirror at
    ``mirror_url``. ``pull_service`` makes that call; it must be a connection of its own,
    since closing it is how a stalled call is cancelled. ``read_status`` reads the
    mirror's status (:func:`mlnode.ops.mirror_status.fetch_status`, or a test's)."""

    VIA = "mirror"

    def __init__(
        self,
        *,
        mirror_url: str,
        read_status: Callable[[str], MirrorStatus],
        pull_service: ImageService,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mirror_url = mirror_url
        self.read_status = read_status
        self.pull_service = pull_service
        self._unpack_seconds = 0.0
        self._last_mirror: tuple[object, ...] | None = None

    # --- observing --------------------------------------------------------------------

    def _observe(self, plans: Sequence[BlobPlan]) -> _Observation:
        mirror: dict[str, MirrorBlob] = {}
        error = None
        try:
            st = self.read_status(self.mirror_url)
        except MirrorStatusError as e:
            error = str(e)
        else:
            for b in plans:
                blob = st.blob(b.descriptor.digest)
                if blob is not None:
                    mirror[b.descriptor.digest] = blob
        held: dict[str, int] = {}
        committed: set[str] = set()
        for b in plans:
            d = b.descriptor
            if b.committed or self.containerd.has_content(d.digest):
                held[d.digest] = d.size
                committed.add(d.digest)
                continue
            status = self.containerd.status(ingest_ref(b.role, d.digest))
            held[d.digest] = status.offset_bytes if status is not None else 0
        return _Observation(held, frozenset(committed), mirror, error)

    def _report(self, seen: _Observation, before: _Observation) -> None:
        for digest, n in seen.containerd_bytes.items():
            self.progress.set(digest, n)
            gained = n - before.containerd_bytes.get(digest, 0)
            if gained > 0:
                self.progress.received(gained)
        key = (seen.mirror_error, tuple(sorted((d, b) for d, b in seen.mirror.items())))
        if key == self._last_mirror:
            return
        self._last_mirror = key
        self.emit(
            {
                "event": "mirror",
                "url": self.mirror_url,
                "reachable": seen.mirror_error is None,
                "error": seen.mirror_error,
                "blobs": [
                    {
                        "digest": b.digest,
                        "state": b.state,
                        "size_bytes": b.size_bytes,
                        "upstream_bytes": b.upstream_bytes,
                        "served_bytes": b.served_bytes,
                        "connections": b.connections,
                        "rate_bytes_per_second": round(b.rate_bytes_per_second),
                        "eta_seconds": b.eta_seconds,
                        "error": b.error,
                    }
                    for b in seen.mirror.values()
                ],
            }
        )

    # --- the steps the engine does differently ----------------------------------------

    def _auth(self) -> RegistryAuth | None:
        creds = self.registry.credentials(self.reference)
        if creds is None or not (creds.username or creds.password):
            return None
        return RegistryAuth(
            username=creds.username,
            password=creds.password,
            server_address=self.reference.registry,
        )

    def _stalled(
        self, seen: _Observation, plans: Sequence[BlobPlan], silent_seconds: float
    ) -> PullStalled:
        waiting = [b for b in plans if b.descriptor.digest not in seen.committed] or list(plans)
        first = max(waiting, key=lambda b: b.descriptor.size)
        digest = first.descriptor.digest
        held = seen.containerd_bytes.get(digest, 0)
        blob = seen.mirror.get(digest)
        upstream = f", {format_bytes(blob.upstream_bytes)} at the mirror" if blob else ""
        mirror = f"mirror {self.mirror_url} (unreachable)" if seen.mirror_error else "mirror"
        return PullStalled(
            f"no byte progress at the {mirror} or containerd for {silent_seconds:.0f}s "
            f"({first.role} {digest}: {format_bytes(held)} of "
            f"{format_bytes(first.descriptor.size)} in containerd{upstream}; "
            f"--stall-timeout {self.options.stall_timeout_seconds:g}s); the CRI pull was "
            "cancelled; run mlnode pull again: the mirror keeps what it fetched"
        )

    def _fetch_all(self, target: PullTarget, plans: Sequence[BlobPlan]) -> float:
        """CRI PullImage (fetch and unpack), watched; returns the fetch's seconds (until
        every blob was committed) and keeps the rest as the unpack's."""
        del target  # containerd resolves and writes the manifests itself
        start = self.clock.monotonic()
        self.emit({"event": "phase", "phase": "fetching", "elapsed_seconds": 0.0})
        for b in plans:
            self.progress.add(
                b.role,
                b.descriptor.digest,
                b.descriptor.size,
                b.descriptor.size if b.committed else b.ingest_offset_bytes,
            )
        ref, auth = str(self.reference), self._auth()
        call = _Call(lambda: self.pull_service.pull_image(ref, auth=auth, timeout_seconds=None))
        self.progress.start(thread=False)  # ticked by _watch, once per sample
        try:
            try:
                fetched_at = self._watch(call, plans, start)
            finally:
                self.progress.stop()
            if call.error is not None:
                raise call.error
        except BaseException:
            # Unlike the engine's, this lease holds no partial data worth keeping (a
            # cancelled CRI pull's ingests are gone; the mirror keeps the bytes): drop it
            with contextlib.suppress(MlnodeError):
                self.containerd.delete_lease(self.lease_id)
            raise
        now = self.clock.monotonic()
        fetched_at = now if fetched_at is None else fetched_at
        self._unpack_seconds = now - fetched_at
        return fetched_at - start

    def _watch(self, call: _Call, plans: Sequence[BlobPlan], start: float) -> float | None:
        """Sample until the call returns; cancel it after ``stall_timeout_seconds`` without
        byte progress. Returns when every blob was seen committed (None: never seen)."""
        opts = self.options
        # what containerd held before the call: every byte above it was fetched by it
        before = _Observation(
            {
                b.descriptor.digest: b.descriptor.size if b.committed else b.ingest_offset_bytes
                for b in plans
            },
            frozenset(b.descriptor.digest for b in plans if b.committed),
            {},
            None,
        )
        last_move = start
        fetched_at: float | None = None
        call.thread.start()
        while True:
            finished = self.clock.wait(call.done, opts.progress_interval_seconds)
            seen = self._observe(plans)
            now = self.clock.monotonic()
            self._report(seen, before)
            self.progress.tick()
            if seen.signature != before.signature:
                last_move = now
            before = seen
            if fetched_at is None and len(seen.committed) == len(plans):
                fetched_at = now
                self.emit({"event": "phase", "phase": "unpacking", "elapsed_seconds": 0.0})
            if finished:
                return fetched_at
            if fetched_at is None and now - last_move >= opts.stall_timeout_seconds:
                error = self._stalled(seen, plans, now - last_move)
                self._cancel(call)
                raise error

    def _cancel(self, call: _Call) -> None:
        """Close the call's connection (gRPC cancels the call in flight) and wait for it."""
        with contextlib.suppress(MlnodeError):
            self.pull_service.close()
        call.done.wait(30.0)

    def _register(self, target: PullTarget) -> tuple[str, float]:
        """The image is registered by the PullImage already: read its id, drop the lease."""
        return self._registered_id(target, "resolved"), self._unpack_seconds
