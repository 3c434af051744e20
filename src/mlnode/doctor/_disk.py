"""Disk findings, the same for one node (statvfs) and for a node of a cluster (stats/summary).

Pure. Inputs: the image filesystem (:class:`ImageFs`), the effective thresholds with their
provenance (keys as :mod:`mlnode.lint.effective` names them), and the largest image.

Arithmetic, the kubelet's own (kubelet-facts.md §1):

- usage is ``100 - floor(available*100/capacity)``; GC runs at ``usage >= high`` and frees
  down to ``low``; the imagefs eviction signal fires when available < its threshold
  (``imagefs.available``, or ``nodefs.available`` when the two share one filesystem);
- **headroom** = available − the eviction reserve: what a pull may write before the kubelet
  starts evicting pods. The kubelet's GC does not make room ahead of a pull; it reacts up to
  5 minutes later, so a pull must fit in what is free now;
- an image's footprint on disk: the runtime reports the *compressed* size (containerd's CRI,
  and so ``node.status.images``); a pull keeps the compressed blobs and writes the unpacked
  layers beside them, about twice as large for ML images, so it needs
  ``(1 + UNPACK_FACTOR) × size`` — the agent's default (docs/agent.md). A size the operator
  declares (``--largest-image``) is taken as the footprint itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from mlnode.doctor._model import Finding, ImageFs, Setting
from mlnode.units import format_bytes, parse_bytes

__all__ = [
    "UNPACK_FACTOR",
    "disk_findings",
    "eviction_reserve_bytes",
    "footprint_bytes",
    "headroom_bytes",
]

UNPACK_FACTOR = 2


def footprint_bytes(size_bytes: int, *, compressed: bool) -> int:
    return size_bytes * (1 + UNPACK_FACTOR) if compressed else size_bytes


def _threshold_bytes(text: str, capacity_bytes: int) -> int | None:
    text = text.strip()
    try:
        if text.endswith("%"):
            return int(Fraction(text[:-1]) * capacity_bytes / 100)
        return parse_bytes(text)
    except (ValueError, ZeroDivisionError):
        return None


def eviction_reserve_bytes(
    thresholds: Mapping[str, Setting], fs: ImageFs
) -> tuple[int, str] | None:
    """(bytes that must stay free, the signal) for the image filesystem, or None when no
    hard eviction signal watches it."""
    setting = thresholds.get("eviction_hard")
    signals = setting.value if setting is not None else None
    if not isinstance(signals, Mapping):
        return None
    names = ["imagefs.available"]
    if fs.shared_with_nodefs:
        names.append("nodefs.available")
    best: tuple[int, str] | None = None
    for name in names:
        raw = signals.get(name)
        if not isinstance(raw, str):
            continue
        reserve = _threshold_bytes(raw, fs.capacity_bytes)
        if reserve is not None and (best is None or reserve > best[0]):
            best = (reserve, f"{name}<{raw}")
    return best


def headroom_bytes(fs: ImageFs, thresholds: Mapping[str, Setting]) -> int:
    reserve = eviction_reserve_bytes(thresholds, fs)
    return max(0, fs.available_bytes - (reserve[0] if reserve else 0))


def _int_setting(thresholds: Mapping[str, Setting], key: str) -> Setting | None:
    s = thresholds.get(key)
    return s if s is not None and isinstance(s.value, int) else None


def _usage_line(fs: ImageFs) -> str:
    used = fs.capacity_bytes - fs.available_bytes
    return (
        f"{fs.path or 'image filesystem'}: {format_bytes(used)} used of"
        f" {format_bytes(fs.capacity_bytes)}, {format_bytes(fs.available_bytes)} available"
        f" — {fs.usage_percent}% by the kubelet's arithmetic ({fs.source})"
    )


def _sharing_findings(node: str, fs: ImageFs) -> list[Finding]:
    out: list[Finding] = []
    if fs.shared_with_os:
        out.append(
            Finding(
                "D101",
                f"the image filesystem {fs.path or ''} is the root filesystem".replace("  ", " "),
                "the OS, logs and anything else on / share the space the kubelet's image GC"
                " counts: they can fill it between GC passes (every 5 minutes), and GC can only"
                " remove images to make up for them",
                "give the runtime's image directory its own filesystem (a disk or LVM volume"
                " mounted at it), or keep headroom with `mlnode agent` (docs/agent.md)",
                evidence=(_usage_line(fs),),
                node=node,
            )
        )
    if fs.shared_with_nodefs:
        out.append(
            Finding(
                "D102",
                "images and the kubelet's directory (pods' emptyDir volumes, logs) share one"
                " filesystem",
                "the kubelet then watches nodefs.available for it too, and pods' scratch data"
                " competes with image pulls",
                "",
                evidence=(_usage_line(fs),),
                node=node,
            )
        )
    return out


def _capacity_findings(node: str, fs: ImageFs, thresholds: Mapping[str, Setting]) -> list[Finding]:
    out: list[Finding] = []
    high = _int_setting(thresholds, "image_gc_high_threshold_percent")
    low = _int_setting(thresholds, "image_gc_low_threshold_percent")
    if high is not None and fs.usage_percent >= high.value and high.value < 100:
        low_text = f" down to {low.value}% ({low.source})" if low is not None else ""
        out.append(
            Finding(
                "D104",
                f"image filesystem {fs.usage_percent}% used: at or above the GC high threshold"
                f" {high.value}%",
                f"the kubelet's next GC pass (within 5 minutes) removes unused images{low_text},"
                " least recently used first and blind to size; images used by any container,"
                " even an exited one, or pinned, cannot go",
                "see what GC would remove: `mlnode gc --dry-run`; free space ahead of the"
                " kubelet: `mlnode agent` (docs/agent.md)",
                evidence=(
                    _usage_line(fs),
                    f"imageGCHighThresholdPercent {high.value} ({high.source})",
                ),
                node=node,
            )
        )
    reserve = eviction_reserve_bytes(thresholds, fs)
    if reserve is not None and fs.available_bytes < reserve[0]:
        out.append(
            Finding(
                "D105",
                f"only {format_bytes(fs.available_bytes)} available, under the eviction"
                f" threshold {reserve[1]} ({format_bytes(reserve[0])})",
                "the node reports DiskPressure: the kubelet deletes unused images and then"
                " evicts pods, and no new pod is scheduled here",
                "free space now: `mlnode gc` (it never removes an image in use, pinned or being"
                " pulled); then keep headroom with `mlnode agent`",
                evidence=(
                    _usage_line(fs),
                    f"evictionHard {reserve[1]} ({thresholds['eviction_hard'].source})",
                ),
                node=node,
            )
        )
    return out


def _fit_finding(
    node: str,
    fs: ImageFs,
    thresholds: Mapping[str, Setting],
    largest: tuple[str, int, bool],
) -> Finding | None:
    ref, size, compressed = largest
    need = footprint_bytes(size, compressed=compressed)
    room = headroom_bytes(fs, thresholds)
    if need <= room:
        return None
    reserve = eviction_reserve_bytes(thresholds, fs)
    how = (
        f"{format_bytes(size)} compressed × {1 + UNPACK_FACTOR} (blobs plus unpacked layers)"
        if compressed
        else f"{format_bytes(size)} as declared"
    )
    return Finding(
        "D103",
        f"the largest image {ref} needs {format_bytes(need)}; the headroom is {format_bytes(room)}",
        "pulling it again (a new node of the pool, a restart after GC removed it) fills the"
        " image filesystem past the eviction threshold before the kubelet's GC acts: pods are"
        " evicted or the pull fails with 'no space left on device'",
        "make room ahead of pulls with `mlnode agent` (headroom sized from the largest image,"
        " docs/agent.md), or free space now with `mlnode gc`",
        evidence=(
            _usage_line(fs),
            f"footprint: {how}",
            "headroom: available"
            + (f" − eviction reserve {reserve[1]} = {format_bytes(reserve[0])}" if reserve else ""),
        ),
        node=node,
        subject=ref,
    )


def disk_findings(
    node: str,
    fs: ImageFs,
    thresholds: Mapping[str, Setting],
    *,
    largest: tuple[str, int, bool] | None = None,
) -> list[Finding]:
    """D101–D106, D108 for one image filesystem. ``largest`` is (ref, size_bytes,
    size_is_compressed)."""
    if fs.capacity_bytes <= 0:
        return [
            Finding(
                "D106",
                "the image filesystem reports capacity 0",
                "the kubelet's image GC refuses to run (event InvalidDiskCapacity) and images"
                " accumulate until the disk is full",
                "check the runtime's image filesystem stats: `crictl imagefsinfo`; on"
                " containerd, that its root directory is on a mounted filesystem",
                evidence=(f"capacity 0 ({fs.source})",),
                node=node,
            )
        ]
    out = _sharing_findings(node, fs) + _capacity_findings(node, fs, thresholds)
    if largest is not None:
        fit = _fit_finding(node, fs, thresholds, largest)
        if fit is not None:
            out.append(fit)
    out.append(
        Finding(
            "D108",
            f"image filesystem {fs.usage_percent}% used, headroom"
            f" {format_bytes(headroom_bytes(fs, thresholds))}",
            "headroom is what a pull may write before the kubelet evicts pods",
            "",
            evidence=(_usage_line(fs),),
            node=node,
        )
    )
    return out
