"""The test bed's own helpers: access-log parsing, image pushes and the shaping proxy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import testbed

from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient

MiB = 1024 * 1024


def test_parse_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        '127.0.0.1 - - [29/Nov/2025:12:14:00 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7"\n'
        "time=... level=info msg=unrelated\n"
        '127.0.0.1 - - [29/Nov/2025:12:14:01 +0000] "GET /v2/a/blobs/sha256:ab HTTP/1.1" '
        '206 1048576 "" "containerd/1.6.20"\n'
        '127.0.0.1 - - [29/Nov/2025:12:14:02 +0000] "HEAD /v2/a/manifests/1 HTTP/1.1" 200 - '
        '"" "x"\n'
    )
    assert testbed.parse_access_log(log) == [
        testbed.AccessRecord("GET", "/v2/", 200, 2),
        testbed.AccessRecord("GET", "/v2/a/blobs/sha256:ab", 206, 1048576),
        testbed.AccessRecord("HEAD", "/v2/a/manifests/1", 200, 0),
    ]


def test_build_image_is_deterministic() -> None:
    a = testbed.build_image([1000, 2000], seed=7)
    b = testbed.build_image([1000, 2000], seed=7)
    c = testbed.build_image([1000, 2000], seed=8)
    assert a.manifest_digest == b.manifest_digest != c.manifest_digest
    assert len(a.layers) == 2


@pytest.mark.runtime
def test_chunked_push_and_log_counts_bytes(
    registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> None:
    image = testbed.build_image([300_000], seed=71)
    repo = unique_repo("chunked")
    registry.push(image, repo, "1", chunk_bytes=100_000)
    layer = image.layers[0]
    mark = registry.mark()
    r = registry.http.get(f"/v2/{repo}/blobs/{layer.digest}", headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == layer.data[1000:]
    assert registry.http.get(f"/v2/{repo}/blobs/{layer.digest}").content == layer.data
    time.sleep(0.2)
    got = [(x.status, x.bytes) for x in registry.records_since(mark)]
    assert got == [(206, layer.size - 1000), (200, layer.size)]


@pytest.mark.runtime
def test_proxy_throttles_stalls_and_cuts(
    registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> None:
    image = testbed.build_image([400_000], seed=72)
    repo = unique_repo("proxied")
    registry.push(image, repo, "1")
    layer = image.layers[0]
    p = testbed.ThrottleProxy("127.0.0.1", registry.port, rate_bytes_per_second=800_000)
    try:
        with httpx.Client(base_url=p.url, timeout=30) as http:
            t0 = time.monotonic()
            assert http.get(f"/v2/{repo}/blobs/{layer.digest}").content == layer.data
            assert time.monotonic() - t0 >= 0.35  # 400 kB at 800 kB/s
            p.rate_bytes_per_second = None
            p.stall(0.6)
            t0 = time.monotonic()
            assert http.get("/v2/").status_code == 200
            assert time.monotonic() - t0 >= 0.5
            p.resume()
            assert p.live_connections() == 1
            assert p.cut() == 2  # the idle keep-alive connection: both of its sockets
            assert p.live_connections() == 0
        # cut while a body is in flight
        p.rate_bytes_per_second = 100_000
        errors: list[BaseException] = []

        def fetch() -> None:
            try:
                httpx.get(f"{p.url}/v2/{repo}/blobs/{layer.digest}", timeout=30)
            except httpx.TransportError as e:
                errors.append(e)

        t = threading.Thread(target=fetch)
        t.start()
        time.sleep(0.5)
        assert p.cut() >= 2
        t.join(10)
        assert errors, "the cut did not break the download"
    finally:
        p.stop()


@pytest.mark.runtime
def test_cut_mid_pull_is_resumed_by_containerd_with_range(
    cri: CriClient,
    ctrd: ContainerdClient,
    registry: testbed.Registry,
    proxy: testbed.ThrottleProxy,
    unique_repo: Callable[[str], str],
) -> None:
    image = testbed.build_image([6 * MiB], seed=73)
    ref = registry.push(image, unique_repo("cut"), "1")
    layer = image.layers[0]
    proxy.rate_bytes_per_second = 2 * MiB
    mark = registry.mark()
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(cri.pull_image(ref, timeout_seconds=120)))
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = [s for s in ctrd.list_statuses() if s.ref == f"layer-{layer.digest}"]
        if st and st[0].offset_bytes > MiB:
            break
        time.sleep(0.1)
    assert proxy.cut() > 0
    proxy.rate_bytes_per_second = None
    t.join(60)
    assert result == [image.image_id]
    blob_gets = [
        r for r in registry.records_since(mark) if r.method == "GET" and layer.digest in r.path
    ]
    assert [r.status for r in blob_gets][-1] == 206, blob_gets
    cri.remove_image(ref)
