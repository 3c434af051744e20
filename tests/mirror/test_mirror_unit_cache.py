"""The cache's bound (through, eviction, in-flight kept), the reaper of committed blobs,
and the SpaceKeeper asked before a fetch."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from mirror_harness import REGISTRY, REPO, blob_bytes, metric, mirror, run

from mlnode.blobcache import BlobCache
from mlnode.errors import InsufficientSpace
from mlnode.testing.fake_registry_server import FakeRegistryServer

KiB = 1024
MiB = 1024 * KiB


def _complete(cache: BlobCache) -> set[str]:
    return {e.digest for e in cache.entries() if e.complete}


def test_a_blob_larger_than_the_bound_is_streamed_uncached(tmp_path: Path) -> None:
    data = blob_bytes(300 * KiB)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up, cache_max_bytes=200 * KiB) as h:
            st, _, body = await h.blob(d)
            assert (st, body) == (200, data)
            st, hd, body = await h.blob(d, range_="bytes=1000-")
            assert (st, hd["Content-Range"], body) == (
                206,
                f"bytes 1000-{len(data) - 1}/{len(data)}",
                data[1000:],
            )
            assert h.service.cache.entries() == []
            assert d not in h.service.engine.fetches
            through = metric(
                h, "mlnode_mirror_served_bytes_total", registry=REGISTRY, source="through"
            )
            assert through == 2 * len(data) - 1000

    run(go())
    assert "bytes=1000-" in [r.range for r in up.blob_requests(d)]  # the client's own Range


def test_idle_blobs_evicted_least_recently_used_first(tmp_path: Path) -> None:
    blobs = [blob_bytes(100 * KiB, seed=i) for i in range(3)]
    up = FakeRegistryServer()
    a, b, c = (up.add_blob(REPO, x) for x in blobs)

    async def go() -> None:
        async with mirror(tmp_path, up, cache_max_bytes=250 * KiB) as h:
            for d in (a, b):
                await h.blob(d)
                await h.settle(d)
            # (file times are coarse, a jiffy: let the clock move between the uses)
            await asyncio.sleep(0.05)
            assert (await h.blob(a))[0] == 200  # a is used again: b is now the oldest
            await asyncio.sleep(0.05)
            st, _, body = await h.blob(c)
            assert (st, body) == (200, blobs[2])
            await h.settle(c)
            assert _complete(h.service.cache) == {a, c}
            assert h.service.cache.total_disk_bytes() <= 250 * KiB
            assert metric(h, "mlnode_mirror_cache_evictions_total", reason="bound") == 1
            # b comes back from upstream; a (now the least recently used) makes room
            assert (await h.blob(b))[2] == blobs[1]
            await h.settle(b)
            assert _complete(h.service.cache) == {b, c}

    run(go())
    assert up.bytes_served[b] == 2 * len(blobs[1])


def test_a_blob_in_flight_is_never_evicted(tmp_path: Path) -> None:
    big, small = blob_bytes(200 * KiB, seed=1), blob_bytes(100 * KiB, seed=2)
    up = FakeRegistryServer()
    a, b = up.add_blob(REPO, big), up.add_blob(REPO, small)
    up.stall(a, at_byte=50 * KiB, seconds=0.5)

    async def go() -> None:
        async with mirror(tmp_path, up, cache_max_bytes=250 * KiB, stall_seconds=5) as h:
            first = asyncio.ensure_future(h.blob(a))
            while h.service.engine.fetches.get(a) is None:
                await asyncio.sleep(0.01)
            assert h.service.engine.fetches[a].state == "fetching"
            assert (await h.blob(b))[2] == small  # no room beside a: streamed uncached
            assert h.service.engine.fetches[a].state == "fetching"
            assert (await first)[2] == big
            await h.settle(a)
            assert _complete(h.service.cache) == {a}
            assert metric(h, "mlnode_mirror_cache_evictions_total", reason="bound") == 0

    run(go())


def test_reaper_drops_committed_blobs_but_not_busy_ones(tmp_path: Path) -> None:
    big, small = blob_bytes(24 * MiB, seed=3), blob_bytes(50 * KiB, seed=4)
    up = FakeRegistryServer()
    a, b = up.add_blob(REPO, big), up.add_blob(REPO, small)
    committed = {a, b}
    asked: list[str] = []

    def is_committed(digest: str) -> bool:
        asked.append(digest)
        return digest in committed

    async def go() -> None:
        async with mirror(tmp_path, up, committed=is_committed, chunk_bytes=4 * MiB) as h:
            for d in (a, b):
                await h.blob(d)
                await h.settle(d)
            # a slow client still reading a: busy, kept; b: dropped
            async with h.session.get(h.blob_url(a)) as r:
                assert await r.content.read(1000) == big[:1000]
                await asyncio.sleep(0.05)
                assert h.service.engine.fetches[a].clients == 1
                freed = await h.service.engine.reap_once()
                assert freed >= len(small)
                assert _complete(h.service.cache) == {a}
                r.close()
            while h.service.engine.fetches[a].clients:
                await asyncio.sleep(0.01)
            await h.service.engine.reap_once()
            assert h.service.cache.entries() == []
            assert metric(h, "mlnode_mirror_cache_evictions_total", reason="committed") == 2
            # still listed as finished (SPEC9: blobs finished in the last 60 s)
            listed = {b["digest"]: b["state"] for b in h.service.mirror.status_doc()["blobs"]}
            assert listed == {a: "complete", b: "complete"}
            # asked for again (containerd lost it): fetched anew, served right
            assert (await h.blob(b))[2] == small
            await h.settle(b)

    run(go())
    assert set(asked) == {a, b}
    assert up.bytes_served[b] == 2 * len(small)


def test_reaper_keeps_committed_blobs_when_retained(tmp_path: Path) -> None:
    up = FakeRegistryServer()
    d = up.add_blob(REPO, blob_bytes(10 * KiB, seed=5))

    async def go() -> None:
        async with mirror(tmp_path, up, committed=lambda _: True, retain_committed=True) as h:
            await h.blob(d)
            await h.settle(d)
            assert await h.service.engine.reap_once() == 0
            assert _complete(h.service.cache) == {d}

    run(go())


class _Keeper:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[int, str]] = []
        self.refuse = refuse
        self.threads: set[int] = set()

    def ensure_room(self, incoming_bytes: int, *, what: str) -> str:
        self.calls.append((incoming_bytes, what))
        self.threads.add(threading.get_ident())
        if self.refuse:
            raise InsufficientSpace("3 GiB short after GC")
        return f"{incoming_bytes} bytes free already"


def test_space_keeper_asked_for_what_the_blob_will_take(tmp_path: Path) -> None:
    """The room asked: the bytes the mirror still lacks + containerd's copy + the layer's
    unpacked estimate (no manifest described this blob: counted as a compressed layer, at
    the default unpack factor 2)."""
    data = blob_bytes(400 * KiB, seed=6)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    held = 150 * KiB
    # a partial blob from before (a restart): the first 150 KiB are here
    cache = BlobCache(tmp_path / "cache")
    f = cache.open(d, size_bytes=len(data), registry=REGISTRY, repository=REPO, private=False)
    f.write_at(0, data[:held])
    f.close()
    keeper = _Keeper()

    async def go() -> None:
        async with mirror(tmp_path, up, space=keeper) as h:
            assert (await h.blob(d))[2] == data
            await h.settle(d)
            assert (await h.blob(d))[2] == data  # a cache hit needs no room

    run(go())
    assert len(keeper.calls) == 1
    incoming, what = keeper.calls[0]
    assert incoming == (len(data) - held) + len(data) + 2 * len(data)
    assert d in what and REPO in what
    assert threading.get_ident() not in keeper.threads  # off the event loop
    assert up.bytes_served[d] == len(data) - held


def test_no_room_is_507(tmp_path: Path) -> None:
    data = blob_bytes(100 * KiB, seed=7)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up, space=_Keeper(refuse=True)) as h:
            st, _, body = await h.blob(d)
            assert st == 507 and b"3 GiB short" in body
            assert _complete(h.service.cache) == set()
            assert d not in h.service.engine.fetches

    run(go())


@pytest.mark.parametrize("size", [1, 2])
def test_tiny_blobs(tmp_path: Path, size: int) -> None:
    data = blob_bytes(size, seed=8)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            assert (await h.blob(d))[2] == data
            assert (await h.blob(d, range_="bytes=-1"))[2] == data[-1:]

    run(go())
