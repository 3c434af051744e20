"""The mirror's cache on a real small filesystem (a loop-mounted ext4 made by the test),
next to a containerd rooted on it: the cache stays within its bound while a pull goes
through, and the mirror's copy of a blob is gone once containerd has committed it."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import testbed
import testbed_disk
from testbed_mirror import MirrorProcess

from mlnode.blobcache import BlobCache
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024


def _disk_bytes(directory: Path) -> int:
    """What the cache directory takes on disk (sparse files counted by their blocks)."""
    total = 0
    for root, _, files in os.walk(directory):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


@pytest.mark.parametrize("retain", [False, True], ids=["dropped", "retained"])
def test_cache_stays_in_its_bound_and_drops_committed_blobs(
    retain: bool,
    tmp_path: Path,
    registry: testbed.Registry,
    small_disk: Callable[[int], Path],
    unique_repo: Callable[[str], str],
) -> None:
    mount = small_disk(400)
    image = testbed.build_image([20 * MiB, 20 * MiB, 20 * MiB], seed=140)
    ref = registry.push(image, unique_repo("disk"), "v1")
    bound = 48 * MiB
    cache = mount / "mirror-cache"
    with testbed_disk.containerd_on(mount, tmp_path / "ctr") as ctr:
        extra = ["--cache-max-bytes", "48MiB", "--reap-interval", "0.5", "--chunk-bytes", "2MiB"]
        if retain:
            extra.append("--retain-committed")
        proxy = registry.proxy(lean=True, rate_bytes_per_second=8 * MiB)
        m = MirrorProcess(
            cache,
            [f"{registry.host}={proxy.url}"],
            extra=tuple(extra),
            runtime_endpoint=str(ctr.socket),
        ).start()
        ctr.trust_registry(registry.host, mirror_url=m.url)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _disk_bytes(cache))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        cri = CriClient(ctr.endpoint)
        try:
            cri.pull_image(ref)
            stop.set()
            sampler.join()
            assert peak <= bound, (peak, bound)
            assert peak > 0, "the pull went through the mirror's cache"
            status = m.status()
            assert status["cache"]["max_bytes"] == bound
            fetched = _sample(m.metrics_text(), "mlnode_mirror_upstream_bytes_total")
            # at most two 20 MiB layers fit in 48 MiB at once: a third is streamed uncached
            # (or cached once an earlier one was dropped)
            assert fetched >= 40 * MiB, fetched
            deadline = time.monotonic() + 20
            layers = {x.digest for x in image.layers}
            while time.monotonic() < deadline:
                held = {e.digest for e in BlobCache(cache).entries()} & layers
                if retain or not held:
                    break
                time.sleep(0.2)
            held = {e.digest for e in BlobCache(cache).entries()} & layers
            if retain:
                assert held, "retained: the committed blobs stay"
            else:
                assert not held, f"still cached after containerd committed them: {held}"
                assert 'mlnode_mirror_cache_evictions_total{reason="committed"}' in m.metrics_text()
        finally:
            stop.set()
            cri.close()
            m.stop()
            proxy.stop()


def _sample(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                total += s.value
    return total


def test_no_room_for_a_blob_the_mirror_has_gc_make_it_first(
    tmp_path: Path,
    registry: testbed.Registry,
    small_disk: Callable[[int], Path],
    unique_repo: Callable[[str], str],
) -> None:
    """Image A fills much of a small disk; B would not fit beside it by the free-space
    arithmetic (the mirror's copy + containerd's + the unpacked estimate, + the reserve). Before
    fetching B's layer the mirror asks for room; the ml GC removes A (not
    in use) and B's pull succeeds, and the mirror's log says what was done."""
    mount = small_disk(520)
    a = testbed.build_image([100 * MiB], seed=150)
    b = testbed.build_image([100 * MiB], seed=151)
    ref_a = registry.push(a, unique_repo("room-a"), "v1")
    ref_b = registry.push(b, unique_repo("room-b"), "v1")
    with testbed_disk.containerd_on(mount, tmp_path / "ctr") as ctr:
        m = MirrorProcess(
            mount / "mirror-cache",
            [f"{registry.host}={registry.url}"],
            extra=(
                "--reap-interval",
                "0.5",
                "--state-file",
                str(tmp_path / "gc-state.json"),
                "--unpack-factor",
                "1",  # random bytes do not compress: a layer unpacks to its own size
            ),
            runtime_endpoint=str(ctr.socket),
        ).start()
        ctr.trust_registry(registry.host, mirror_url=m.url)
        cri = CriClient(ctr.endpoint)
        try:
            cri.pull_image(ref_a)
            # A was pulled (and last used) an hour ago, as on a node where the next job's
            # image arrives later: the GC's minimum age (2 min) no longer protects it
            long_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
            state = {"first_detected": long_ago, "last_used": long_ago}
            (tmp_path / "gc-state.json").write_text(
                json.dumps({"version": 1, "largest_image_bytes": 0, "images": {a.image_id: state}})
            )
            try:
                cri.pull_image(ref_b)
            except Exception as e:
                raise AssertionError(f"{e}\n{m.logs()}") from e
            assert cri.image_status(ref_b) is not None
            assert cri.image_status(ref_a) is None, m.logs()
            logs = m.logs()
            assert "room: " in logs and "GC freed" in logs, logs
            assert "from 1 image(s)" in logs, logs
        finally:
            cri.close()
            m.stop()
