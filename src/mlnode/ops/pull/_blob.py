"""One blob into the content store: ranged fetches, stall and drop retries with backoff,
resume from the ingest's committed offset, digest check, commit.

Which failures are retried is their type (:class:`mlnode.errors.Retryable`): the
registry's RegistryUnavailable family with backoff and a retry budget per connection,
the runtime's RuntimeUnavailable / RuntimeCallInterrupted by reopening the writer. Every
time read and every wait goes through the puller's :class:`~mlnode.ports.Clock`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlnode.errors import (
    DigestMismatch,
    PullStalled,
    RegistryConnectionLost,
    RegistryError,
    RegistryStalled,
    RegistryUnavailable,
    Retryable,
    RuntimeError_,
    RuntimeUnavailable,
)
from mlnode.ops.pull._plan import (
    WRITE_MESSAGE_BYTES,
    BlobPlan,
    backoff_seconds,
    choose_chunk_bytes,
    chunk_ranges,
    ingest_ref,
)
from mlnode.ports import ContentIngest
from mlnode.runtime.errors import AlreadyExists, FailedPrecondition, IngestLocked

if TYPE_CHECKING:
    from mlnode.ops.pull._puller import Puller

__all__ = ["BlobJob", "Cancelled"]


class Cancelled(Exception):
    """Another part of the same fetch failed; stop quietly.

    Control flow inside the puller only, so not in the :mod:`mlnode.errors` tree: it
    never leaves :meth:`Puller.pull`, which raises the failure that caused it instead.
    """


def _retry_reason(e: RegistryUnavailable) -> str:
    """The ``reason`` of a ``retry`` event, by the failure's type."""
    if isinstance(e, RegistryStalled):
        return "stall"
    if isinstance(e, RegistryConnectionLost):
        return "dropped"
    return "error"


class _Connection:
    """Retry bookkeeping for one logical connection: consecutive failures without a new
    byte, and when the last byte arrived (for the stall message)."""

    def __init__(self, job: BlobJob) -> None:
        self.job = job
        self.clock = job.puller.clock
        self.failures = 0
        self.last_byte = self.clock.monotonic()

    def got(self, n: int) -> None:
        self.failures = 0
        self.last_byte = self.clock.monotonic()
        self.job.puller.progress.received(n)

    def failed(self, e: RegistryUnavailable, offset: int) -> None:
        """Sleep before the next try, or raise when the retries are used up."""
        reason = _retry_reason(e)
        job, opts = self.job, self.job.puller.options
        self.failures += 1
        silent = self.clock.monotonic() - self.last_byte
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
                url=e.url,
                status=e.status,
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
        if self.clock.wait(job.cancelled, delay):
            raise Cancelled()


def _describe(e: BaseException) -> str:
    if isinstance(e, (RegistryStalled, RegistryConnectionLost)):
        return e.detail  # the network failure, as the registry client named it
    text = str(e)
    name = type(e).__name__
    return f"{name}: {text}" if text and text != name else name


# --- one blob ------------------------------------------------------------------------


class BlobJob:
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
                            raise Cancelled()
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
                    raise RegistryConnectionLost(f"body ended at byte {pos} of {self.size}")
            except RegistryUnavailable as e:
                conn.failed(e, pos)

    def _chunk(self, first: int, last: int) -> bytes:
        reg = self.puller.registry
        buf = bytearray()
        want = last - first + 1
        conn = _Connection(self)
        while len(buf) < want:
            if self.cancelled.is_set():
                raise Cancelled()
            try:
                with reg.open_blob(
                    self.puller.reference, self.digest, start=first + len(buf), end=last
                ) as body:
                    for data in body.iter_bytes():
                        if self.cancelled.is_set():
                            raise Cancelled()
                        conn.got(len(data))
                        buf += data
                if len(buf) < want:
                    raise RegistryConnectionLost(
                        f"range ended at byte {first + len(buf)} of {first}-{last}"
                    )
            except RegistryUnavailable as e:
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
                except Cancelled:
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

    def open_writer(self) -> ContentIngest | None:
        """Open (or resume) the ingest; None if the blob is in the store already.

        While containerd is restarting, or another writer holds the ref, keep trying for
        ``runtime_wait_seconds``.
        """
        p = self.puller
        deadline = p.clock.monotonic() + p.options.runtime_wait_seconds
        announced = False
        while True:
            try:
                return p.containerd.writer(
                    self.ref,
                    total_bytes=self.size,
                    expected_digest=self.digest,
                    lease_id=p.lease_id,
                    chunk_bytes=WRITE_MESSAGE_BYTES,
                )
            except AlreadyExists:
                return None
            except RuntimeError_ as e:
                if not isinstance(e, Retryable) or p.clock.monotonic() > deadline:
                    if isinstance(e, IngestLocked):
                        raise RuntimeUnavailable(
                            f"ingest {self.ref} is locked by another writer for more than "
                            f"{p.options.runtime_wait_seconds:g}s (is another pull of this "
                            "image running?)",
                            endpoint=p.containerd.endpoint,
                        ) from e
                    raise
                if not announced:
                    announced = True
                    p.emit(self.runtime_retry_event(None, e))
                if p.clock.wait(self.cancelled, 0.5):
                    raise Cancelled() from e

    def runtime_retry_event(self, offset_bytes: int | None, e: Exception) -> dict[str, Any]:
        """The ``retry`` event of a wait for the runtime (a 0.5 s pause, then again)."""
        return {
            "event": "retry",
            "layer": self.digest,
            "reason": "runtime",
            "offset_bytes": offset_bytes,
            "attempt": 1,
            "retries": None,
            "silent_seconds": None,
            "backoff_seconds": 0.5,
            "message": str(e),
        }

    def run(self) -> None:
        p = self.puller
        source: Iterator[bytes] | None = None
        pos = -1
        hasher: Any = None
        pending = b""
        try:
            while True:
                writer = self.open_writer()
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
                    self.commit(writer, hasher)
                    p.progress.set(self.digest, self.size)
                    return
                except RuntimeError_ as e:
                    if not isinstance(e, Retryable):
                        raise
                    # containerd went away mid-write: reopen and continue from its offset
                    p.emit(self.runtime_retry_event(pos, e))
                    if p.clock.wait(self.cancelled, 0.5):
                        raise Cancelled() from e
                finally:
                    writer.close()
        finally:
            self.cancelled.set()
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()  # type: ignore[attr-defined]

    def commit(self, writer: ContentIngest, hasher: Any) -> None:
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
        except FailedPrecondition as e:
            writer.close()
            p.containerd.abort(self.ref)
            raise DigestMismatch(
                f"{self.role} {self.digest}: containerd rejected the bytes ({e}); "
                "the partial download was discarded",
                url=p.blob_url(self.digest),
            ) from e
        p.attach_content(self.digest)
