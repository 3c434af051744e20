"""The fake upstream itself: ranges, faults, counting — so the mirror tests stand on it."""

from __future__ import annotations

import math

import aiohttp
import pytest
from mirror_harness import blob_bytes, run

from mlnode.testing.fake_registry_server import FakeRegistryServer, sha256_digest

KiB = 1024


async def _get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes | None]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url, headers=headers) as r:
        try:
            body: bytes | None = await r.read()
        except aiohttp.ClientPayloadError:
            body = None
        return r.status, dict(r.headers), body


def test_ranges_and_counting() -> None:
    data = blob_bytes(300 * KiB)
    up = FakeRegistryServer()
    d = up.add_blob("a/b", data)

    async def go() -> None:
        async with up.running() as url:
            base = f"{url}/v2/a/b/blobs/{d}"
            st, h, body = await _get(base)
            assert (st, body) == (200, data)
            st, h, body = await _get(base, {"Range": "bytes=10-19"})
            assert (st, h["Content-Range"], body) == (206, f"bytes 10-19/{len(data)}", data[10:20])
            st, h, body = await _get(base, {"Range": "bytes=-5"})
            assert (st, body) == (206, data[-5:])
            st, _, _ = await _get(base, {"Range": f"bytes={len(data)}-"})
            assert st == 416
            st, _, _ = await _get(f"{url}/v2/other/repo/blobs/{d}")
            assert st == 404
        assert up.bytes_served[d] == len(data) + 10 + 5
        assert [r.range for r in up.blob_requests(d)][:3] == [None, "bytes=10-19", "bytes=-5"]

    run(go())


def test_cut_corrupt_fail_auth_ignore_range() -> None:
    data = blob_bytes(200 * KiB, seed=2)
    up = FakeRegistryServer()
    d = up.add_blob("a/b", data)

    async def go() -> None:
        async with up.running() as url:
            base = f"{url}/v2/a/b/blobs/{d}"
            up.cut(d, at_byte=1000, times=1)
            st, _, body = await _get(base)
            assert st == 200 and body is None  # the connection ended short
            st, _, body = await _get(base)
            assert body == data  # once only
            up.corrupt(d)
            _, _, body = await _get(base)
            assert body is not None and len(body) == len(data) and sha256_digest(body) != d
            up.corrupt(d, False)
            up.fail(d, 503, times=1)
            assert (await _get(base))[0] == 503
            assert (await _get(base))[0] == 200
            up.require_auth("Basic eDp5", digest=d, challenge='Basic realm="r"')
            st, h, _ = await _get(base)
            assert (st, h["WWW-Authenticate"]) == (401, 'Basic realm="r"')
            assert (await _get(base, {"Authorization": "Basic eDp5"}))[0] == 200
            assert up.requests[-1].authorization == "Basic eDp5"
            up.ignore_range = True
            st, _, body = await _get(base, {"Range": "bytes=100-", "Authorization": "Basic eDp5"})
            assert (st, body) == (200, data)

    run(go())


@pytest.mark.parametrize("seconds", [0.2, math.inf])
def test_stall_then_carry_on_or_end_when_the_client_goes(seconds: float) -> None:
    data = blob_bytes(100 * KiB, seed=3)
    up = FakeRegistryServer()
    d = up.add_blob("a/b", data)

    async def go() -> None:
        async with up.running() as url:
            up.stall(d, at_byte=5000, seconds=seconds)
            timeout = aiohttp.ClientTimeout(total=10, sock_read=0.1 if seconds > 1 else 5)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                try:
                    async with s.get(f"{url}/v2/a/b/blobs/{d}") as r:
                        body: bytes | None = await r.read()
                except TimeoutError:
                    body = None
            assert body == (data if seconds < 1 else None)

    run(go())
    assert up.bytes_served[d] == (len(data) if seconds < 1 else 5000)
