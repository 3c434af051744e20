"""Disk findings: the kubelet's own arithmetic (usage truncation, >= high, eviction reserve)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlnode.doctor._disk import disk_findings, eviction_reserve_bytes, headroom_bytes
from mlnode.doctor._model import ImageFs, Setting

GIB = 1 << 30
LIMITS = {
    "image_gc_high_threshold_percent": Setting(85, "default of kubelet 1.30.2"),
    "image_gc_low_threshold_percent": Setting(80, "default of kubelet 1.30.2"),
    "eviction_hard": Setting(
        {"imagefs.available": "15%", "nodefs.available": "10%", "memory.available": "100Mi"},
        "default of kubelet 1.30.2",
    ),
}


def _codes(fs: ImageFs, largest: tuple[str, int, bool] | None = None) -> set[str]:
    return {f.code for f in disk_findings("n1", fs, LIMITS, largest=largest)}


def test_usage_truncates_as_the_kubelet_does() -> None:
    # 15.9 % free is 85 % used: GC runs (high 85, usage >= high)
    fs = ImageFs(capacity_bytes=1000 * GIB, available_bytes=159 * GIB)
    assert fs.usage_percent == 85
    assert "D104" in _codes(fs)
    assert "D104" not in _codes(ImageFs(capacity_bytes=1000 * GIB, available_bytes=160 * GIB))


def test_under_the_eviction_reserve_is_disk_pressure() -> None:
    fs = ImageFs(capacity_bytes=100 * GIB, available_bytes=14 * GIB)
    assert "D105" in _codes(fs)
    assert "D105" not in _codes(ImageFs(capacity_bytes=100 * GIB, available_bytes=15 * GIB))


def test_a_shared_nodefs_brings_its_own_signal() -> None:
    limits = {
        "eviction_hard": Setting({"imagefs.available": "5%", "nodefs.available": "20Gi"}, "x")
    }
    alone = ImageFs(capacity_bytes=100 * GIB, available_bytes=50 * GIB)
    shared = ImageFs(capacity_bytes=100 * GIB, available_bytes=50 * GIB, shared_with_nodefs=True)
    assert eviction_reserve_bytes(limits, alone) == (5 * GIB, "imagefs.available<5%")
    assert eviction_reserve_bytes(limits, shared) == (20 * GIB, "nodefs.available<20Gi")
    assert headroom_bytes(shared, limits) == 30 * GIB


def test_largest_image_counts_blobs_and_unpacked_layers() -> None:
    fs = ImageFs(capacity_bytes=500 * GIB, available_bytes=120 * GIB)  # headroom 45 GiB
    assert headroom_bytes(fs, LIMITS) == 45 * GIB
    assert "D103" in _codes(fs, ("train:v1", 16 * GIB, True))  # 48 GiB on disk
    assert "D103" not in _codes(fs, ("train:v1", 15 * GIB, True))  # 45 GiB: fits exactly
    assert "D103" not in _codes(fs, ("declared", 45 * GIB, False))
    fit = next(
        f
        for f in disk_findings("n1", fs, LIMITS, largest=("train:v1", 16 * GIB, True))
        if f.code == "D103"
    )
    assert fit.subject == "train:v1" and "48.0 GiB" in fit.title and "45.0 GiB" in fit.title


def test_capacity_zero_is_the_only_finding() -> None:
    assert _codes(ImageFs(capacity_bytes=0, available_bytes=0)) == {"D106"}


def test_root_and_nodefs_sharing_are_named() -> None:
    fs = ImageFs(100 * GIB, 60 * GIB, shared_with_os=True, shared_with_nodefs=True)
    assert {"D101", "D102", "D108"} <= _codes(fs)


@given(
    cap=st.integers(min_value=1, max_value=1 << 50),
    frac=st.fractions(min_value=0, max_value=1),
)
def test_headroom_never_exceeds_available(cap: int, frac: object) -> None:
    avail = int(cap * frac)  # type: ignore[operator]
    fs = ImageFs(cap, avail)
    room = headroom_bytes(fs, LIMITS)
    assert 0 <= room <= avail
    assert 0 <= fs.usage_percent <= 100
