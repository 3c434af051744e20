"""What the mirror passes on from the upstream (statuses, challenges, credentials), who
gets a cached private blob, and which ``?ns=`` it serves at all."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from mirror_harness import REGISTRY, REPO, blob_bytes, free_port, metric, mirror, run

from mlnode.mirror import UpstreamConfig
from mlnode.testing.fake_registry_server import FakeRegistryServer

RIGHT = "Basic dXNlcjpyaWdodA=="
WRONG = "Basic dXNlcjp3cm9uZw=="
CHALLENGE = 'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:team/app:pull"'


def test_unreachable_upstream_is_502_at_once(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    d = "sha256:" + "ab" * 32

    async def go() -> None:
        ups = {REGISTRY: UpstreamConfig(registry=REGISTRY, endpoint=dead)}
        async with mirror(tmp_path, upstreams=ups) as h:
            st, _, body = await h.blob(d)
            assert st == 502 and b"unreachable" in body
            st, _, _ = await h.get(f"{h.url}/v2/{REPO}/manifests/v1?ns={REGISTRY}")
            assert st == 502
            assert (
                metric(h, "mlnode_mirror_upstream_errors_total", registry=REGISTRY, status="502")
                == 2
            )
            assert d not in h.service.engine.fetches

    run(go())


@pytest.mark.parametrize("status", [404, 500, 503])
def test_upstream_statuses_pass_through(tmp_path: Path, status: int) -> None:
    up = FakeRegistryServer()
    d = up.add_blob(REPO, blob_bytes(5000))
    up.fail(d, status, times=1)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            st, _, body = await h.blob(d)
            assert st == status and f"told to answer {status}".encode() in body
            assert (
                metric(
                    h, "mlnode_mirror_upstream_errors_total", registry=REGISTRY, status=str(status)
                )
                == 1
            )
            st, _, _ = await h.get(f"{h.url}/v2/{REPO}/manifests/nope?ns={REGISTRY}")
            assert st == 404
            assert (await h.blob(d))[0] == 200  # the upstream is fine again: so are we

    run(go())


def test_challenge_passed_through_and_credentials_forwarded(tmp_path: Path) -> None:
    up = FakeRegistryServer()
    image = up.add_image(REPO, "v1", [blob_bytes(70_000, seed=2)])
    d = image.layer_digests[0]
    up.require_auth(RIGHT, repository=REPO, challenge=CHALLENGE)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            murl = f"{h.url}/v2/{REPO}/manifests/v1?ns={REGISTRY}"
            for url in (murl, h.blob_url(d)):
                st, hd, _ = await h.get(url)
                assert st == 401 and hd["WWW-Authenticate"] == CHALLENGE, url
            st, hd, _ = await h.get(murl, headers={"Authorization": RIGHT})
            assert st == 200 and hd["Docker-Content-Digest"] == image.manifest_digest
            st, _, _ = await h.blob(d, auth=RIGHT)
            assert st == 200
            assert (
                metric(h, "mlnode_mirror_upstream_errors_total", registry=REGISTRY, status="401")
                == 0
            )

    run(go())
    sent = [r.authorization for r in up.requests]
    assert sent[:2] == [None, None]
    assert sent[2:] and all(a == RIGHT for a in sent[2:])  # forwarded unchanged, every time


def test_cached_private_blob_needs_the_upstreams_yes(tmp_path: Path) -> None:
    data = blob_bytes(300_000, seed=3)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.require_auth(RIGHT, digest=d, challenge=CHALLENGE)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            assert (await h.blob(d, auth=RIGHT))[2] == data
            await h.settle(d)
            served = up.bytes_served[d]
            for auth in (None, WRONG):
                st, hd, body = await h.blob(d, auth=auth)
                assert st == 401 and hd["WWW-Authenticate"] == CHALLENGE and data not in body
            st, _, body = await h.blob(d, auth=RIGHT)
            assert (st, body) == (200, data)
            assert up.bytes_served[d] == served  # a cache hit, after the upstream's yes
            heads = [r.authorization for r in up.blob_requests(d, "HEAD")]
            assert heads == [None, WRONG, RIGHT]

    run(go())


def test_private_blob_in_flight_is_refused_without_credentials(tmp_path: Path) -> None:
    data = blob_bytes(400_000, seed=4)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)
    up.require_auth(RIGHT, digest=d)
    up.stall(d, at_byte=100_000, seconds=0.3)

    async def go() -> None:
        async with mirror(tmp_path, up, stall_seconds=5, connections=1) as h:
            first = asyncio.ensure_future(h.blob(d, auth=RIGHT))
            while d not in h.service.engine.fetches:
                await asyncio.sleep(0.01)
            assert h.service.engine.fetches[d].state == "fetching"
            st, _, body = await h.blob(d)
            assert st == 401 and not body.startswith(data[:100])
            assert (await first)[2] == data

    run(go())


def test_public_blob_is_served_without_a_check(tmp_path: Path) -> None:
    data = blob_bytes(100_000, seed=5)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            assert (await h.blob(d))[2] == data
            await h.settle(d)
            n = len(up.requests)
            assert (await h.blob(d))[2] == data
            assert (await h.blob(d, auth=WRONG))[2] == data  # public: nobody's credentials matter
            assert len(up.requests) == n  # no HEAD, no GET

    run(go())


def test_namespaces(tmp_path: Path) -> None:
    data = blob_bytes(1000, seed=6)
    up = FakeRegistryServer()
    d = up.add_blob("library/busybox", data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            base = f"{h.url}/v2/library/busybox/blobs/{d}"
            # not configured: 404 so containerd falls through, and nothing asked upstream
            for url in (f"{base}?ns=evil.example", base, f"{base}?ns=docker.io"):
                st, _, body = await h.get(url)
                assert st == 404 and b"not configured" in body, url
            st, _, _ = await h.get(f"{h.url}/v2/library/busybox/manifests/x?ns=evil.example")
            assert st == 404
            assert up.requests == []
            # docker.io and its aliases, and requests without ?ns= once a default is set
            up_cfg = UpstreamConfig(registry="docker.io", endpoint=h.up_url)
            cfg = replace(
                h.service.cfg,
                default_registry="docker.io",
                upstreams={**h.service.cfg.upstreams, "docker.io": up_cfg},
            )
            h.service.mirror.cfg = cfg
            h.service.upstreams["docker.io"] = type(h.service.upstreams[REGISTRY])(
                up_cfg, stall_seconds=cfg.stall_seconds
            )
            for url in (
                base,
                f"{base}?ns=docker.io",
                f"{base}?ns=index.docker.io",
                f"{base}?ns=registry-1.docker.io",
            ):
                st, _, body = await h.get(url)
                assert (st, body) == (200, data), url
            st, _, body = await h.get(f"{base}?ns=evil.example")
            assert st == 404

    run(go())
