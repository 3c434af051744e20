"""One blob being fetched from upstream into the cache, independent of client connections.

A :class:`BlobFetch` splits what the cache file still lacks into chunks and lets
``connections`` workers fetch them with ranged GETs, lowest offset first, so the contiguous
prefix — what clients can be sent — grows steadily. Clients come and go (:meth:`wait_for`);
the fetch carries on without them, which is what makes a cancelled pull's retry cheap.

A connection that stops sending bytes (no byte for ``stall_seconds``) or is cut is
reopened from its offset; ``retries`` reconnects in a row without a byte of progress, with
exponential backoff, and the fetch fails with the upstream's status — clients waiting are
answered at once, never left to stall. The sha256 of the prefix is computed as it grows (in
a thread: hashlib releases the GIL), and the blob's last byte is held back until it
matches, so a corrupt blob is never handed over whole, nor kept as complete.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import mmap
import random
import time
from collections.abc import Callable, Mapping

import aiohttp

from mlnode.blobcache import BlobFile
from mlnode.mirror._splice import SPLICE_SUPPORTED, SpliceUnavailable, spliced_range
from mlnode.mirror._upstream import Upstream, UpstreamFailure

__all__ = ["BlobFetch", "FetchSettings"]

log = logging.getLogger("mlnode.mirror")

_HASH_PIECE_BYTES = 8 * 1024 * 1024
# The map is rewritten once at least 256 KiB arrived and 25 ms passed, or 0.5 s passed,
# without an fsync: a kill -9 loses no byte the kernel has (the map's "written" ranges are
# trusted on the same boot), so a killed mirror re-fetches about 25 ms of bytes. With
# 1 MiB the kill -9 runtime test measured 1.021-1.028 x from the registry (limit 1.02);
# 256 KiB: 1.010-1.017. Durable maps (after an fdatasync of the data, for a power loss)
# are written every 2 s or 64 MiB: an fdatasync 40 times a second slowed containerd's own
# writes on the same disk.
_CHECKPOINT_BYTES = 256 * 1024
_CHECKPOINT_MIN_SECONDS = 0.025
_CHECKPOINT_MAX_SECONDS = 0.5
_DURABLE_BYTES = 64 * 1024 * 1024
_DURABLE_SECONDS = 2.0
_NOTIFY_BYTES = 1024 * 1024


class FetchSettings:
    def __init__(
        self,
        *,
        chunk_bytes: int,
        connections: int,
        stall_seconds: float,
        retries: int,
        backoff_seconds: float = 0.25,
        backoff_max_seconds: float = 8.0,
    ) -> None:
        self.chunk_bytes = chunk_bytes
        self.connections = connections
        self.stall_seconds = stall_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds


class BlobFetch:
    """Fetch ``digest`` of ``repository`` into ``file``; see the module docstring."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        repository: str,
        digest: str,
        file: BlobFile,
        auth_headers: Mapping[str, str],
        settings: FetchSettings,
        on_bytes: Callable[[int], None] = lambda n: None,
        on_retry: Callable[[str], None] = lambda kind: None,
        on_error: Callable[[str], None] = lambda label: None,
    ) -> None:
        self.upstream = upstream
        self.registry = upstream.registry
        self.repository = repository
        self.digest = digest
        self.file = file
        self.size_bytes = file.size_bytes
        self.settings = settings
        self._auth = dict(auth_headers)
        self._on_bytes = on_bytes
        self._on_retry = on_retry
        self._on_error = on_error
        self.image: str | None = None
        self.state = "complete" if file.complete else "fetching"
        self.error: UpstreamFailure | None = None
        self.upstream_bytes = 0
        self.served_bytes = 0
        self.clients = 0
        self.retries = 0
        self.started_monotonic = time.monotonic()
        self.finished_monotonic: float | None = None
        self._hashed = 0
        self._hasher = hashlib.sha256()
        self._verified = file.complete
        self._changed = asyncio.Event()
        self._queue: collections.deque[tuple[int, int]] = collections.deque()
        self._ranged = True
        self._task: asyncio.Task[None] | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._active_workers = 0
        self._persisting: asyncio.Future[None] | None = None
        self._since_durable = 0
        self._last_durable = time.monotonic()
        self._notified_prefix = 0
        self._notified_at = 0.0
        self._first_offset = 0

    # -- what clients see -----------------------------------------------------------------

    @property
    def contiguous_bytes(self) -> int:
        return self.file.contiguous_bytes

    def servable_bytes(self) -> int:
        """Bytes from 0 a client may be sent: all of them once verified, else all but the
        last (held back until the sha256 matched)."""
        if self._verified:
            return self.size_bytes
        return min(self.file.contiguous_bytes, self.size_bytes - 1)

    async def wait_for(self, offset: int) -> int:
        """Wait until more than ``offset`` bytes are servable (or the blob is complete);
        the servable count. Raises :class:`UpstreamFailure` once the fetch has failed."""
        while True:
            if self.error is not None:
                raise self.error
            avail = self.servable_bytes()
            if avail > offset or avail >= self.size_bytes:
                return avail
            ev = self._changed
            await ev.wait()

    def _notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    def rate_bytes_per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def connections(self) -> int:
        return self._active_workers

    # -- running --------------------------------------------------------------------------

    def start(self, first: aiohttp.ClientResponse | None = None, first_offset: int = 0) -> None:
        """Start the fetch; ``first`` is an already-open response for the chunk at
        ``first_offset`` (the first missing byte)."""
        if self.state == "complete":
            if first is not None:
                first.release()
            return
        self._first_offset = first_offset
        self._task = asyncio.create_task(self._run(first), name=f"fetch {self.digest[:19]}")

    async def done(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def cancel(self) -> None:
        """Stop (mirror shutdown): what arrived is checkpointed, the rest resumes later."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, first: aiohttp.ClientResponse | None) -> None:
        step = self.settings.chunk_bytes
        for start, end in self.file.missing():
            for a in range(start, end, step):
                self._queue.append((a, min(a + step, end)))
        if first is not None and (not self._queue or self._queue[0][0] != self._first_offset):
            first.release()  # not the chunk the queue starts with: ask again
            first = None
        count = min(self.settings.connections, len(self._queue))
        if first is not None and first.status == 200:
            self._ranged = False  # the upstream ignores Range: one stream from 0
            count = 1
        hasher = asyncio.create_task(self._hash_loop())
        workers = [
            asyncio.create_task(self._worker(first if i == 0 else None))
            for i in range(max(1, count))
        ]
        try:
            await asyncio.gather(*workers)
            if self.error is None and self.file.missing():
                self._fail(UpstreamFailure(502, "upstream ended before the blob was complete"))
            await hasher
        except asyncio.CancelledError:
            for t in (*workers, hasher):
                t.cancel()
            raise
        except UpstreamFailure as e:
            self._fail(e)
            for t in (*workers, hasher):
                t.cancel()
        finally:
            if first is not None:
                first.release()
            if self._persisting is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._persisting)
            # done writing: close (the fd would pin a dropped blob's blocks), its last
            # fdatasync in a thread, not on the event loop
            await asyncio.shield(asyncio.to_thread(self.file.close))
            self.finished_monotonic = time.monotonic()
            self._notify()

    def _fail(self, e: UpstreamFailure) -> None:
        if self.error is None:
            self.error = e
            self.state = "failed"
            self._on_error(e.label)
            log.warning(
                "blob %s of %s/%s failed: %s", self.digest, self.registry, self.repository, e
            )
        self._notify()

    async def _worker(self, first: aiohttp.ClientResponse | None) -> None:
        self._active_workers += 1
        try:
            failures = 0
            while self._queue and self.error is None:
                a, b = self._queue.popleft()
                if not self._ranged:
                    b = self.size_bytes
                    self._queue.clear()
                got, err = await self._fetch_range(a, b, first)
                first = None
                self._notify()  # (pieces wake waiters at most every 1 MiB / 20 ms: flush)
                if got < b - a:
                    self._queue.appendleft((a + got, b))
                    failures = 0 if got else failures + 1
                    if failures > self.settings.retries:
                        assert err is not None
                        raise err
                    self.retries += 1
                    self._on_retry("stall" if err and err.status == 504 else "cut")
                    delay = min(
                        self.settings.backoff_max_seconds,
                        self.settings.backoff_seconds * 2 ** max(0, failures - 1),
                    )
                    log.info(
                        "blob %s: upstream %s at %d (%s); retry %d in %.2fs",
                        self.digest[:19],
                        self.registry,
                        a + got,
                        err,
                        failures,
                        delay,
                    )
                    await asyncio.sleep(delay * (0.5 + random.random()))  # jitter
                else:
                    failures = 0
        finally:
            self._active_workers -= 1

    async def _open(self, a: int, b: int) -> aiohttp.ClientResponse:
        headers = dict(self._auth)
        headers["Range"] = f"bytes={a}-{b - 1}"
        return await self.upstream.request(
            "GET", f"/v2/{self.repository}/blobs/{self.digest}", headers=headers
        )

    async def _fetch_range(
        self, a: int, b: int, first: aiohttp.ClientResponse | None
    ) -> tuple[int, UpstreamFailure | None]:
        """Fetch ``[a, b)``: the bytes written (from ``a``) and, if short, why."""
        if first is None and self._ranged and SPLICE_SUPPORTED:
            url = self.upstream.plain_url(f"/v2/{self.repository}/blobs/{self.digest}")
            if url is not None:
                try:
                    return await spliced_range(
                        url,
                        self._auth,
                        a,
                        b,
                        self.file.fd,
                        stall_seconds=self.settings.stall_seconds,
                        on_data=self._landed,
                    )
                except SpliceUnavailable:
                    pass  # not a plain 206: this request goes through aiohttp
                except UpstreamFailure as e:
                    return 0, e
        got = 0
        try:
            resp = first if first is not None else await self._open(a, b)
        except UpstreamFailure as e:
            return 0, e
        try:
            if resp.status == 206:
                skip = a - _content_range_start(resp.headers.get("Content-Range"))
                if skip < 0:
                    return 0, UpstreamFailure(502, "upstream answered a range we did not ask")
            elif resp.status == 200:
                self._ranged = False  # the upstream ignores Range: one stream from 0
                skip = a
                b = self.size_bytes
            elif resp.status >= 500 or resp.status == 429:  # worth another try
                return 0, UpstreamFailure(resp.status, f"upstream answered {resp.status}")
            else:  # 401/403/404 in the middle of a fetch: the answer will not change
                raise UpstreamFailure(resp.status, f"upstream answered {resp.status} {resp.reason}")
            pos = a - skip
            while pos < b:
                data = await resp.content.readany()  # what arrived, not joined: no copy
                if not data:
                    return got, UpstreamFailure(502, f"upstream closed the connection at {pos}")
                if pos < a:  # a 200 from 0, or a range that starts early: drop what we have
                    cut = min(len(data), a - pos)
                    pos += cut
                    data = data[cut:]
                    if not data:
                        continue
                data = data[: b - pos]
                self.file.write_at(pos, data)
                pos += len(data)
                got += len(data)
                self._advanced(len(data))
            return got, None
        except TimeoutError:
            return got, UpstreamFailure(
                504, f"upstream sent no byte for {self.settings.stall_seconds:g}s"
            )
        except (aiohttp.ClientError, OSError) as e:
            return got, UpstreamFailure(502, f"upstream connection lost: {type(e).__name__}")
        finally:
            resp.release()

    def _landed(self, offset: int, n: int) -> None:
        self.file.note_written(offset, n)
        self._advanced(n)

    def _advanced(self, n: int) -> None:
        self.upstream_bytes += n
        self._on_bytes(n)
        now = time.monotonic()
        self._samples.append((now, self.upstream_bytes))
        self._since_checkpoint += n
        age = now - self._last_checkpoint
        due = (
            self._since_checkpoint >= _CHECKPOINT_BYTES and age >= _CHECKPOINT_MIN_SECONDS
        ) or age >= _CHECKPOINT_MAX_SECONDS
        if due:
            idle = self._persisting is None or self._persisting.done()
            durable = idle and (
                self._since_durable + self._since_checkpoint >= _DURABLE_BYTES
                or now - self._last_durable >= _DURABLE_SECONDS
            )
            if durable:  # fdatasync + map, in a thread
                snap = self.file.snapshot(durable=True)
                self._persisting = asyncio.ensure_future(asyncio.to_thread(self.file.persist, snap))
                self._since_durable, self._last_durable = 0, now
                wrote = True
            else:  # a small unsynced map write, right here (no thread to lag behind)
                wrote = self.file.persist_nowait(self.file.snapshot(durable=False))
                self._since_durable += self._since_checkpoint if wrote else 0
            if wrote:
                self._since_checkpoint = 0
                self._last_checkpoint = now
        # Wake clients and the hasher when the prefix grew by 1 MiB or 20 ms passed, not for
        # every piece: behind a shaped link pieces are 64 KiB, and a wake-up (a sendfile
        # per client) per piece was most of the mirror's CPU there.
        prefix = self.file.contiguous_bytes
        if prefix - self._notified_prefix >= _NOTIFY_BYTES or now - self._notified_at >= 0.02:
            self._notified_prefix, self._notified_at = prefix, now
            self._notify()

    async def _hash_loop(self) -> None:
        """Hash the contiguous prefix as it grows (from a read-only mapping of the file:
        hashlib reads the page cache in place, no copy); verify at the end."""
        mapping = mmap.mmap(self.file.fd, self.size_bytes, prot=mmap.PROT_READ)
        try:
            while True:
                prefix = self.file.contiguous_bytes
                if self._hashed < prefix:
                    n = min(prefix - self._hashed, _HASH_PIECE_BYTES)
                    await asyncio.to_thread(self._hash_piece, mapping, self._hashed, n)
                    self._hashed += n
                    continue
                if self._hashed >= self.size_bytes:
                    break
                if self.error is not None:
                    return
                ev = self._changed
                await ev.wait()
        finally:
            with contextlib.suppress(BufferError):  # a cancelled hash still in its thread
                mapping.close()
        if "sha256:" + self._hasher.hexdigest() != self.digest:
            self.file.discard()
            raise UpstreamFailure(
                502, f"digest mismatch: the upstream's bytes are not {self.digest}", "digest"
            )
        self.state = "verifying"
        self.file.mark_complete()
        self._verified = True
        self.state = "complete"
        self._notify()

    def _hash_piece(self, mapping: mmap.mmap, offset: int, n: int) -> None:
        with memoryview(mapping) as view:
            self._hasher.update(view[offset : offset + n])


def _content_range_start(value: str | None) -> int:
    """The first byte of ``Content-Range: bytes a-b/n``; -1 when it does not parse."""
    if not value or not value.startswith("bytes "):
        return -1
    first, _, _ = value[6:].partition("-")
    return int(first) if first.strip().isdigit() else -1
