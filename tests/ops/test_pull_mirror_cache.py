"""``mlnode pull``'s free-space check with the node mirror's cache (fakes, virtual clock).

The pull does not fit; the cache's complete blob counts as freeable and the pull's GC
hook frees it before the old image, which stays.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlnode.blobcache import BlobCache
from mlnode.gc import ObservedImage
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.mirror_cache import reclaimable_bytes
from mlnode.ops.pull import Puller, PullOptions, gc_free_space, plan_space
from mlnode.registry.manifest import Platform
from mlnode.runtime.fs import FilesystemUsage
from mlnode.testing import (
    FakeClock,
    FakeContentStore,
    FakeFilesystem,
    FakeImageService,
    FakePullStatuses,
    FakeRegistry,
)

MiB = 1024 * 1024


class MeteredCache(BlobCache):
    def __init__(self, directory: Path, fs: FakeFilesystem) -> None:
        super().__init__(directory)
        self.fs = fs

    def remove(self, digest: str) -> int:
        freed = super().remove(digest)
        self.fs.free(freed)
        return freed


def test_space_plan_records_the_reclaimable_bytes() -> None:
    fs = FilesystemUsage(Path("/x"), 100, 10, 90)
    space = plan_space([], fs, reserve_bytes=20, mirror_cache_reclaimable_bytes=15)
    assert not space.fits and space.cache_suffices and space.freeable_bytes == 15
    assert space.to_json()["mirror_cache_reclaimable_bytes"] == 15
    assert "reclaimable from the mirror cache" in space.describe()
    assert not plan_space(
        [], fs, reserve_bytes=26, mirror_cache_reclaimable_bytes=15
    ).cache_suffices


def test_pull_frees_the_mirror_cache_before_an_image(tmp_path: Path) -> None:
    clock = FakeClock()
    registry = FakeRegistry(clock, read_timeout_seconds=2.0)
    content = FakeContentStore()
    fs = FakeFilesystem(capacity_bytes=100 * MiB, available_bytes=2 * MiB)
    cri = FakeImageService(content, registry, filesystem=fs)
    old = cri.add_image("registry.test/ml/old:1", 20 * MiB)
    state = tmp_path / "state.json"
    ImageStateFile(state).observe(
        [ObservedImage(old.id, 20 * MiB)], frozenset(), datetime.now(UTC) - timedelta(days=1)
    )
    cache = MeteredCache(tmp_path / "mirror", fs)
    blob = cache.open(
        "sha256:" + "1" * 64, size_bytes=4 * MiB, registry="r", repository="x", private=False
    )
    blob.write_at(0, b"z" * (4 * MiB))
    blob.mark_complete()
    blob.close()
    held = cache.total_disk_bytes()  # the blob's allocated blocks, what removing it frees
    assert held >= MiB
    image = registry.push("registry.test/ml/app:1", [random.Random(3).randbytes(MiB)])
    events: list[dict[str, Any]] = []
    pulls = FakePullStatuses()
    puller = Puller(
        registry=registry,
        containerd=content,
        cri=cri,
        filesystem=fs,
        options=PullOptions(platform=Platform("linux", "amd64"), reserve_bytes=0),
        emit=events.append,
        free_space=gc_free_space(
            cri, pulls, fs.path, state_file=state, emit=events.append, measure=fs, cache=cache
        ),
        clock=clock,
        reclaimable=lambda: reclaimable_bytes(cache),
    )
    puller.pull(image.reference)
    space = [e for e in events if e["event"] == "space"]
    assert space[0]["fits"] is False
    assert space[0]["mirror_cache_reclaimable_bytes"] == held
    gc = next(e for e in events if e["event"] == "gc")
    assert gc["mirror_cache_bytes_freed"] == held == gc["bytes_freed"]
    assert cri.removed == [] and cache.entries() == []
    assert space[-1]["fits"] is True and space[-1]["mirror_cache_reclaimable_bytes"] == 0
