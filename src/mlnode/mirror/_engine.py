"""The blob engine: one fetch per digest however many clients ask, the cache's bound, the
credentials check before a cache hit, and dropping what containerd has committed.

The server asks :meth:`Engine.blob` for every blob GET. The answer is one of:

- :class:`BlobFetch` — a blob in the cache or being fetched into it; the server streams it
  (from the file, as its contiguous prefix grows);
- :class:`Answer` — the upstream's own answer to pass on (401 with its challenge, 404, …),
  or the mirror's (502 unreachable, 507 no room);
- :class:`Through` — an upstream response to stream straight to the client without caching
  (a blob the cache's bound cannot hold, or one whose size the upstream will not say).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from mlnode.blobcache import BlobCache, BlobFile, CacheEntry
from mlnode.errors import InsufficientSpace
from mlnode.mirror._config import MirrorConfig
from mlnode.mirror._fetch import BlobFetch, FetchSettings
from mlnode.mirror._metrics import MirrorMetrics
from mlnode.mirror._upstream import Upstream, UpstreamFailure

if TYPE_CHECKING:
    from mlnode.ports import SpaceKeeper

__all__ = ["Answer", "Engine", "Through"]

log = logging.getLogger("mlnode.mirror")

#: upstream response headers handed to the client with a passed-on answer
ANSWER_HEADERS = ("WWW-Authenticate", "Content-Type", "Docker-Distribution-API-Version")
_AUTH_OK_SECONDS = 60.0
_KEEP_FINISHED_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Through:
    """Not cached: the server asks the upstream with the client's own Range and pipes it."""

    reason: str


def answer_from(resp: aiohttp.ClientResponse, body: bytes) -> Answer:
    headers = {k: v for k in ANSWER_HEADERS if (v := resp.headers.get(k)) is not None}
    return Answer(resp.status, headers, body)


def _total_size(resp: aiohttp.ClientResponse) -> int | None:
    if resp.status == 206:
        _, _, total = (resp.headers.get("Content-Range") or "").rpartition("/")
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


