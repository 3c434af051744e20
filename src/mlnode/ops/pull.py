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
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mlnode.errors import (
    DigestMismatch,
    InsufficientSpace,
    MlnodeError,
    PullStalled,
    RegistryError,
    RuntimeCallFailed,
    RuntimeUnavailable,
    UsageError,
)
from mlnode.registry.client import PullTarget, RegistryClient
from mlnode.registry.manifest import BlobDescriptor, Platform, host_platform
from mlnode.registry.reference import Reference, parse_reference
from mlnode.runtime.containerd import ContainerdClient, ContentWriter
from mlnode.runtime.cri import CriClient, RegistryAuth
from mlnode.runtime.errors import AlreadyExists
from mlnode.runtime.fs import FilesystemUsage
from mlnode.units import format_bytes

__all__ = [
    "DEFAULT_UNPACK_FACTOR",
    "LEASE_EXPIRE_SECONDS",
    "BlobPlan",
    "EventSink",
    "FreeSpace",
    "PullOptions",
    "PullResult",
    "Puller",
    "SpacePlan",
    "choose_chunk_bytes",
    "chunk_ranges",
    "default_reserve",
    "ingest_ref",
    "lease_id_for",
    "plan_space",
]

MiB = 1024 * 1024
GiB = 1024 * MiB

#: Unpacked size estimate for a compressed layer: compressed size × this factor.
#: The exact figure (gzip's ISIZE trailer, mod 2**32) needs the blob's last bytes and is
#: wrong above 4 GiB, so mlnode estimates. Typical ML layers (CUDA libraries, Python
#: wheels) unpack to 1.5-2.5×, model weights to about 1×: 2.0 errs on the safe side.
DEFAULT_UNPACK_FACTOR = 2.0
#: How long containerd keeps a pull's partial data (the lease expiry), from the first try.
LEASE_EXPIRE_SECONDS = 7 * 24 * 3600.0
LEASE_PREFIX = "mlnode-pull-"
LEASE_IMAGE_LABEL = "io.mlnode.pull.image"
_RESERVE_FRACTION = 0.05
_RESERVE_CAP = 10 * GiB
_WRITE_MESSAGE_BYTES = 4 * MiB
_RUNTIME_TRANSIENT = frozenset({"UNAVAILABLE", "UNKNOWN", "CANCELLED", "INTERNAL", "ABORTED"})

EventSink = Callable[[dict[str, Any]], None]
#: GC hook: (bytes that must be available, patterns to protect) → bytes freed.
FreeSpace = Callable[[int, Sequence[str]], int]


# --- pure planning -------------------------------------------------------------------


def ingest_ref(role: str, digest: str) -> str:
    """containerd's ref key: ``layer-sha256:<hex>``, ``config-…``, ``manifest-…``, ``index-…``."""
    return f"{role}-{digest}"


def lease_id_for(manifest_digest: str) -> str:
    """A lease id stable per manifest, so a restarted mlnode reuses it (≤ 76 chars)."""
    return LEASE_PREFIX + manifest_digest.partition(":")[2][:32]


def default_reserve(capacity_bytes: int) -> int:
    """5 % of the filesystem's capacity or 10 GiB, whichever is smaller."""
    return min(int(capacity_bytes * _RESERVE_FRACTION), _RESERVE_CAP)


def choose_chunk_bytes(remaining: int, connections: int, max_chunk_bytes: int) -> int:
    """Range size for a split fetch: about 8 ranges per connection, 1 MiB to the max."""
    if connections <= 0:
        raise ValueError("connections must be positive")
    want = math.ceil(remaining / (connections * 8)) if remaining > 0 else max_chunk_bytes
    return max(min(want, max_chunk_bytes), min(MiB, max_chunk_bytes))


