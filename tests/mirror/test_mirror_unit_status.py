"""/metrics (parsed as Prometheus text) after pulls, /mlnode/v1/status against SPEC9's
schema while a blob is fetched and after, /healthz and /v2/."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from mirror_harness import REGISTRY, REPO, Harness, blob_bytes, mirror, read_short, run
from prometheus_client.parser import text_string_to_metric_families

from mlnode.mirror import STATUS_SCHEMA
from mlnode.testing.fake_registry_server import FakeRegistryServer

KiB = 1024


async def _metrics(h: Harness) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    st, hd, body = await h.get(f"{h.url}/metrics")
    assert st == 200 and hd["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _v(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


async def _pull(h: Harness, sizes: list[int]) -> None:
    st, _, body = await h.get(f"{h.url}/v2/{REPO}/manifests/v1?ns={REGISTRY}")
    assert st == 200
    doc = json.loads(body)
    digests = [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    for d in digests:
        st, _, _ = await h.blob(d)
        assert st == 200
        await h.settle(d)


def test_metrics_after_a_pull_and_a_second_pull(tmp_path: Path) -> None:
    layers = [blob_bytes(300 * KiB, seed=1), blob_bytes(70 * KiB, seed=2)]
    up = FakeRegistryServer()
    image = up.add_image(REPO, "v1", layers)
    total = sum(len(up.blobs[d]) for d in (image.config_digest, *image.layer_digests))

    async def go() -> None:
        async with mirror(tmp_path, up, cache_max_bytes=10 * 1024**2) as h:
            await _pull(h, [len(x) for x in layers])
            m = await _metrics(h)
            assert _v(m, "mlnode_mirror_upstream_bytes_total", registry=REGISTRY) == total
            assert (
                _v(m, "mlnode_mirror_served_bytes_total", registry=REGISTRY, source="fetch")
                == total
            )
            assert _v(m, "mlnode_mirror_served_bytes_total", registry=REGISTRY, source="cache") == 0
            assert _v(m, "mlnode_mirror_requests_total", kind="blob", method="GET", code="200") == 3
            assert (
                _v(m, "mlnode_mirror_requests_total", kind="manifest", method="GET", code="200")
                == 1
            )
            assert _v(m, "mlnode_mirror_blobs_in_flight") == 0
            assert _v(m, "mlnode_mirror_cache_max_bytes") == 10 * 1024**2
            assert _v(m, "mlnode_mirror_cache_bytes") == h.service.cache.total_disk_bytes() > 0
            await _pull(h, [len(x) for x in layers])
            m = await _metrics(h)
            assert _v(m, "mlnode_mirror_upstream_bytes_total", registry=REGISTRY) == total
            assert (
                _v(m, "mlnode_mirror_served_bytes_total", registry=REGISTRY, source="cache")
                == total
            )
            assert _v(m, "mlnode_mirror_requests_total", kind="blob", method="GET", code="200") == 6

    run(go())
    assert sum(up.bytes_served.values()) == total


BLOB_KEYS = {
    "digest": str,
    "registry": str,
    "repository": str,
    "image": (str, type(None)),
    "state": str,
    "size_bytes": int,
    "upstream_bytes": int,
    "contiguous_bytes": int,
    "served_bytes": int,
    "clients": int,
    "connections": int,
    "rate_bytes_per_second": float,
    "eta_seconds": (float, int, type(None)),
    "started_monotonic": float,
    "error": (str, type(None)),
}


def _check_schema(doc: dict[str, Any], h: Harness) -> None:
    assert set(doc) == {"schema", "pid", "listen", "cache", "upstreams", "blobs"}
    assert doc["schema"] == STATUS_SCHEMA == "mlnode.mirror.status/v1"
    assert doc["pid"] == os.getpid()
    assert doc["listen"] == h.service.cfg.listen
    assert doc["cache"] == {
        "dir": str(h.service.cfg.cache_dir),
        "disk_bytes": h.service.cache.total_disk_bytes(),
        "max_bytes": h.service.cfg.cache_max_bytes,
    }
    assert doc["upstreams"] == [REGISTRY]
    for b in doc["blobs"]:
        assert set(b) == set(BLOB_KEYS)
        for k, t in BLOB_KEYS.items():
            assert isinstance(b[k], t), (k, b[k])
        assert b["state"] in ("fetching", "verifying", "complete", "failed")


async def _status(h: Harness) -> dict[str, Any]:
    st, _, body = await h.get(f"{h.url}/mlnode/v1/status")
    assert st == 200
    doc: dict[str, Any] = json.loads(body)
    _check_schema(doc, h)
    return doc


def test_status_while_fetching_and_after(tmp_path: Path) -> None:
    layer = blob_bytes(600 * KiB, seed=3)
    up = FakeRegistryServer()
    image = up.add_image(REPO, "v1", [layer])
    d = image.layer_digests[0]
    up.stall(d, at_byte=200 * KiB, seconds=1.0)  # shorter than stall_seconds: no retry
    bad = up.add_blob(REPO, blob_bytes(1000, seed=4))
    up.corrupt(bad)

    async def go() -> None:
        async with mirror(tmp_path, up, stall_seconds=10, connections=2) as h:
            assert (await h.get(f"{h.url}/v2/{REPO}/manifests/v1?ns={REGISTRY}"))[0] == 200
            async with h.session.get(h.blob_url(d)) as r:
                assert await r.content.readexactly(100 * KiB) == layer[: 100 * KiB]
                await asyncio.sleep(0.05)
                doc = await _status(h)
                (b,) = doc["blobs"]
                assert b["digest"] == d and b["state"] == "fetching"
                assert (b["registry"], b["repository"]) == (REGISTRY, REPO)
                assert b["image"] == f"{REGISTRY}/{REPO}:v1"
                assert b["size_bytes"] == len(layer)
                assert b["contiguous_bytes"] == 200 * KiB  # up to the stall
                assert b["upstream_bytes"] >= b["contiguous_bytes"]
                assert 100 * KiB <= b["served_bytes"] <= 200 * KiB
                assert b["clients"] == 1 and b["connections"] >= 1
                assert b["error"] is None
                r.close()
            await _status_after_failure(h, bad)

    run(go())


async def _status_after_failure(h: Harness, bad: str) -> None:
    status, _, short = await read_short(h, h.blob_url(bad))
    assert status == 200 and short
    doc = await _status(h)
    (b,) = [x for x in doc["blobs"] if x["digest"] == bad]
    assert b["state"] == "failed" and "digest mismatch" in b["error"]
    assert b["clients"] == 0 and b["eta_seconds"] is None


def test_complete_blob_listed_after_it_finished(tmp_path: Path) -> None:
    data = blob_bytes(50 * KiB, seed=5)
    up = FakeRegistryServer()
    d = up.add_blob(REPO, data)

    async def go() -> None:
        async with mirror(tmp_path, up) as h:
            await h.blob(d)
            await h.settle(d)
            doc = await _status(h)
            (b,) = doc["blobs"]
            assert b["state"] == "complete" and b["image"] is None
            assert b["upstream_bytes"] == b["contiguous_bytes"] == b["size_bytes"] == len(data)
            assert b["served_bytes"] == len(data) and b["clients"] == 0
            assert doc["cache"]["disk_bytes"] > 0

    run(go())


def test_healthz_and_base(tmp_path: Path) -> None:
    async def go() -> None:
        async with mirror(tmp_path) as h:
            st, _, body = await h.get(f"{h.url}/healthz")
            assert (st, body) == (200, b"ok\n")
            st, hd, body = await h.get(f"{h.url}/v2/")
            assert st == 200 and hd["Docker-Distribution-API-Version"] == "registry/2.0"

    run(go())
