"""The ml policy frees the node mirror's cache before any image (pure side)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlnode.gc import (
    FilesystemState,
    GcImage,
    GcPolicy,
    MirrorBlob,
    PolicyName,
    plan,
    plan_kubelet,
    plan_to_json,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GB = 10**9


def img(image_id: str, size: int, **kw: object) -> GcImage:
    return GcImage(
        id=image_id,
        size_bytes=size,
        first_detected=NOW - timedelta(days=3),
        last_used=NOW - timedelta(days=1),
        **kw,  # type: ignore[arg-type]
    )


def blob(n: int, disk: int, *, complete: bool = True, age: float = 0.0, **kw: object) -> MirrorBlob:
    return MirrorBlob(
        digest=f"sha256:{n:064x}",
        disk_bytes=disk,
        complete=complete,
        last_access_unix=1_000_000.0 - age,
        **kw,  # type: ignore[arg-type]
    )


# 100 GB disk, 10 GB free; headroom 30 GB -> 20 GB to free.
FS = FilesystemState(capacity_bytes=100 * GB, available_bytes=10 * GB)
POLICY = GcPolicy(headroom_bytes=30 * GB, minimum_age_seconds=0)
IMAGES = (img("old", 25 * GB), img("new", 5 * GB))


def ml(mirror: list[MirrorBlob]):  # type: ignore[no-untyped-def]
    return plan(PolicyName.ML, IMAGES, FS, POLICY, now=NOW, mirror=mirror)


def test_cache_alone_suffices_no_image_removed() -> None:
    p = ml([blob(1, 12 * GB, age=10), blob(2, 9 * GB, age=20), blob(3, 50 * GB, age=0)])
    assert [r.reason for r in p.removed] == ["mirror-cache", "mirror-cache"]
    # least recently accessed first: blob 2 (age 20), then blob 1 (age 10)
    assert [r.id for r in p.removed] == [blob(2, 1).digest, blob(1, 1).digest]
    assert p.bytes_freed == 21 * GB and p.satisfied
    assert {k.id for k in p.kept} >= {"old", "new"}


def test_cache_short_then_images_for_the_rest() -> None:
    p = ml([blob(1, 4 * GB)])
    assert [(r.id, r.reason) for r in p.removed] == [
        (blob(1, 1).digest, "mirror-cache"),
        ("old", "space"),
    ]
    assert p.bytes_to_free == 20 * GB and p.satisfied


def test_partial_and_in_flight_blobs_are_never_removed() -> None:
    p = ml([blob(1, 40 * GB, complete=False), blob(2, 40 * GB, in_flight=True)])
    assert all(r.reason != "mirror-cache" for r in p.removed)
    assert [r.id for r in p.removed] == ["old"]
    assert any("left to the mirror" in e for e in p.explanations)


def test_nothing_due_frees_nothing_from_the_cache() -> None:
    roomy = FilesystemState(capacity_bytes=100 * GB, available_bytes=50 * GB)
    p = plan(PolicyName.ML, IMAGES, roomy, POLICY, now=NOW, mirror=[blob(1, GB)])
    assert p.removed == () and not p.triggered


def test_kubelet_policy_ignores_the_mirror() -> None:
    kubelet_policy = GcPolicy(high_threshold_percent=85, low_threshold_percent=80)
    full = FilesystemState(capacity_bytes=100 * GB, available_bytes=5 * GB)
    with_cache = plan(
        PolicyName.KUBELET, IMAGES, full, kubelet_policy, now=NOW, mirror=[blob(1, 90 * GB)]
    )
    assert with_cache == plan_kubelet(IMAGES, full, kubelet_policy, now=NOW)
    assert all(r.reason != "mirror-cache" for r in with_cache.removed)


def test_json_lists_cache_removals_with_their_reason() -> None:
    doc = plan_to_json(ml([blob(1, 30 * GB)]))
    assert doc["removed"] == [
        {"id": blob(1, 1).digest, "size_bytes": 30 * GB, "reason": "mirror-cache"}
    ]


def test_mirror_blob_validates() -> None:
    with pytest.raises(ValueError):
        MirrorBlob(digest="", disk_bytes=1, complete=True, last_access_unix=0.0)
    with pytest.raises(ValueError):
        blob(1, -1)