class Engine:
    def __init__(
        self,
        cfg: MirrorConfig,
        cache: BlobCache,
        upstreams: Mapping[str, Upstream],
        *,
        metrics: MirrorMetrics,
        space: SpaceKeeper | None = None,
        committed: Callable[[str], bool] | None = None,
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self.upstreams = upstreams
        self.metrics = metrics
        self.space = space
        self.committed = committed
        self.settings = FetchSettings(
            chunk_bytes=cfg.chunk_bytes,
            connections=cfg.connections,
            stall_seconds=cfg.stall_seconds,
            retries=cfg.retries,
        )
        self.fetches: dict[str, BlobFetch] = {}
        self.images: dict[str, str] = {}  # digest -> image reference, from manifests served
        self.media_types: dict[str, str] = {}  # digest -> its descriptor's mediaType
        self._starting: dict[str, asyncio.Future[BlobFetch | Answer | Through]] = {}
        self._auth_ok: dict[tuple[str, str, str, str], float] = {}
        metrics.track_in_flight(lambda: sum(f.state == "fetching" for f in self.fetches.values()))
        metrics.cache_max_bytes.set(cfg.cache_max_bytes)
        metrics.track_cache_bytes(self.cache.total_disk_bytes)

    # -- the entry point ------------------------------------------------------------------

    async def blob(
        self, upstream: Upstream, repository: str, digest: str, auth: Mapping[str, str]
    ) -> BlobFetch | Answer | Through:
        live = self.fetches.get(digest)
        if (
            live is not None
            and live.error is None
            and (live.state != "complete" or live.file.complete)
        ):
            denied = await self._check_access(upstream, repository, digest, auth, live)
            if denied is None and live.file.complete:
                self._touch(digest)  # used now: the last to be evicted
            return denied or live
        entry = self.cache.entry(digest)
        if entry is not None and entry.complete:
            denied = await self._check_access(upstream, repository, digest, auth, entry)
            if denied is not None:
                return denied
            self._touch(digest)
            return self._open_cached(upstream, repository, digest, entry, auth)
        pending = self._starting.get(digest)
        if pending is not None:  # another client is starting this fetch: wait for it
            result = await asyncio.shield(pending)
            if isinstance(result, BlobFetch):
                denied = await self._check_access(upstream, repository, digest, auth, result)
                return denied or result
        fut: asyncio.Future[BlobFetch | Answer | Through] = (
            asyncio.get_running_loop().create_future()
        )
        self._starting[digest] = fut
        try:
            result = await self._start(upstream, repository, digest, auth)
            fut.set_result(result)
            return result
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            del self._starting[digest]

    def _touch(self, digest: str) -> None:
        with contextlib.suppress(OSError):  # (utime: never recreates a map GC removed)
            os.utime(self.cache.paths(digest)[1])

    def _open_cached(
        self,
        upstream: Upstream,
        repository: str,
        digest: str,
        entry: CacheEntry,
        auth: Mapping[str, str],
    ) -> BlobFetch:
        """A complete cached blob, listed in the status while it is being served."""
        file = self.cache.open(
            digest,
            size_bytes=entry.size_bytes,
            registry=entry.registry,
            repository=entry.repository,
            private=entry.private,
        )
        file.close()  # clients read the data file themselves; this one only holds state
        fetch = self._new_fetch(upstream, repository, digest, file, auth)
        fetch.finished_monotonic = time.monotonic()
        return fetch

    async def _start(
        self, upstream: Upstream, repository: str, digest: str, auth: Mapping[str, str]
    ) -> BlobFetch | Answer | Through:
        # A partial blob from before (a restart, a failed fetch) is probed at its first gap,
        # and that answer becomes the first chunk: no byte the cache holds is asked for.
        entry = self.cache.entry(digest)
        start, end = 0, self.cfg.chunk_bytes
        if entry is not None and 0 < entry.present_bytes < entry.size_bytes:
            start, gap_end = self.cache.first_gap(digest, entry.size_bytes)
            end = min(start + self.cfg.chunk_bytes, gap_end)  # nor the bytes after the gap
        headers = dict(auth)
        headers["Range"] = f"bytes={start}-{end - 1}"
        path = f"/v2/{repository}/blobs/{digest}"
        try:
            resp = await upstream.request("GET", path, headers=headers)
        except UpstreamFailure as e:
            self.metrics.errors.labels(upstream.registry, str(e.status)).inc()
            return Answer(e.status, {}, f"{e.reason}\n".encode())
        if resp.status not in (200, 206):
            body = await _small_body(resp)
            if resp.status != 401:
                self.metrics.errors.labels(upstream.registry, str(resp.status)).inc()
            return answer_from(resp, body)
        size = _total_size(resp)
        if size is None or size == 0:
            resp.release()
            return Through("the upstream gave no size")
        present = entry.present_bytes if entry is not None and entry.size_bytes == size else 0
        if start and (not present or resp.status != 206):
            # the old partial is of another size, or the upstream ignores Range: start over
            resp.release()
            self.cache.remove(digest)
            return await self._start(upstream, repository, digest, auth)
        room = await self._make_room(
            upstream, repository, digest, size, self._landing(digest, size, present)
        )
        if room is not None:
            resp.release()
            return room
        if not self._fits_bound(digest, size):
            log.warning(
                "blob %s (%d bytes) does not fit the cache bound of %d bytes; streaming it "
                "uncached",
                digest[:19],
                size,
                self.cfg.cache_max_bytes,
            )
            resp.release()
            return Through("larger than the cache bound")
        file = self.cache.open(
            digest,
            size_bytes=size,
            registry=upstream.registry,
            repository=repository,
            private="Authorization" in auth,
        )
        fetch = self._new_fetch(upstream, repository, digest, file, auth)
        fetch.start(resp, first_offset=start)
        if present:
            log.info("blob %s: resuming, %d of %d bytes already here", digest[:19], present, size)
        return fetch

    def _new_fetch(
        self,
        upstream: Upstream,
        repository: str,
        digest: str,
        file: BlobFile,
        auth: Mapping[str, str],
    ) -> BlobFetch:
        registry = upstream.registry
        up_bytes = self.metrics.upstream_bytes.labels(registry)
        fetch = BlobFetch(
            upstream=upstream,
            repository=repository,
            digest=digest,
            file=file,
            auth_headers=auth,
            settings=self.settings,
            on_bytes=up_bytes.inc,
            on_retry=lambda kind: self.metrics.retries.labels(registry, kind).inc(),
            on_error=lambda label: self.metrics.errors.labels(registry, label).inc(),
        )
        fetch.image = self.images.get(digest)
        old = self.fetches.get(digest)
        if old is not None and old is not fetch:
            old.file.close()
        self.fetches[digest] = fetch
        return fetch

    def _landing(self, digest: str, size: int, present: int) -> int:
        """Bytes this blob will put on the image filesystem: the mirror's copy (what is
        missing), containerd's copy, and for a layer its unpacked estimate (× the unpack
        factor when compressed, × 1 as a plain tar; a blob no manifest described counts as
        a compressed layer, the safe side). The mirror's copy goes once containerd has
        committed it, so this is the peak."""
        kind = self.media_types.get(digest, "layer+gzip")
        if "layer" not in kind:
            unpack = 0.0
        elif kind.endswith(".tar") or kind.endswith("tar"):
            unpack = 1.0
        else:
            unpack = self.cfg.unpack_factor
        return (size - present) + size + int(size * unpack)

    async def _make_room(
        self, upstream: Upstream, repository: str, digest: str, size: int, incoming: int
    ) -> Answer | None:
        if self.space is None or incoming <= 0:
            return None
        what = f"{upstream.registry}/{repository}@{digest} ({size} bytes)"
        try:
            account = await asyncio.to_thread(self.space.ensure_room, incoming, what=what)
        except InsufficientSpace as e:
            log.warning("no room for %s: %s", what, e)
            return Answer(
                507, {}, f"mlnode mirror: no room on the image filesystem: {e}\n".encode()
            )
        log.info("room: %s", account)
        return None

    # -- credentials ----------------------------------------------------------------------

    async def _check_access(
        self,
        upstream: Upstream,
        repository: str,
        digest: str,
        auth: Mapping[str, str],
        held: BlobFetch | CacheEntry,
    ) -> Answer | None:
        """None when this caller may have the blob we hold; else the upstream's refusal.

        A blob fetched anonymously from the same registry is public there; any other (fetched
        with credentials, or from another registry) is served only after the upstream accepts
        this caller's credentials for it (a HEAD; a yes is remembered for a minute)."""
        if isinstance(held, BlobFetch):
            private, registry = held.file.private, held.registry
        else:
            private, registry = held.private, held.registry
        if not private and registry == upstream.registry:
            return None
        token = hashlib.sha256(auth.get("Authorization", "").encode()).hexdigest()
        key = (upstream.registry, repository, digest, token)
        now = time.monotonic()
        if self._auth_ok.get(key, 0.0) > now:
            return None
        try:
            resp = await upstream.request(
                "HEAD", f"/v2/{repository}/blobs/{digest}", headers=dict(auth)
            )
        except UpstreamFailure as e:
            return Answer(e.status, {}, f"{e.reason}\n".encode())
        try:
            if resp.status == 200:
                self._auth_ok[key] = now + _AUTH_OK_SECONDS
                return None
            log.info(
                "cached blob %s refused to a caller: upstream %s said %d",
                digest[:19],
                upstream.registry,
                resp.status,
            )
            return answer_from(resp, b"")
        finally:
            resp.release()

    # -- the bound and the reaper -----------------------------------------------------------

    def _busy(self) -> set[str]:
        busy = {d for d, f in self.fetches.items() if f.state == "fetching" or f.clients}
        busy.update(self._starting)
        return busy

    def _fits_bound(self, digest: str, size: int) -> bool:
        """Room for ``size`` more bytes within the bound, evicting what is idle, oldest first."""
        busy = self._busy()
        entries = [e for e in self.cache.entries() if e.digest != digest]
        # a blob being fetched counts whole; every other one (finished ones still listed in
        # the status too) by its disk bytes, and is evictable when no client reads it
        fetching = {d for d, f in self.fetches.items() if f.state == "fetching"}
        in_flight = sum(self.fetches[d].size_bytes for d in fetching)
        used = in_flight + sum(e.disk_bytes for e in entries if e.digest not in fetching)
        if used + size <= self.cfg.cache_max_bytes:
            return True
        idle = sorted(
            (e for e in entries if e.digest not in busy),
            key=lambda e: (not e.complete, e.last_access_unix),
        )
        for e in idle:
            gone = self.fetches.pop(e.digest, None)
            if gone is not None:
                gone.file.close()
            used -= self.cache.remove(e.digest)
            self.metrics.evictions.labels("bound").inc()
            log.info(
                "evicted %s (%d bytes) to stay within the cache bound", e.digest[:19], e.disk_bytes
            )
            if used + size <= self.cfg.cache_max_bytes:
                return True
        return used + size <= self.cfg.cache_max_bytes

    async def reap_once(self) -> int:
        """Drop finished fetches from the status list, and cached blobs containerd has
        committed (unless retained); the bytes freed."""
        now = time.monotonic()
        for d, f in list(self.fetches.items()):
            if (
                f.finished_monotonic is not None
                and not f.clients
                and now - f.finished_monotonic > _KEEP_FINISHED_SECONDS
            ):
                f.file.close()
                del self.fetches[d]
        self._auth_ok = {k: t for k, t in self._auth_ok.items() if t > now}
        if self.committed is None or self.cfg.retain_committed:
            return 0
        freed = 0
        busy = self._busy()
        for e in self.cache.entries():
            if not e.complete or e.digest in busy:
                continue
            try:
                done = await asyncio.to_thread(self.committed, e.digest)
            except Exception as exc:  # the runtime restarting: try again next round
                log.debug("committed check for %s failed: %s", e.digest[:19], exc)
                continue
            if done and e.digest not in self._busy():
                listed = self.fetches.get(e.digest)
                if listed is not None:  # stays in the status for its minute; asked again: fetched
                    listed.file.close()  # an open fd would keep the deleted blocks in use
                    listed.file.complete = False
                freed += self.cache.remove(e.digest)
                self.metrics.evictions.labels("committed").inc()
                log.info("dropped %s: containerd has committed it", e.digest[:19])
        return freed

    async def reap_loop(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.reap_once()
            except Exception:  # never let the reaper die: log and carry on
                log.exception("mirror reaper round failed")

    async def close(self) -> None:
        for f in list(self.fetches.values()):
            await f.cancel()
            f.file.close()


async def _small_body(resp: aiohttp.ClientResponse, limit: int = 64 * 1024) -> bytes:
    try:
        return await resp.content.read(limit)
    except (TimeoutError, aiohttp.ClientError, OSError):
        return b""
    finally:
        resp.release()
