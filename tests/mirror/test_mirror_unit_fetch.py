"""The blob engine's state machine against the fake upstream: one fetch per digest, the
fetch outliving its client, resume from a partial cache, stalls and cuts with bounded
retries, a corrupt blob, an upstream that ignores Range."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from mirror_harness import REGISTRY, REPO, blob_bytes, eventually, metric, mirror, read_short, run

import mlnode.mirror._fetch as fetch_module
from mlnode.blobcache import BlobCache
from mlnode.testing.fake_registry_server import FakeRegistryServer

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB


def test_one_upstream_fetch_for_many_clients(tmp_path: Path) -> None:
    data = blob_bytes(2 * MiB + 123)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            bodies = await asyncio.gather(*(h.blob(d) for _ in range(8)))
            assert all(b == (200, b[1], data) for b in bodies)
            bodies = await asyncio.gather(
                *(h.blob(d, range_=f"bytes={i * 1000}-") for i in range(4))
            )
            assert [b[2] for b in bodies] == [data[i * 1000 :] for i in range(4)]

    run(go())
    assert up.bytes_served[d] == len(data)
    starts = [
        int(m.group(1))
        for r in up.blob_requests(d)
        if (m := re.match(r"bytes=(\d+)-", r.range or ""))
    ]
    assert sorted(starts) == list(range(0, len(data), CHUNK))  # every chunk asked for once


def test_fetch_carries_on_after_the_client_goes(tmp_path: Path) -> None:
    data = blob_bytes(MiB, seed=2)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.stall(d, at_byte=200 * KiB, seconds=0.15)  # shorter than stall_seconds: no retry

    async def go() -> None:
        async with mirror(tmp_path, up, connections=1) as h:
            async with h.session.get(h.blob_url(d)) as r:
                first = await r.content.read(1000)
                assert first == data[:1000]
                fetch = h.service.engine.fetches[d]
                assert fetch.state == "fetching"
                r.close()  # the client goes away (a cancelled pull)
            await h.settle(d)
            assert fetch.state == "complete"
            entry = h.service.cache.entry(d)
            assert entry is not None and entry.complete
            assert (
                metric(h, "mlnode_mirror_upstream_retries_total", registry=REGISTRY, kind="stall")
                == 0
            )
            # the retry is a cache hit
            assert (await h.blob(d))[2] == data

    run(go())
    assert up.bytes_served[d] == len(data)


def test_resume_a_killed_mirror_fetches_only_the_missing_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # checkpoint often, so the map on disk is recent when the "kill" happens
    monkeypatch.setattr(fetch_module, "_CHECKPOINT_BYTES", CHUNK)
    monkeypatch.setattr(fetch_module, "_CHECKPOINT_MIN_SECONDS", 0.0)
    data = blob_bytes(3 * MiB, seed=3)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    stall_at = MiB + 1000  # inside a chunk: the chunk after it is fetched by another worker
    up.stall(d, at_byte=stall_at, seconds=math.inf, times=math.inf)
    killed = tmp_path / "killed"

    async def first_life() -> None:
        async with mirror(tmp_path / "a", up, stall_seconds=30) as h:
            async with h.session.get(h.blob_url(d)) as r:
                await r.content.read(1000)
            cache = h.service.cache

            fetch = h.service.engine.fetches[d]
            chunk_start = stall_at // CHUNK * CHUNK
            everything_else = len(data) - CHUNK + (stall_at - chunk_start)

            def persisted() -> bool:
                e = cache.entry(d)
                return (
                    e is not None
                    and e.present_bytes > 0
                    and fetch.upstream_bytes >= everything_else
                )

            await eventually(persisted, "all but the stalled chunk arrived, some of it persisted")
            # what a kill -9 leaves: the map as last persisted and the data file; the map is
            # copied first (a persist landing meanwhile must not claim bytes the copy lacks)
            (killed / "blobs" / "sha256").mkdir(parents=True)
            data_path, map_path = cache.paths(d)
            for p in (map_path, data_path):
                shutil.copy(p, killed / "blobs" / "sha256" / p.name)

    run(first_life())
    before = BlobCache(killed).entry(d)
    assert before is not None and not before.complete
    held = before.present_bytes
    assert 0 < held < len(data)
    up.stall(d, at_byte=0, seconds=0, times=0)
    up.bytes_served.clear()
    up.requests.clear()

    async def second_life() -> None:
        async with mirror(tmp_path / "b", up, cache_dir=killed) as h:
            st, _, body = await h.blob(d)
            assert st == 200 and body == data
            await h.settle(d)
            entry = h.service.cache.entry(d)
            assert entry is not None and entry.complete

    run(second_life())
    assert up.bytes_served[d] == len(data) - held


def test_stalls_and_cuts_reconnect_from_their_offset(tmp_path: Path) -> None:
    data = blob_bytes(MiB, seed=4)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    cut_at = 300 * KiB + 17
    stall_at = 700 * KiB + 5
    up.cut(d, at_byte=cut_at, times=3)
    up.stall(d, at_byte=stall_at, seconds=math.inf)

    async def go() -> None:
        async with mirror(tmp_path, up, stall_seconds=0.2, retries=3) as h:
            st, _, body = await h.blob(d)
            assert (st, body) == (200, data)
            await h.settle(d)
            assert (
                metric(h, "mlnode_mirror_upstream_retries_total", registry=REGISTRY, kind="cut")
                == 3
            )
            assert (
                metric(h, "mlnode_mirror_upstream_retries_total", registry=REGISTRY, kind="stall")
                == 1
            )
            assert h.service.engine.fetches[d].state == "complete"

    run(go())
    ranges = [r.range or "" for r in up.blob_requests(d)]
    # a stall keeps the connection: every byte before it was read, the reconnect asks
    # exactly from the stall's offset to the chunk's end
    stall_end = (stall_at // CHUNK + 1) * CHUNK
    assert ranges.count(f"bytes={stall_at}-{stall_end - 1}") == 1
    # a cut can lose what was still in the client's buffer (aiohttp raises the payload
    # error before handing over buffered bytes), so a reconnect starts somewhere in the
    # cut chunk up to the cut, never before the chunk, and always runs to the chunk's end
    chunk_start = cut_at // CHUNK * CHUNK
    chunk_end = chunk_start + CHUNK
    spans = [
        tuple(map(int, m.groups())) for r in ranges if (m := re.fullmatch(r"bytes=(\d+)-(\d+)", r))
    ]
    cut_chunk = [(a, b) for a, b in spans if chunk_start <= a <= cut_at and b == chunk_end - 1]
    assert len(cut_chunk) == 4  # the first request and three reconnects
    assert len(data) <= up.bytes_served[d] <= len(data) + 3 * (cut_at - chunk_start)


def test_backoff_doubles_up_to_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(fetch_module.random, "random", lambda: 0.5)  # no jitter
    data = blob_bytes(200 * KiB, seed=5)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.cut(d, at_byte=1000, times=6)

    async def go() -> None:
        async with mirror(tmp_path, up, retries=6, connections=1, backoff_seconds=0.01) as h:
            h.service.engine.settings.backoff_max_seconds = 0.04
            assert (await h.blob(d))[2] == data

    with caplog.at_level(logging.INFO, logger="mlnode.mirror"):
        run(go())
    pairs = [
        (int(m.group(1)), float(m.group(2)))
        for r in caplog.records
        if (m := re.search(r"retry (\d+) in ([0-9.]+)s", r.getMessage()))
    ]
    # at least four reconnects in a row without a byte (cuts at 1000 bytes, again and again)
    assert {1, 2, 3, 4} <= {n for n, _ in pairs}
    assert max(n for n, _ in pairs) <= 6
    for n, delay in pairs:  # 0.01, 0.02, 0.04, then capped at 0.04
        assert delay == pytest.approx(min(0.04, 0.01 * 2 ** max(0, n - 1))), (n, delay)


@pytest.mark.parametrize("at_byte", [0, 100 * KiB + 3], ids=["before-any-byte", "mid-blob"])
@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_retries_exhausted_end_the_client_at_once(tmp_path: Path, at_byte: int, fault: str) -> None:
    data = blob_bytes(300 * KiB, seed=6)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    if fault == "stall":
        up.stall(d, at_byte=at_byte, seconds=math.inf, times=math.inf)
    else:
        up.cut(d, at_byte=at_byte, times=math.inf)

    async def go() -> None:
        async with mirror(tmp_path, up, stall_seconds=0.2, retries=2, connections=1) as h:
            status, got, short = await read_short(h, h.blob_url(d))
            fetch = h.service.engine.fetches[d]
            assert fetch.state == "failed" and fetch.error is not None
            if at_byte == 0:  # nothing to send yet: the error status itself
                assert status == (504 if fault == "stall" else 502)
                assert not short
            else:  # bytes were sent: the connection ends short, the data right so far
                assert status == 200 and short
                assert 0 < len(got) <= at_byte and got == data[: len(got)]
            entry = h.service.cache.entry(d)
            assert entry is not None and not entry.complete
            label = "504" if fault == "stall" else "502"
            assert (
                metric(h, "mlnode_mirror_upstream_errors_total", registry=REGISTRY, status=label)
                == 1
            )
            # the upstream recovers: the next request fetches again (the rest) and completes
            up.stall(d, at_byte=0, times=0)
            up.cut(d, at_byte=0, times=0)
            assert (await h.blob(d))[2] == data

    run(go())


def test_corrupt_blob_is_never_complete_nor_handed_over_whole(tmp_path: Path) -> None:
    data = blob_bytes(500 * KiB, seed=7)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.corrupt(d)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            for attempt in (1, 2):
                status, got, short = await read_short(h, h.blob_url(d))
                assert status == 200 and short, attempt
                assert len(got) < len(data)  # never the last byte
                entry = h.service.cache.entry(d)
                assert entry is None or not entry.complete
                assert h.service.engine.fetches[d].state == "failed"
                assert (
                    metric(
                        h, "mlnode_mirror_upstream_errors_total", registry=REGISTRY, status="digest"
                    )
                    == attempt
                )
            assert up.bytes_served[d] == 2 * len(data)  # each request fetched again
            up.corrupt(d, False)
            assert (await h.blob(d))[2] == data
            await h.settle(d)
            entry = h.service.cache.entry(d)
            assert entry is not None and entry.complete

    run(go())


def test_upstream_that_ignores_range(tmp_path: Path) -> None:
    data = blob_bytes(MiB + 5, seed=8)
    up = FakeRegistryServer(ignore_range=True)
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up, connections=4) as h:
            st, hd, body = await h.blob(d, range_="bytes=1000-")
            assert (st, hd["Content-Range"], body) == (
                206,
                f"bytes 1000-{len(data) - 1}/{len(data)}",
                data[1000:],
            )
            await h.settle(d)
            assert (await h.blob(d))[2] == data

    run(go())
    assert len(up.blob_requests(d)) == 1  # one stream from 0
    assert up.bytes_served[d] == len(data)


def test_stop_with_a_client_waiting_on_a_stalled_upstream(tmp_path: Path) -> None:
    """SIGTERM while a client waits for bytes that do not come: the mirror stops (the
    guard fails a hang), and what arrived is checkpointed for the next start."""
    data = blob_bytes(300 * KiB, seed=9)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.stall(d, at_byte=100 * KiB, seconds=math.inf, times=math.inf)

    async def go() -> None:
        async with up.running() as up_url:
            from mirror_harness import GUARD_SECONDS, config

            from mlnode.mirror import MirrorService

            service = MirrorService(config(tmp_path, up_url, stall_seconds=3600, connections=1))
            await service.start()
            async with aiohttp.ClientSession() as s:
                url = f"{service.cfg.url}/v2/{REPO}/blobs/{d}?ns={REGISTRY}"
                async with s.get(url) as r:
                    assert await r.content.readexactly(1000) == data[:1000]
                    await asyncio.wait_for(service.stop(), GUARD_SECONDS)
            entry = BlobCache(tmp_path / "cache").entry(d)
            assert entry is not None and entry.present_bytes == 100 * KiB

    run(go())
