"""The blob cache: ranges arithmetic (against a set-of-bytes model), durable maps, sparse
files, removal."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlnode.blobcache import BlobCache, Ranges

SIZE = 200


@given(st.lists(st.tuples(st.integers(0, SIZE), st.integers(0, SIZE)), max_size=12))
def test_ranges_match_a_set_of_offsets(spans: list[tuple[int, int]]) -> None:
    r = Ranges()
    model: set[int] = set()
    for a, b in spans:
        r.add(a, b)
        model.update(range(a, b))
    assert r.total() == len(model)
    prefix = 0
    while prefix in model:
        prefix += 1
    assert r.prefix() == prefix
    gap_bytes = {i for s, e in r.gaps(0, SIZE) for i in range(s, e)}
    assert gap_bytes == set(range(SIZE)) - model
    spans_out = r.spans()
    assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(spans_out))
    for a, b in spans:
        assert r.covers(a, b)


def test_from_json_drops_malformed_and_out_of_range() -> None:
    r = Ranges.from_json([[0, 10], [5, 400], ["a", 3], [True, 4], [20, 30]], 100)
    assert r.spans() == [(0, 10), (20, 30)]
    assert Ranges.from_json({"x": 1}, 100).is_empty()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_partial_blob_survives_reopen_and_is_sparse(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    d = _digest(data)
    cache = BlobCache(tmp_path)
    f = cache.open(d, size_bytes=len(data), registry="r:5000", repository="a/b", private=False)
    f.write_at(0, data[:4096])
    f.write_at(512 * 1024, data[512 * 1024 : 512 * 1024 + 4096])
    f.checkpoint()
    f.write_at(4096, data[4096:8192])  # not checkpointed: must not be claimed after a crash
    os.close(f.fd)  # a kill -9: no close(), no last checkpoint
    (entry,) = cache.entries()
    assert entry.digest == d and entry.size_bytes == len(data)
    assert entry.present_bytes == 8192
    assert entry.disk_bytes < len(data) // 4  # sparse: the gap takes no disk
    assert not entry.complete
    g = cache.open(d, size_bytes=len(data), registry="r:5000", repository="a/b", private=False)
    assert g.missing(0, 8192) == [(4096, 8192)]
    assert g.contiguous_bytes == 4096
    g.close()


def test_complete_then_discard_then_remove(tmp_path: Path) -> None:
    data = b"x" * 10000
    d = _digest(data)
    cache = BlobCache(tmp_path)
    f = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=True)
    f.write_at(0, data)
    f.mark_complete()
    f.close()
    (entry,) = cache.entries()
    assert entry.complete and entry.private and entry.present_bytes == len(data)
    g = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=False)
    assert g.complete and g.private
    g.discard()
    g.close()
    (entry,) = cache.entries()
    assert not entry.complete and entry.present_bytes == 0
    assert cache.remove(d) >= 0
    assert cache.entries() == []
    assert cache.remove(d) == 0


def test_a_map_claiming_more_than_the_file_is_not_trusted(tmp_path: Path) -> None:
    data = b"y" * 5000
    d = _digest(data)
    cache = BlobCache(tmp_path)
    f = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=False)
    f.write_at(0, data)
    f.mark_complete()
    f.close()
    data_path, map_path = cache.paths(d)
    data_path.unlink()  # the data went away, the map stayed
    g = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=False)
    assert not g.complete and g.present_bytes == 0
    g.close()
    map_path.write_text("{not json")
    (entry,) = cache.entries()
    assert entry.present_bytes == 0 and not entry.complete
    doc = {"schema": "mlnode.blobcache/v1", "size_bytes": 5000, "ranges": [[0, 5000]]}
    map_path.write_text(json.dumps(doc))
    (entry,) = cache.entries()
    assert not entry.complete  # complete needs the verified flag, not just the ranges


def test_written_ranges_are_trusted_on_the_same_boot_only(tmp_path: Path) -> None:
    """A cheap (unsynced) map write survives a killed process: its "written" ranges are
    trusted while the boot is the same; after a reboot only the fdatasync'ed ones are."""
    data = bytes(range(256)) * 1024  # 256 KiB
    d = _digest(data)
    cache = BlobCache(tmp_path)
    f = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=False)
    f.write_at(0, data[:4096])
    f.checkpoint()  # durable: 0-4096
    f.write_at(4096, data[4096:65536])
    f.checkpoint(durable=False)  # written: 0-65536, no fsync
    os.close(f.fd)  # kill -9
    (entry,) = cache.entries()
    assert entry.present_bytes == 65536  # same boot: what the kernel has counts
    assert cache.first_gap(d, len(data)) == (65536, len(data))
    _, map_path = cache.paths(d)
    doc = json.loads(map_path.read_text())
    assert doc["ranges"] == [[0, 4096]] and doc["written"] == [[0, 65536]]
    doc["boot_id"] = "another-boot"
    map_path.write_text(json.dumps(doc))
    (entry,) = cache.entries()
    assert entry.present_bytes == 4096  # after a reboot: only what was fdatasync'ed
    g = cache.open(d, size_bytes=len(data), registry="r", repository="a", private=False)
    assert g.missing(0, 65536) == [(4096, 65536)]
    g.close()


def test_an_unsynced_map_write_does_not_wait_for_a_durable_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a durable checkpoint's fdatasync runs (in a worker thread, for tens of ms on a
    big blob), the engine's cheap map writes still land: a kill -9 then loses ~one of them,
    not everything since the flush began. Afterwards the map holds both: the flushed ranges
    as durable, the newest written ranges as written."""
    data = bytes(range(256)) * 1024
    d = _digest(data)
    f = BlobCache(tmp_path).open(
        d, size_bytes=len(data), registry="r", repository="a", private=False
    )
    flushing, release = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        flushing.set()
        assert release.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    f.write_at(0, data[:4096])
    durable = threading.Thread(target=f.persist, args=(f.snapshot(durable=True),))
    durable.start()
    assert flushing.wait(10)
    f.write_at(4096, data[4096:65536])
    assert f.persist_nowait(f.snapshot(durable=False))
    _, map_path = f.cache.paths(d)
    doc = json.loads(map_path.read_text())
    assert doc["written"] == [[0, 65536]] and doc["ranges"] == []
    release.set()
    durable.join(10)
    doc = json.loads(map_path.read_text())
    assert doc["written"] == [[0, 65536]] and doc["ranges"] == [[0, 4096]]
    os.close(f.fd)