def chunk_ranges(start: int, total: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Consecutive inclusive ``(first, last)`` byte ranges covering ``[start, total)``."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    if start < 0 or start > total:
        raise ValueError(f"start {start} outside 0..{total}")
    return [(s, min(s + chunk_bytes, total) - 1) for s in range(start, total, chunk_bytes)]


@dataclass(frozen=True)
class BlobPlan:
    """One blob of the image and how much of it containerd holds already."""

    role: str
    descriptor: BlobDescriptor
    committed: bool = False
    ingest_offset_bytes: int = 0

    @property
    def remaining_bytes(self) -> int:
        if self.committed:
            return 0
        return self.descriptor.size - min(self.ingest_offset_bytes, self.descriptor.size)


@dataclass(frozen=True)
class SpacePlan:
    """The free-space check: ``required = download + unpack estimate + reserve``."""

    path: Path
    capacity_bytes: int
    available_bytes: int
    download_bytes: int
    unpack_estimate_bytes: int
    reserve_bytes: int
    unpack_factor: float

    @property
    def required_bytes(self) -> int:
        return self.download_bytes + self.unpack_estimate_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes >= self.required_bytes

    @property
    def shortfall_bytes(self) -> int:
        return max(0, self.required_bytes - self.available_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "capacity_bytes": self.capacity_bytes,
            "available_bytes": self.available_bytes,
            "download_bytes": self.download_bytes,
            "unpack_estimate_bytes": self.unpack_estimate_bytes,
            "unpack_factor": self.unpack_factor,
            "reserve_bytes": self.reserve_bytes,
            "required_bytes": self.required_bytes,
            "fits": self.fits,
        }

    def describe(self) -> str:
        return (
            f"{format_bytes(self.required_bytes)} needed on {self.path} "
            f"({format_bytes(self.download_bytes)} to download + "
            f"{format_bytes(self.unpack_estimate_bytes)} unpacked, estimated as "
            f"{self.unpack_factor:g}× the compressed layers, + "
            f"{format_bytes(self.reserve_bytes)} reserve), "
            f"{format_bytes(self.available_bytes)} available"
        )


def plan_space(
    blobs: Sequence[BlobPlan],
    filesystem: FilesystemUsage,
    *,
    reserve_bytes: int | None = None,
    unpack_factor: float = DEFAULT_UNPACK_FACTOR,
) -> SpacePlan:
    """Whether the pull fits: compressed bytes not yet in the content store, plus every
    layer's unpacked estimate (compressed size × ``unpack_factor``, × 1 for plain-tar
    layers), plus the reserve (default :func:`default_reserve`)."""
    unpack = 0
    for b in blobs:
        if b.role == "layer":
            factor = unpack_factor if b.descriptor.compressed else 1.0
            unpack += math.ceil(b.descriptor.size * factor)
    return SpacePlan(
        path=filesystem.path,
        capacity_bytes=filesystem.capacity_bytes,
        available_bytes=filesystem.available_bytes,
        download_bytes=sum(b.remaining_bytes for b in blobs),
        unpack_estimate_bytes=unpack,
        reserve_bytes=(
            default_reserve(filesystem.capacity_bytes) if reserve_bytes is None else reserve_bytes
        ),
        unpack_factor=unpack_factor,
    )


def backoff_seconds(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff before retry ``attempt`` (1-based): 0.5 s, 1 s, 2 s … 30 s."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


# --- options and results -------------------------------------------------------------


@dataclass(frozen=True)
class PullOptions:
    """Tuning knobs; the CLI's flags map onto these one to one."""

    connections: int = 4
    split_threshold_bytes: int = 64 * MiB
    max_chunk_bytes: int = 8 * MiB
    stall_timeout_seconds: float = 300.0
    retries: int = 5
    reserve_bytes: int | None = None
    gc: bool = True
    unpack_factor: float = DEFAULT_UNPACK_FACTOR
    platform: Platform = field(default_factory=host_platform)
    lease_expire_seconds: float = LEASE_EXPIRE_SECONDS
    runtime_wait_seconds: float = 60.0
    progress_interval_seconds: float = 0.5
    verify_digest: bool = True
    backoff_base_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.connections < 1 or self.connections > 32:
            raise UsageError("must be between 1 and 32", option="--connections")
        if self.stall_timeout_seconds <= 0:
            raise UsageError("must be more than 0", option="--stall-timeout")
        if self.retries < 0:
            raise UsageError("must be 0 or more", option="--retries")
        if self.unpack_factor < 1:
            raise UsageError("must be at least 1", option="--unpack-factor")
        if self.reserve_bytes is not None and self.reserve_bytes < 0:
            raise UsageError("must be 0 or more", option="--reserve")


@dataclass(frozen=True)
class PullResult:
    reference: str
    manifest_digest: str
    image_id: str
    total_bytes: int
    fetched_bytes: int
    fetch_seconds: float
    unpack_seconds: float
    total_seconds: float
    retries: int
    already_present: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.reference,
            "manifest_digest": self.manifest_digest,
            "image_id": self.image_id,
            "total_bytes": self.total_bytes,
            "fetched_bytes": self.fetched_bytes,
            "fetch_seconds": round(self.fetch_seconds, 3),
            "unpack_seconds": round(self.unpack_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "retries": self.retries,
            "already_present": self.already_present,
        }


# --- progress ------------------------------------------------------------------------


class _Progress:
    """Offsets per blob (as committed to containerd) and a thread that reports them."""

    def __init__(self, emit: EventSink, interval: float) -> None:
        self._emit = emit
        self._interval = interval
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self._roles: dict[str, str] = {}
        self._reported: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._last_t = 0.0
        self._last_total = 0
        self._overall_rate = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fetched_bytes = 0
        self.retries = 0

    def add(self, role: str, digest: str, size: int, offset: int) -> None:
        with self._lock:
            self._sizes[digest] = size
            self._offsets[digest] = offset
            self._roles[digest] = role

    def set(self, digest: str, offset: int) -> None:
        with self._lock:
            self._offsets[digest] = offset

    def received(self, n: int) -> None:
        with self._lock:
            self.fetched_bytes += n

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def total(self) -> int:
        return sum(self._sizes.values())

    def start(self) -> None:
        with self._lock:
            self._last_t = time.monotonic()
            self._last_total = sum(self._offsets.values())
            self._reported = dict(self._offsets)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pull-progress")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()

    def tick(self, *, final: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            dt = max(now - self._last_t, 1e-6)
            offsets = dict(self._offsets)
            total_now = sum(offsets.values())
            inst = (total_now - self._last_total) / dt
            # exponential smoothing with a ~3 s memory: steady, but follows real changes
            alpha = min(1.0, dt / 3.0)
            self._overall_rate = (
                inst if self._overall_rate == 0 else alpha * inst + (1 - alpha) * self._overall_rate
            )
            self._last_t, self._last_total = now, total_now
            events: list[dict[str, Any]] = []
            image_total = sum(self._sizes.values())
            remaining = image_total - total_now
            eta = remaining / self._overall_rate if self._overall_rate > 0 else None
            for digest, off in offsets.items():
                before = self._reported.get(digest, 0)
                r_inst = (off - before) / dt
                prev = self._rates.get(digest, 0.0)
                rate = r_inst if prev == 0 else alpha * r_inst + (1 - alpha) * prev
                self._rates[digest] = rate
                if off == before and not final:
                    continue
                self._reported[digest] = off
                events.append(
                    {
                        "event": "progress",
                        "layer": digest,
                        "role": self._roles[digest],
                        "offset_bytes": off,
                        "total_bytes": self._sizes[digest],
                        "rate_bytes_per_second": round(rate),
                        "image_offset_bytes": total_now,
                        "image_total_bytes": image_total,
                        "image_rate_bytes_per_second": round(self._overall_rate),
                        "eta_seconds": None if eta is None else round(eta, 1),
                    }
                )
        for e in events:
            self._emit(e)


# --- errors inside a blob fetch ------------------------------------------------------


class _Cancelled(Exception):
    """Another part of the same blob fetch failed; stop quietly."""


def _runtime_transient(e: BaseException) -> bool:
    if isinstance(e, RuntimeUnavailable):
        return True
    return isinstance(e, RuntimeCallFailed) and e.code in _RUNTIME_TRANSIENT


def _network_reason(e: BaseException) -> str | None:
    """``stall`` / ``dropped`` / ``error`` for failures worth a retry, else None."""
    if isinstance(e, httpx.TimeoutException):
        return "stall" if isinstance(e, httpx.ReadTimeout) else "dropped"
    if isinstance(e, httpx.TransportError):
        return "dropped"
    if (
        isinstance(e, RegistryError)
        and not isinstance(e, DigestMismatch)
        and (e.status is None or e.status >= 500 or e.status in (408, 429))
    ):
        return "error"
    return None


class _Connection:
    """Retry bookkeeping for one logical connection: consecutive failures without a new
    byte, and when the last byte arrived (for the stall message)."""

    def __init__(self, job: _BlobJob) -> None:
        self.job = job
        self.failures = 0
        self.last_byte = time.monotonic()

    def got(self, n: int) -> None:
        self.failures = 0
        self.last_byte = time.monotonic()
        self.job.puller.progress.received(n)

    def failed(self, e: BaseException, offset: int) -> None:
        """Sleep before the next try, or raise when the retries are used up."""
        reason = _network_reason(e)
        if reason is None:
            raise e
        job, opts = self.job, self.job.puller.options
        self.failures += 1
        silent = time.monotonic() - self.last_byte
        where = f"{job.role} {job.digest} at offset {offset} of {job.size}"
        if self.failures > opts.retries:
            if reason == "stall":
                raise PullStalled(
                    f"no new byte for {silent:.0f}s on {where} "
                    f"(--stall-timeout {opts.stall_timeout_seconds:g}s, {opts.retries} retries); "
                    "run mlnode pull again to resume from the committed offset"
                ) from e
            raise RegistryError(
                f"{reason} on {where} after {opts.retries} retries: {_describe(e)}; "
                "run mlnode pull again to resume",
                url=getattr(e, "url", None) or _request_url(e),
                status=getattr(e, "status", None),
            ) from e
        delay = backoff_seconds(self.failures, base=opts.backoff_base_seconds)
        job.puller.progress.retried()
        job.puller.emit(
            {
                "event": "retry",
                "layer": job.digest,
                "reason": reason,
                "offset_bytes": offset,
                "attempt": self.failures,
                "retries": opts.retries,
                "silent_seconds": round(silent, 1),
                "backoff_seconds": delay,
                "message": _describe(e),
            }
        )
        if job.cancelled.wait(delay):
            raise _Cancelled()


def _describe(e: BaseException) -> str:
    text = str(e)
    name = type(e).__name__
    return f"{name}: {text}" if text and text != name else name


def _request_url(e: BaseException) -> str | None:
    if isinstance(e, httpx.RequestError):
        with contextlib.suppress(RuntimeError):
            return str(e.request.url)
    return None


# --- one blob ------------------------------------------------------------------------


class _BlobJob:
    """Fetch one blob into the content store, resuming and retrying as needed."""

    def __init__(self, puller: Puller, blob: BlobPlan) -> None:
        self.puller = puller
        self.role = blob.role
        self.descriptor = blob.descriptor
        self.digest = blob.descriptor.digest
        self.size = blob.descriptor.size
        self.ref = ingest_ref(blob.role, self.digest)
        self.cancelled = threading.Event()

    # the byte sources: ordered bytes of the blob from a position --------------------

    def _single(self, start: int) -> Iterator[bytes]:
        reg, pos = self.puller.registry, start
        conn = _Connection(self)
        while pos < self.size:
            try:
                with reg.open_blob(self.puller.reference, self.digest, start=pos) as body:
                    for data in body.iter_bytes():
                        if self.cancelled.is_set():
                            raise _Cancelled()
                        if pos + len(data) > self.size:
                            raise DigestMismatch(
                                f"registry sent more than the {self.size} bytes the manifest "
                                f"gives for {self.digest}",
                                url=body.url,
                            )
                        conn.got(len(data))
                        pos += len(data)
                        yield data
                if pos < self.size:
                    raise httpx.RemoteProtocolError(f"body ended at byte {pos} of {self.size}")
            except (httpx.HTTPError, RegistryError) as e:
                conn.failed(e, pos)

    def _chunk(self, first: int, last: int) -> bytes:
        reg = self.puller.registry
        buf = bytearray()
        want = last - first + 1
        conn = _Connection(self)
        while len(buf) < want:
            if self.cancelled.is_set():
                raise _Cancelled()
            try:
                with reg.open_blob(
                    self.puller.reference, self.digest, start=first + len(buf), end=last
                ) as body:
                    for data in body.iter_bytes():
                        if self.cancelled.is_set():
                            raise _Cancelled()
                        conn.got(len(data))
                        buf += data
                if len(buf) < want:
                    raise httpx.RemoteProtocolError(
                        f"range ended at byte {first + len(buf)} of {first}-{last}"
                    )
            except (httpx.HTTPError, RegistryError) as e:
                conn.failed(e, first + len(buf))
        return bytes(buf)

    def _split(self, start: int) -> Iterator[bytes]:
        """Ranges fetched by ``connections`` threads, handed out in order.

        At most ``2 × connections`` ranges are fetched or buffered beyond the one being
        written, so memory stays below ``2 × connections × chunk`` bytes.
        """
        opts = self.puller.options
        chunk = choose_chunk_bytes(self.size - start, opts.connections, opts.max_chunk_bytes)
        ranges = chunk_ranges(start, self.size, chunk)
        window = 2 * opts.connections
        cond = threading.Condition()
        results: dict[int, bytes] = {}
        state: dict[str, Any] = {"next": 0, "written": 0, "error": None, "stop": False}

        def worker() -> None:
            while True:
                with cond:
                    while (
                        not state["stop"]
                        and state["error"] is None
                        and state["next"] < len(ranges)
                        and state["next"] >= state["written"] + window
                    ):
                        cond.wait()
                    if state["stop"] or state["error"] is not None or state["next"] >= len(ranges):
                        return
                    index = state["next"]
                    state["next"] += 1
                try:
                    data = self._chunk(*ranges[index])
                except _Cancelled:
                    return
                except BaseException as e:  # handed to the writer thread, which raises it
                    with cond:
                        if state["error"] is None:
                            state["error"] = e
                        cond.notify_all()
                    return
                with cond:
                    results[index] = data
                    cond.notify_all()

        threads = [
            threading.Thread(target=worker, daemon=True, name=f"range-{self.digest[7:15]}-{i}")
            for i in range(min(opts.connections, len(ranges)))
        ]
        for t in threads:
            t.start()
        try:
            for index in range(len(ranges)):
                with cond:
                    while index not in results and state["error"] is None:
                        cond.wait()
                    if index not in results:
                        raise state["error"]
                    data = results.pop(index)
                    state["written"] = index + 1
                    cond.notify_all()
                yield data
        finally:
            with cond:
                state["stop"] = True
                cond.notify_all()

    def _source(self, start: int) -> Iterator[bytes]:
        opts = self.puller.options
        if opts.connections > 1 and self.size - start >= opts.split_threshold_bytes:
            return self._split(start)
        return self._single(start)

    # the writer side ----------------------------------------------------------------

    def _open_writer(self) -> ContentWriter | None:
        """Open (or resume) the ingest; None if the blob is in the store already.

        While containerd is restarting, or another writer holds the ref, keep trying for
        ``runtime_wait_seconds``.
        """
        p = self.puller
        deadline = time.monotonic() + p.options.runtime_wait_seconds
        announced = False
        while True:
            try:
                return p.containerd.writer(
                    self.ref,
                    total_bytes=self.size,
                    expected_digest=self.digest,
                    lease_id=p.lease_id,
                    chunk_bytes=_WRITE_MESSAGE_BYTES,
                )
            except AlreadyExists:
                return None
            except (RuntimeUnavailable, RuntimeCallFailed) as e:
                if not _runtime_transient(e) or time.monotonic() > deadline:
                    if "locked" in str(e):
                        raise RuntimeUnavailable(
                            f"ingest {self.ref} is locked by another writer for more than "
                            f"{p.options.runtime_wait_seconds:g}s (is another pull of this "
                            "image running?)",
                            endpoint=p.containerd.endpoint,
                        ) from e
                    raise
                if not announced:
                    announced = True
                    p.emit(
                        {
                            "event": "retry",
                            "layer": self.digest,
                            "reason": "runtime",
                            "offset_bytes": None,
                            "attempt": 1,
                            "retries": None,
                            "silent_seconds": None,
                            "backoff_seconds": 0.5,
                            "message": str(e),
                        }
                    )
                if self.cancelled.wait(0.5):
                    raise _Cancelled() from e

    def run(self) -> None:
        p = self.puller
        source: Iterator[bytes] | None = None
        pos = -1
        hasher: Any = None
        pending = b""
        try:
            while True:
                writer = self._open_writer()
                if writer is None:
                    p.progress.set(self.digest, self.size)
                    p.attach_content(self.digest)
                    return
                try:
                    offset = writer.offset_bytes
                    if offset > self.size:
                        writer.restart_from_zero()
                        offset = 0
                    if source is not None and pos <= offset <= pos + len(pending):
                        # containerd kept what it acknowledged (and maybe a bit more)
                        if hasher is not None:
                            hasher.update(pending[: offset - pos])
                        pending = pending[offset - pos :]
                        pos = offset
                    elif source is None or offset != pos:
                        if source is not None:
                            with contextlib.suppress(Exception):
                                source.close()  # type: ignore[attr-defined]
                        pos, pending = offset, b""
                        hasher = (
                            hashlib.sha256() if offset == 0 and p.options.verify_digest else None
                        )
                        source = self._source(offset) if offset < self.size else iter(())
                    p.progress.set(self.digest, pos)
                    while True:
                        if not pending:
                            pending = next(source, b"")
                            if not pending:
                                break
                        writer.write(pending)
                        if hasher is not None:
                            hasher.update(pending)
                        pos += len(pending)
                        pending = b""
                        p.progress.set(self.digest, pos)
                    self._commit(writer, hasher)
                    p.progress.set(self.digest, self.size)
                    return
                except (RuntimeUnavailable, RuntimeCallFailed) as e:
                    if not _runtime_transient(e):
                        raise
                    # containerd went away mid-write: reopen and continue from its offset
                    p.emit(
                        {
                            "event": "retry",
                            "layer": self.digest,
                            "reason": "runtime",
                            "offset_bytes": pos,
                            "attempt": 1,
                            "retries": None,
                            "silent_seconds": None,
                            "backoff_seconds": 0.5,
                            "message": str(e),
                        }
                    )
                    if self.cancelled.wait(0.5):
                        raise _Cancelled() from e
                finally:
                    writer.close()
        finally:
            self.cancelled.set()
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()  # type: ignore[attr-defined]

    def _commit(self, writer: ContentWriter, hasher: Any) -> None:
        p = self.puller
        if hasher is not None:
            actual = "sha256:" + hasher.hexdigest()
            if self.digest.startswith("sha256:") and actual != self.digest:
                writer.close()
                p.containerd.abort(self.ref)
                raise DigestMismatch(
                    f"{self.role} {self.digest}: the registry's bytes hash to {actual}; "
                    "the partial download was discarded",
                    url=p.blob_url(self.digest),
                )
        try:
            writer.commit(labels=p.commit_labels(self.role, self.digest))
        except AlreadyExists:
            pass
        except RuntimeCallFailed as e:
            if e.code == "FAILED_PRECONDITION":
                writer.close()
                p.containerd.abort(self.ref)
                raise DigestMismatch(
                    f"{self.role} {self.digest}: containerd rejected the bytes ({e}); "
                    "the partial download was discarded",
                    url=p.blob_url(self.digest),
                ) from e
            raise
        p.attach_content(self.digest)


# --- the pull ------------------------------------------------------------------------


class Puller:
    """Carries out one pull. ``filesystem`` measures the image filesystem (tests inject
    a small fake one); ``free_space`` runs GC when the image does not fit."""

    def __init__(
        self,
        *,
        registry: RegistryClient,
        containerd: ContainerdClient,
        cri: CriClient,
        filesystem: Callable[[], FilesystemUsage],
        options: PullOptions | None = None,
        emit: EventSink | None = None,
        free_space: FreeSpace | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.containerd = containerd
        self.cri = cri
        self.filesystem = filesystem
        self.options = options or PullOptions()
        self._emit = emit or (lambda _e: None)
        self._emit_lock = threading.Lock()
        self.free_space = free_space
        self.clock = clock
        self.progress = _Progress(self.emit, self.options.progress_interval_seconds)
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

    def _check_space(self, plans: Sequence[BlobPlan], protect: Sequence[str]) -> SpacePlan:
        opts = self.options
        space = plan_space(
            plans,
            self.filesystem(),
            reserve_bytes=opts.reserve_bytes,
            unpack_factor=opts.unpack_factor,
        )
        self.emit({"event": "space", **space.to_json()})
        if space.fits:
            return space
        freed = 0
        if opts.gc and self.free_space is not None:
            self.emit({"event": "phase", "phase": "gc", "elapsed_seconds": 0.0})
            freed = self.free_space(space.required_bytes, protect)
            space = plan_space(
                plans,
                self.filesystem(),
                reserve_bytes=opts.reserve_bytes,
                unpack_factor=opts.unpack_factor,
            )
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
            job = _BlobJob(
                self, BlobPlan(role, BlobDescriptor("application/json", digest, len(raw)))
            )
            writer = job._open_writer()
            if writer is None:
                self.attach_content(digest)
                continue
            try:
                if writer.offset_bytes:
                    writer.restart_from_zero()
                writer.write(raw)
                job._commit(writer, hashlib.sha256(raw))
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
        jobs = [_BlobJob(self, b) for b in todo]
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
                real = [e for e in errors if not isinstance(e, _Cancelled)]
                raise (real or errors)[0]  # type: ignore[misc]

    def _unpack(self, ref: Reference) -> str:
        started = self.clock()
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(5.0):
                self.emit(
                    {
                        "event": "phase",
                        "phase": "unpacking",
                        "elapsed_seconds": round(self.clock() - started, 1),
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

    def pull(self, image: str) -> PullResult:
        """Pull ``image``; see the module docstring. Emits events through ``emit``."""
        t0 = self.clock()
        self.reference = ref = parse_reference(image)
        self.emit({"event": "phase", "phase": "resolving", "elapsed_seconds": 0.0})
        target = self.registry.pull_target(ref, self.options.platform)
        self._target = target
        manifest = target.manifest
        total = manifest.blobs_size
        present_id = self._present(ref, manifest.digest)
        if present_id is not None:
            result = PullResult(
                reference=str(ref),
                manifest_digest=manifest.digest,
                image_id=present_id,
                total_bytes=total,
                fetched_bytes=0,
                fetch_seconds=0.0,
                unpack_seconds=0.0,
                total_seconds=self.clock() - t0,
                retries=0,
                already_present=True,
            )
            self.emit({"event": "done", **result.to_json()})
            return result
        self._ensure_lease(manifest.digest)
        self._labels = self._labels_for(target)
        plans = self._blob_plans(target)
        for b in plans:
            if b.committed:
                self.attach_content(b.descriptor.digest)
        self.emit(
            {
                "event": "resolved",
                "image": str(ref),
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
        )
        protect = (str(ref), f"{ref.name}@{manifest.digest}", manifest.config.digest)
        self._check_space(plans, protect)

        fetch_start = self.clock()
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
        fetch_seconds = self.clock() - fetch_start

        unpack_start = self.clock()
        self._unpack(ref)
        unpack_seconds = self.clock() - unpack_start
        status = self.cri.image_status(str(ref))
        image_id = status.id if status is not None else ""
        if image_id and image_id != manifest.config.digest:
            self.emit(
                {
                    "event": "warning",
                    "message": f"{ref} now points at image {image_id}, not the "
                    f"{manifest.config.digest} fetched (the tag moved during the pull)",
                }
            )
        with contextlib.suppress(MlnodeError):
            self.containerd.delete_lease(self.lease_id)
        result = PullResult(
            reference=str(ref),
            manifest_digest=manifest.digest,
            image_id=image_id,
            total_bytes=total,
            fetched_bytes=self.progress.fetched_bytes,
            fetch_seconds=fetch_seconds,
            unpack_seconds=unpack_seconds,
            total_seconds=self.clock() - t0,
            retries=self.progress.retries,
        )
        self.emit({"event": "done", **result.to_json()})
        return result


# --- the GC hook ---------------------------------------------------------------------


def gc_free_space(
    cri: CriClient,
    containerd: ContainerdClient,
    image_fs: Path,
    *,
    state_file: Path | None,
    emit: EventSink,
    measure: Callable[[], FilesystemUsage] | None = None,
) -> FreeSpace:
    """A :data:`FreeSpace` hook running mlnode's ml GC policy against the live runtime.

    The policy's target is exactly the bytes the pull needs (headroom = required bytes,
    thresholds out of the way); the image being pulled is protected by name, digest and
    id (``keep_patterns``), and so is the runtime's sandbox image; images whose blobs are
    being downloaded are protected by the GC itself (``being_pulled``). ``measure`` is the
    pull's own measure of the image filesystem, so both agree on what fits.
    """
    from mlnode.gc import GcPolicy, plan_ml
    from mlnode.ops.gc_runtime import CriGcRuntime, collect, execute
    from mlnode.ops.image_state import ImageStateFile

    def run(required: int, protect: Sequence[str]) -> int:
        runtime = CriGcRuntime(cri, containerd, image_fs, measure=measure)
        now = datetime.now(UTC)
        sandbox = runtime.sandbox_image()
        keep = (*protect, sandbox) if sandbox else tuple(protect)
        collected = collect(
            runtime,
            now=now,
            state_file=ImageStateFile(state_file) if state_file is not None else None,
        )
        policy = GcPolicy(
            high_threshold_percent=100,
            low_threshold_percent=99,
            headroom_bytes=required,
            keep_patterns=keep,
        )
        the_plan = plan_ml(collected.images, collected.filesystem, policy, now=now)
        result = execute(runtime, the_plan, dry_run=False)
        emit(
            {
                "event": "gc",
                "bytes_to_free": the_plan.bytes_to_free,
                "bytes_freed": result.bytes_freed,
                "removed": [r.id for r in result.removed],
                "explanations": list(the_plan.explanations),
            }
        )
        return result.bytes_freed

    return run
