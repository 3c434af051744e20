"""``mlnode mirror`` in front of a real registry, with a real containerd 1.6.20 pulling
through it by CRI PullImage (hosts.toml), as the kubelet's pulls do."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testbed
from test_pull import served_bytes
from testbed_mirror import MirrorProcess

from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024


@pytest.fixture
def mirror_for(
    tmp_path: Path, containerd: testbed.Containerd, registry: testbed.Registry
) -> Iterator[Callable[..., MirrorProcess]]:
    """Start a mirror (upstream: the registry, or ``upstream_url``) and wire containerd to
    it for the registry's host; unwired and stopped after the test."""
    started: list[MirrorProcess] = []

    def start(
        upstream_url: str | None = None,
        *extra: str,
        cache: Path | None = None,
        port: int | None = None,
    ) -> MirrorProcess:
        m = MirrorProcess(
            cache or tmp_path / "cache",
            [f"{registry.host}={upstream_url or registry.url}"],
            extra=extra,
            port=port,
            runtime_endpoint=str(containerd.socket),
        ).start()
        started.append(m)
        containerd.trust_registry(registry.host, mirror_url=m.url)
        return m

    yield start
    containerd.trust_registry(registry.host)
    for m in started:
        m.stop()


def _remove(cri: CriClient, ref: str) -> None:
    with contextlib.suppress(Exception):
        cri.remove_image(ref)


def _blob_gets(registry: testbed.Registry, mark: int, digest: str) -> list[testbed.AccessRecord]:
    return [
        r
        for r in registry.records_since(mark)
        if r.method == "GET" and r.path.startswith("/v2/") and digest in r.path
    ]


def test_cri_pull_through_the_mirror_multi_layer(
    cri: CriClient,
    registry: testbed.Registry,
    mirror_for: Callable[..., MirrorProcess],
    unique_repo: Callable[[str], str],
) -> None:
    image = testbed.build_image([3 * MiB, 5 * MiB, 1 * MiB], seed=91)
    repo = unique_repo("multi")
    ref = registry.push(image, repo, "v1")
    m = mirror_for()
    mark = registry.mark()
    try:
        cri.pull_image(ref)
        assert cri.image_status(ref) is not None
        status = m.status()
        by_digest = {b["digest"]: b for b in status["blobs"]}
        for layer in image.layers:
            b = by_digest[layer.digest]
            assert b["state"] == "complete"
            assert b["served_bytes"] == layer.size
            assert b["image"] == ref
        # the registry served each layer once, to the mirror
        assert served_bytes(registry, mark) <= 1.01 * image.compressed_size
    finally:
        _remove(cri, ref)
