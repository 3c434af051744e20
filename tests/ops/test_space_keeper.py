"""ImageFsSpaceKeeper: the mirror's ask for room, on the fakes of mlnode.testing.

Each test builds a node: a FakeFilesystem, a FakeImageService whose removals free bytes
on it, and a real BlobCache in a temp dir whose removals free their disk bytes on it too
(MeteredCache), so the keeper's measure sees what GC did. Reserve 0 unless a test says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlnode.blobcache import BlobCache
from mlnode.errors import InsufficientSpace, InvalidValue
from mlnode.gc import ObservedImage
from mlnode.ops.gc_runtime import CriGcRuntime
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.space import ImageFsSpaceKeeper, ml_gc_runner
from mlnode.ports import SpaceKeeper
from mlnode.runtime.cri import CriImage
from mlnode.testing import FakeFilesystem, FakeImageService, FakePullStatuses

KiB = 1024
MiB = 1024 * KiB
BLOB = 64 * KiB


class MeteredCache(BlobCache):
    """A BlobCache whose removals show on a FakeFilesystem, as they would on statvfs."""

    def __init__(self, directory: Path, fs: FakeFilesystem) -> None:
        super().__init__(directory)
        self.fs = fs
        self.removed: list[str] = []

    def remove(self, digest: str) -> int:
        freed = super().remove(digest)
        self.removed.append(digest)
        self.fs.free(freed)
        return freed


def put_blob(cache: BlobCache, n: int, *, complete: bool, size: int = BLOB) -> str:
    digest = f"sha256:{n:064x}"
    f = cache.open(digest, size_bytes=size, registry="r.test", repository="team/x", private=False)
    try:
        f.write_at(0, b"x" * (size if complete else size // 2))
        if complete:
            f.mark_complete()
        else:
            f.checkpoint()
    finally:
        f.close()
    return digest


class Node:
    def __init__(self, tmp_path: Path, *, available: int, capacity: int = 100 * MiB) -> None:
        self.fs = FakeFilesystem(capacity_bytes=capacity, available_bytes=available)
        self.cri = FakeImageService(filesystem=self.fs)
        self.pulls = FakePullStatuses()
        self.cache = MeteredCache(tmp_path / "mirror", self.fs)
        self.state = tmp_path / "state.json"
        self.runtime = CriGcRuntime(self.cri, self.pulls, self.fs.path, measure=self.fs)

    def image(self, ref: str, size: int, *, old: bool = True, pinned: bool = False) -> CriImage:
        image = self.cri.add_image(ref, size, pinned=pinned)
        if old:  # first seen a day ago: past the minimum age
            ImageStateFile(self.state).observe(
                [ObservedImage(image.id, size)], frozenset(), datetime.now(UTC) - timedelta(days=1)
            )
        return image

    def keeper(self, *, gc: bool = True, reserve: int | None = 0) -> ImageFsSpaceKeeper:
        runner = ml_gc_runner(self.runtime, cache=self.cache, state_file=self.state)
        return ImageFsSpaceKeeper(
            meter=self.fs, cache=self.cache, gc=runner if gc else None, reserve_bytes=reserve
        )


def test_exactly_enough_free_removes_nothing(tmp_path: Path) -> None:
    node = Node(tmp_path, available=10 * MiB)
    node.image("r.test/a:1", 20 * MiB)
    put_blob(node.cache, 1, complete=True)
    line = node.keeper().ensure_room(10 * MiB, what="blob b1")
    assert "nothing freed" in line and "\n" not in line
    # the caller's total already holds its unpack estimate: no "0 B unpacked" claim
    assert "10.0 MiB incoming" in line and "unpacked" not in line, line
    assert node.cri.removed == [] and node.cache.removed == []


def test_one_byte_short_frees_the_cache_not_the_image(tmp_path: Path) -> None:
    node = Node(tmp_path, available=10 * MiB)
    node.image("r.test/a:1", 20 * MiB)
    digest = put_blob(node.cache, 1, complete=True)
    line = node.keeper().ensure_room(10 * MiB + 1, what="blob b1")
    assert node.cache.removed == [digest]
    assert node.cri.removed == []
    assert "from the mirror cache (1 blob(s))" in line and "from 0 image(s)" in line


def test_cache_alone_suffices_takes_only_what_is_needed(tmp_path: Path) -> None:
    node = Node(tmp_path, available=1 * MiB)
    node.image("r.test/a:1", 20 * MiB)
    digests = [put_blob(node.cache, n, complete=True) for n in range(1, 5)]
    node.keeper().ensure_room(1 * MiB + BLOB, what="blob")
    assert len(node.cache.removed) == 1 and node.cache.removed[0] in digests
    assert node.cri.removed == []
    assert len(node.cache.entries()) == 3


def test_images_needed_after_the_cache(tmp_path: Path) -> None:
    node = Node(tmp_path, available=1 * MiB)
    image = node.image("r.test/a:1", 20 * MiB)
    put_blob(node.cache, 1, complete=True)
    line = node.keeper().ensure_room(5 * MiB, what="blob")
    assert len(node.cache.removed) == 1
    assert node.cri.removed == [image.id]
    assert "from 1 image(s)" in line


def test_partial_blobs_are_never_freed(tmp_path: Path) -> None:
    node = Node(tmp_path, available=1 * MiB)
    put_blob(node.cache, 1, complete=False, size=8 * MiB)
    with pytest.raises(InsufficientSpace, match="not enough"):
        node.keeper().ensure_room(2 * MiB, what="blob")
    assert node.cache.removed == []
    assert len(node.cache.entries()) == 1


def test_blob_being_ingested_by_containerd_is_kept(tmp_path: Path) -> None:
    from mlnode.runtime.containerd import IngestStatus

    node = Node(tmp_path, available=1 * MiB)
    digest = put_blob(node.cache, 1, complete=True)
    node.pulls.statuses.append(IngestStatus(f"layer-{digest}", 0, BLOB, None, None))
    with pytest.raises(InsufficientSpace):
        node.keeper().ensure_room(1 * MiB + 1, what="blob")
    assert node.cache.removed == []


@pytest.mark.parametrize("protection", ["pinned", "in use", "warm"])
def test_nothing_removable_raises(tmp_path: Path, protection: str) -> None:
    node = Node(tmp_path, available=1 * MiB)
    image = node.image(
        "r.test/a:1", 20 * MiB, old=protection != "warm", pinned=protection == "pinned"
    )
    if protection == "in use":
        node.cri.run_container(image)
    with pytest.raises(InsufficientSpace, match="short by"):
        node.keeper().ensure_room(2 * MiB, what="blob b9")
    assert node.cri.removed == []


def test_gc_off_raises_without_removing(tmp_path: Path) -> None:
    node = Node(tmp_path, available=1 * MiB)
    node.image("r.test/a:1", 20 * MiB)
    put_blob(node.cache, 1, complete=True)
    with pytest.raises(InsufficientSpace, match="GC is off"):
        node.keeper(gc=False).ensure_room(2 * MiB, what="blob")
    assert node.cache.removed == [] and node.cri.removed == []


def test_reserve_is_the_pulls_default(tmp_path: Path) -> None:
    # default reserve: 5 % of capacity (5 MiB of 100 MiB), as mlnode pull's check
    node = Node(tmp_path, available=10 * MiB)
    keeper = node.keeper(gc=False, reserve=None)
    keeper.ensure_room(5 * MiB, what="blob")
    with pytest.raises(InsufficientSpace):
        keeper.ensure_room(5 * MiB + 1, what="blob")


def test_no_cache_dir_is_no_mirror(tmp_path: Path) -> None:
    node = Node(tmp_path, available=1 * MiB)
    image = node.image("r.test/a:1", 20 * MiB)
    assert not node.cache.directory.exists()
    node.keeper().ensure_room(2 * MiB, what="blob")
    assert node.cri.removed == [image.id]


def test_negative_incoming_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):
        Node(tmp_path, available=MiB).keeper().ensure_room(-1, what="blob")


def test_is_a_space_keeper(tmp_path: Path) -> None:
    keeper: SpaceKeeper = Node(tmp_path, available=MiB).keeper()
    assert keeper.ensure_room(0, what="nothing").startswith("nothing: fits")
