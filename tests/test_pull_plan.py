"""The pure planning of ``mlnode pull``: ranges, chunk sizes, space, leases, backoff."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mlnode.errors import UsageError
from mlnode.ops.pull import (
    BlobPlan,
    PullOptions,
    backoff_seconds,
    choose_chunk_bytes,
    chunk_ranges,
    default_reserve,
    ingest_ref,
    lease_id_for,
    plan_space,
)
from mlnode.registry.manifest import BlobDescriptor
from mlnode.runtime.fs import FilesystemUsage

MiB = 1024 * 1024
GiB = 1024 * MiB


def test_chunk_ranges_cover_exactly() -> None:
    assert chunk_ranges(0, 10, 4) == [(0, 3), (4, 7), (8, 9)]
    assert chunk_ranges(5, 10, 4) == [(5, 8), (9, 9)]
    assert chunk_ranges(10, 10, 4) == []
    ranges = chunk_ranges(123, 10 * MiB + 7, MiB)
    assert ranges[0][0] == 123 and ranges[-1][1] == 10 * MiB + 6
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    with pytest.raises(ValueError):
        chunk_ranges(11, 10, 4)


def test_chunk_size_bounds() -> None:
    assert choose_chunk_bytes(15 * GiB, 4, 8 * MiB) == 8 * MiB
    assert choose_chunk_bytes(32 * MiB, 4, 8 * MiB) == MiB
    assert choose_chunk_bytes(64 * MiB, 2, 8 * MiB) == 4 * MiB
    assert choose_chunk_bytes(100, 4, 8 * MiB) == MiB


def _fs(capacity: int, available: int) -> FilesystemUsage:
    return FilesystemUsage(Path("/var/lib/containerd"), capacity, available, capacity - available)


def test_space_formula() -> None:
    layer = BlobDescriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:l", 10 * GiB)
    plain = BlobDescriptor("application/vnd.oci.image.layer.v1.tar", "sha256:p", 1 * GiB)
    config = BlobDescriptor("application/json", "sha256:c", 1000)
    blobs = [
        BlobPlan("config", config, committed=True),
        BlobPlan("layer", layer, ingest_offset_bytes=4 * GiB),
        BlobPlan("layer", plain),
    ]
    space = plan_space(blobs, _fs(1000 * GiB, 40 * GiB))
    assert space.download_bytes == 6 * GiB + 1 * GiB
    assert space.unpack_estimate_bytes == 20 * GiB + 1 * GiB
    assert space.reserve_bytes == 10 * GiB  # min(5 % of 1000 GiB, 10 GiB)
    assert space.required_bytes == 38 * GiB and space.fits
    small = plan_space(blobs, _fs(100 * GiB, 30 * GiB), reserve_bytes=0, unpack_factor=1.0)
    assert small.required_bytes == 7 * GiB + 11 * GiB and small.fits
    tight = plan_space(blobs, _fs(100 * GiB, 30 * GiB))
    assert tight.reserve_bytes == 5 * GiB and tight.required_bytes == 33 * GiB
    assert not tight.fits and tight.shortfall_bytes == 3 * GiB
    assert "33.0 GiB needed" in tight.describe() and "30.0 GiB available" in tight.describe()
    assert default_reserve(40 * GiB) == 2 * GiB


def test_names_and_backoff() -> None:
    digest = "sha256:" + "ab" * 32
    assert ingest_ref("layer", digest) == "layer-" + digest
    lease = lease_id_for(digest)
    assert lease == "mlnode-pull-" + "ab" * 16 and len(lease) <= 76
    assert [backoff_seconds(n) for n in (1, 2, 3, 10)] == [0.5, 1.0, 2.0, 30.0]


def test_options_validation() -> None:
    with pytest.raises(UsageError, match="--connections"):
        PullOptions(connections=0)
    with pytest.raises(UsageError, match="--stall-timeout"):
        PullOptions(stall_timeout_seconds=0)
