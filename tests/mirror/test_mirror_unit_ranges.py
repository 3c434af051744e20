"""Client ranges against the mirror: every partial answer 206 with a right Content-Range,
no Range 200, unsatisfiable 416, HEAD — for a blob being fetched and for a cached one."""

from __future__ import annotations

from pathlib import Path

import pytest
from mirror_harness import REPO, blob_bytes, mirror, run

from mlnode.testing.fake_registry_server import FakeRegistryServer

SIZE = 300 * 1024 + 7


@pytest.mark.parametrize("cached", [False, True], ids=["fetching", "cached"])
def test_ranges(tmp_path: Path, cached: bool) -> None:
    data = blob_bytes(SIZE)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    cases = [
        ("bytes=0-0", 0, 1),
        ("bytes=100-199", 100, 200),
        (f"bytes=1000-{SIZE + 50}", 1000, SIZE),  # clamped to the end
        ("bytes=5000-", 5000, SIZE),  # open-ended: what containerd resumes with
        ("bytes=0-", 0, SIZE),
        ("bytes=-10", SIZE - 10, SIZE),
        (f"bytes=-{SIZE * 2}", 0, SIZE),
        (f"bytes={SIZE - 1}-", SIZE - 1, SIZE),  # the last byte: only once verified
    ]

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            if cached:
                assert (await h.blob(d))[2] == data
                await h.settle(d)
            for header, a, b in cases:
                st, hd, body = await h.blob(d, range_=header)
                assert st == 206, header
                assert hd["Content-Range"] == f"bytes {a}-{b - 1}/{SIZE}", header
                assert int(hd["Content-Length"]) == b - a
                assert body == data[a:b], header
            st, hd, body = await h.blob(d)
            assert (st, body) == (200, data)
            assert "Content-Range" not in hd
            for bad in (f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0", "bytes=9-3"):
                st, hd, _ = await h.blob(d, range_=bad)
                assert (st, hd.get("Content-Range")) == (416, f"bytes */{SIZE}"), bad
            st, hd, body = await h.blob(d, method="HEAD")
            assert (st, int(hd["Content-Length"]), body) == (200, SIZE, b"")
            assert hd["Docker-Content-Digest"] == d
            st, hd, body = await h.blob(d, method="HEAD", range_="bytes=10-")
            assert (st, hd["Content-Range"], body) == (206, f"bytes 10-{SIZE - 1}/{SIZE}", b"")
            assert int(hd["Content-Length"]) == SIZE - 10

    run(go())
    # however many ranges the clients asked for, the upstream sent the blob once
    assert up.bytes_served[d] == SIZE


def test_unparsed_range_is_the_whole_blob(tmp_path: Path) -> None:
    data = blob_bytes(2000, seed=4)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            for header in ("bytes=0-1,5-9", "items=0-3"):
                st, _, body = await h.blob(d, range_=header)
                assert (st, body) == (200, data), header

    run(go())
