"""Image GC and eviction: thresholds, headroom for the largest image, evictionHard signals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mlnode.formats.base import ParsedDocument
from mlnode.knowledge.model import Layer
from mlnode.knowledge.table import (
    eviction_hard_defaults,
)
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.units import format_bytes
from mlnode.versions import Version

__all__ = ["eviction_rule", "gc_rule"]


def gc_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    high = eff.kubelet["image_gc_high_threshold_percent"]
    max_age = eff.kubelet.get("image_maximum_gc_age_seconds")
    if high.value == 100 and not (max_age and max_age.value):
        yield Finding(
            "W204",
            "imageGCHighThresholdPercent is 100: image garbage collection never runs for space",
            "images pile up until imagefs eviction evicts pods (or the disk fills)",
            "set imageGCHighThresholdPercent below 100 (see `mlnode plan`)",
            high.origin,
        )
    if ctx.image_disk_bytes and ctx.largest_image_bytes and isinstance(high.value, int):
        headroom = ctx.image_disk_bytes * (100 - high.value) // 100
        if headroom < ctx.largest_image_bytes:
            yield Finding(
                "W206",
                f"headroom above the GC threshold is {100 - high.value}% of "
                f"{format_bytes(ctx.image_disk_bytes)} = {format_bytes(headroom)}, less than the "
                f"largest image {format_bytes(ctx.largest_image_bytes)}",
                "a pull of the largest image can fill the disk before GC (every 5 minutes) "
                "acts; the pull fails with no space left on device",
                "lower imageGCHighThresholdPercent so that (100 - high)% of the disk holds the "
                "largest image (see `mlnode plan --image-disk ... --largest-image ...`)",
                high.origin,
            )
    evict = eff.kubelet["eviction_hard"]
    if isinstance(evict.value, dict) and isinstance(high.value, int):
        pct = str(evict.value.get("imagefs.available", "")).rstrip()
        if pct.endswith("%"):
            try:
                evict_pct = float(pct[:-1])
            except ValueError:
                evict_pct = -1
            if evict_pct > 0 and high.value > 100 - evict_pct:
                yield Finding(
                    "W210",
                    f"image GC starts at {high.value}% used but imagefs eviction fires at "
                    f"{100 - evict_pct:g}% used (imagefs.available<{pct})",
                    "pods are evicted for disk pressure before image GC gets a chance to run",
                    f"set imageGCHighThresholdPercent below {100 - evict_pct:g}",
                    high.origin or evict.origin,
                )


def eviction_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    merge = eff.kubelet.get("merge_default_eviction_settings")
    if merge is not None and merge.value is True:
        return
    defaults = eviction_hard_defaults(ctx.kubernetes_version)
    evict = eff.kubelet["eviction_hard"]
    if evict.layer is Layer.DEFAULT or not isinstance(evict.value, dict):
        return
    missing = sorted(set(defaults) - set(evict.value))
    if missing:
        yield Finding(
            "W207",
            "evictionHard sets " + ", ".join(sorted(evict.value)) + " only",
            "the kubelet sets "
            + ", ".join(f"{m} (default {defaults[m]})" for m in missing)
            + " to 0: no hard eviction for them",
            "list every signal you want to keep"
            + (
                " or set mergeDefaultEvictionSettings: true"
                if ctx.kubernetes_version.at_least(Version(1, 33))
                else ""
            ),
            evict.origin,
        )
