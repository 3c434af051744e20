"""What holds the image filesystem (D109) and GC that cannot reach its low threshold (D110)."""

from __future__ import annotations

from mlnode.doctor._holders import HeldImage, holder_findings
from mlnode.doctor._model import ImageFs, Setting

GIB = 1 << 30
LIMITS = {
    "image_gc_high_threshold_percent": Setting(85, "default of kubelet 1.30.2"),
    "image_gc_low_threshold_percent": Setting(80, "default of kubelet 1.30.2"),
}
IMAGES = [
    HeldImage("train:v1", 40 * GIB, in_use=True, pinned=False),
    HeldImage("train:v0", 30 * GIB, in_use=False, pinned=False),
    HeldImage("pause:3.9", 1 << 20, in_use=False, pinned=True),
    HeldImage("eval:v2", 20 * GIB, in_use=True, pinned=False),
]


def _codes(fs: ImageFs) -> dict[str, list[str]]:
    return {f.code: list(f.evidence) for f in holder_findings("n1", IMAGES, fs, LIMITS)}


def test_the_split_and_the_biggest_images() -> None:
    found = _codes(ImageFs(1000 * GIB, 500 * GIB))
    assert found["D109"][0] == (
        "4 images, 90.0 GiB as the runtime reports sizes: 2 in use (60.0 GiB), 1 pinned"
        " (1.0 MiB), 1 unused (30.0 GiB)"
    )
    assert found["D109"][1:3] == ["train:v1: 40.0 GiB (in use)", "train:v0: 30.0 GiB (unused)"]
    assert "D110" not in found  # under the high threshold: GC does not run


def test_gc_that_cannot_reach_its_low_threshold() -> None:
    # 86 % used: GC must free capacity*(100-80)% - available = 200 - 140 = 60 GiB; 30 unused
    found = _codes(ImageFs(1000 * GIB, 140 * GIB))
    assert "amountToFree = capacity × (100 − 80)% − available = 60.0 GiB" in found["D110"]
    # with 70 GiB unused instead it can
    more = [*IMAGES, HeldImage("old:v1", 40 * GIB, in_use=False, pinned=False)]
    codes = {f.code for f in holder_findings("n1", more, ImageFs(1000 * GIB, 140 * GIB), LIMITS)}
    assert "D110" not in codes


def test_no_images_no_finding() -> None:
    assert holder_findings("n1", [], ImageFs(1, 1), LIMITS) == []
