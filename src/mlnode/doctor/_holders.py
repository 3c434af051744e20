"""What holds a node's image filesystem, and whether the kubelet's GC can get it back. Pure.

From the runtime's images (CRI sizes: compressed on containerd) split into in use (by any
container, exited ones too, as the kubelet counts them), pinned, and unused — the only ones
any image GC may remove. D109 says the split and the biggest images; D110 warns when the
filesystem is past the GC high threshold and even every unused image would not bring it
down to the low one (the kubelet's ``amountToFree``), so GC will report FreeDiskSpaceFailed.
What the kubelet would remove exactly (its LRU order, imageMinimumGCAge): ``mlnode gc
--dry-run``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlnode.doctor._model import Finding, ImageFs, Setting
from mlnode.units import format_bytes

__all__ = ["HeldImage", "holder_findings"]

_SHOWN = 5


@dataclass(frozen=True)
class HeldImage:
    ref: str
    size_bytes: int  # as the runtime reports it
    in_use: bool
    pinned: bool


def _amount_to_free(fs: ImageFs, low: int) -> int:
    # the kubelet's capacity*(100-low)/100 - available (int64 arithmetic of gc._goarith)
    return fs.capacity_bytes * (100 - low) // 100 - fs.available_bytes


def holder_findings(
    node: str, images: Sequence[HeldImage], fs: ImageFs | None, limits: Mapping[str, Setting]
) -> list[Finding]:
    if not images:
        return []
    used = [i for i in images if i.in_use]
    pinned = [i for i in images if i.pinned and not i.in_use]
    unused = [i for i in images if not i.in_use and not i.pinned]
    total = sum(i.size_bytes for i in images)

    def part(group: Sequence[HeldImage], what: str) -> str:
        return f"{len(group)} {what} ({format_bytes(sum(i.size_bytes for i in group))})"

    biggest = sorted(images, key=lambda i: -i.size_bytes)[:_SHOWN]
    evidence = (
        f"{len(images)} images, {format_bytes(total)} as the runtime reports sizes: "
        + ", ".join((part(used, "in use"), part(pinned, "pinned"), part(unused, "unused"))),
        *(
            f"{i.ref}: {format_bytes(i.size_bytes)}"
            + (" (in use)" if i.in_use else " (pinned)" if i.pinned else " (unused)")
            for i in biggest
        ),
    )
    out = [
        Finding(
            "D109",
            f"{format_bytes(sum(i.size_bytes for i in unused))} of"
            f" {format_bytes(total)} in images is unused and may be removed by image GC",
            "image GC removes only unused, unpinned images; the ones containers use (running"
            " or exited) stay until those containers are deleted",
            "see exactly what the kubelet's GC would remove now, and in which order:"
            " `mlnode gc --dry-run`",
            evidence=evidence,
            node=node,
        )
    ]
    high = limits.get("image_gc_high_threshold_percent")
    low = limits.get("image_gc_low_threshold_percent")
    if fs is None or high is None or low is None:
        return out
    if not isinstance(high.value, int) or not isinstance(low.value, int):
        return out
    need = _amount_to_free(fs, low.value)
    free_able = sum(i.size_bytes for i in unused)
    if fs.usage_percent >= high.value and high.value < 100 and free_able < need:
        out.append(
            Finding(
                "D110",
                f"the kubelet's GC must free {format_bytes(need)} to reach {low.value}%, but only"
                f" {format_bytes(free_able)} is unused",
                "the rest is held by containers (exited ones count) or pinned: the kubelet"
                " reports FreeDiskSpaceFailed every 5 minutes, and once the eviction threshold is"
                " crossed it evicts pods",
                "delete finished pods whose containers hold big images (`kubectl get pods -A"
                " --field-selector=status.phase!=Running`), then `mlnode gc`; keep headroom"
                " ahead of pulls with `mlnode agent`",
                evidence=(
                    f"usage {fs.usage_percent}% ≥ imageGCHighThresholdPercent {high.value}"
                    f" ({high.source})",
                    f"amountToFree = capacity × (100 − {low.value})% − available ="
                    f" {format_bytes(need)}",
                    *evidence[:1],
                ),
                node=node,
            )
        )
    return out
