"""The planner's arithmetic: footprints, pull time, need, thresholds, ages, parallelism.

Every function here is pure and takes the profile (and numbers derived from it); the
formulas (docs/plan.md explains them at length):

Footprints, per largest image (S compressed, U unpacked)::

    peak     = S + U          while a pull runs, the compressed blob and the snapshot both
                              exist (containerd's content store; CRI-O's temporary blob)
    resident = S + U          after the pull, on containerd unless discard_unpacked_layers
             = U              on CRI-O, Docker/cri-dockerd, or with discard_unpacked_layers

Pull time with N pulls sharing a link of B bytes/s, unpacking at R bytes/s::

    t_pull = S·N/B + U/R      (download, then unpack: runtime-testbed.md measured them in
                              sequence, unpack ≈ half the wall time)

What can land on the image disk in one image-GC period (P = 300 s)::

    need = N · peak · max(1, P / t_pull)  +  growth_per_hour · P / 3600

High threshold: GC looks at the disk once per P, so the room between the high threshold
and the eviction line (``imagefs.available`` E%, default 15) must absorb ``need``::

    high = floor(100 − E − 100·need/C)          so (100 − E − high)% · C ≥ need

Low threshold: GC frees down to low; the gap must free at least one largest image, or the
next pull triggers GC again at once::

    low = high − ceil(100·resident/C)

What GC can never free (other data D, plus the N images running pods use) must sit below
high, or usage never drops under high and the headroom is fiction; if it sits above low,
the plan is safe but every GC run deletes every unused image (a warning)::

    D + N·resident < high% · C        (and, for a working cache, ≤ low% · C)

No integer pair satisfying ``0 ≤ low < high ≤ 100`` and these → ``feasible=False`` with
the reason and the smallest image disk that would work.

Minimum GC age ≥ 1.5 · t_pull (an image pulled for a pod that still waits for another
largest-image pull survives), whole minutes, never below the kubelet's 2m. Maximum GC age:
7 days, only on kubelets where the field exists and its gate is on by default (≥ 1.30).
The pull progress deadline has its own module (:mod:`._deadline`).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from mlnode.planning.plan._model import PlanNumbers
from mlnode.planning.profile import NodeProfile
from mlnode.units import format_bytes
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "FIRST_DETECTED_FIXED_SINCE",
    "GC_PERIOD_SECONDS",
    "KUBELET_MIN_AGE_DEFAULT_SECONDS",
    "MAXIMUM_GC_AGE_SECONDS",
    "MAX_GC_AGE_FIELD_SINCE",
    "MAX_GC_AGE_GATE_ON_SINCE",
    "MIN_AGE_SAFETY",
    "effective_pulls",
    "gib",
    "maximum_gc_age_seconds",
    "minimum_capacity",
    "minimum_gc_age_seconds",
    "minutes_up",
    "pct",
    "plan_numbers",
    "thresholds",
]

GC_PERIOD_SECONDS = 300.0  # ImageGCPeriod (kubelet.go)
MIN_AGE_SAFETY = 1.5
KUBELET_MIN_AGE_DEFAULT_SECONDS = 120.0
MAXIMUM_GC_AGE_SECONDS = 7 * 24 * 3600.0

PARALLEL_PULLS_SINCE = Version(1, 27)
MAX_GC_AGE_FIELD_SINCE = Version(1, 29)
MAX_GC_AGE_GATE_ON_SINCE = Version(1, 30)
FIRST_DETECTED_FIXED_SINCE = Version(1, 29)  # [main] uses time.Now(); ≤1.28 the zero time


def pct(x: float) -> str:
    return f"{x:g}"


def gib(n: float) -> str:
    return format_bytes(int(n))


def minutes_up(seconds: float) -> float:
    return float(math.ceil(seconds / 60.0 - 1e-9) * 60)


def _keeps_blobs(profile: NodeProfile) -> bool:
    """Whether the compressed blobs stay on disk next to the snapshot after a pull."""
    rt = profile.runtime
    if rt is None:
        return not profile.discard_unpacked_layers  # unknown: assume containerd
    if rt.kind is RuntimeKind.CONTAINERD:
        return not profile.discard_unpacked_layers
    return False  # containers/storage and Docker keep only unpacked layers


def effective_pulls(profile: NodeProfile) -> int:
    """The pulls that really run at once: 1 on kubelets that cannot cap parallel pulls."""
    k8s = profile.kubernetes_version
    if profile.concurrent_pulls > 1 and k8s is not None and not k8s.at_least(PARALLEL_PULLS_SINCE):
        return 1
    return profile.concurrent_pulls


def plan_numbers(profile: NodeProfile) -> PlanNumbers:
    c = profile.image_disk_capacity_bytes
    s, u = profile.largest_image_bytes, profile.largest_image_unpacked_bytes
    n = effective_pulls(profile)
    peak = s + u
    resident = s + u if _keeps_blobs(profile) else u
    download = s * n / profile.link_bandwidth_bytes_per_second
    unpack = u / profile.unpack_bytes_per_second
    t_pull = download + unpack
    per_slot = max(1.0, GC_PERIOD_SECONDS / t_pull)
    growth = math.ceil(profile.other_writers_growth_bytes_per_hour * GC_PERIOD_SECONDS / 3600)
    need = math.ceil(n * peak * per_slot) + growth
    unremovable = profile.other_data_bytes + n * resident
    return PlanNumbers(
        peak_footprint_bytes=peak,
        resident_footprint_bytes=resident,
        effective_concurrent_pulls=n,
        pull_seconds=t_pull,
        download_seconds=download,
        unpack_seconds=unpack,
        images_per_pull_slot_per_period=per_slot,
        growth_per_period_bytes=growth,
        need_bytes=need,
        need_percent=100.0 * need / c,
        gap_percent=_ceil_percent(resident, c),
        unremovable_bytes=unremovable,
        unremovable_percent=_ceil_percent(unremovable, c),
    )


def _ceil_percent(part_bytes: int, capacity_bytes: int) -> int:
    """ceil(100 · part / capacity) in exact integers: a float with an epsilon rounded
    268435456 B of 26843545574 B (1.0000000001 %) down to 1 % (found by hypothesis)."""
    return -(-100 * part_bytes // capacity_bytes)


def thresholds(profile: NodeProfile, nums: PlanNumbers) -> tuple[int, int] | str:
    """(high, low), or why no pair works."""
    e = profile.imagefs_eviction_percent
    c = profile.image_disk_capacity_bytes
    high = min(100, math.floor(100 - Fraction(e) - Fraction(100 * nums.need_bytes, c)))
    if high < 1:
        return (
            f"the room above the high threshold must hold {format_bytes(nums.need_bytes)} "
            f"({nums.need_percent:.1f}% of {format_bytes(c)}) below the eviction line at "
            f"{pct(100 - e)}% used, which leaves no high threshold ≥ 1%"
        )
    low = high - nums.gap_percent
    if low < 0:
        return (
            f"high can be at most {high}%, and freeing one largest image "
            f"({format_bytes(nums.resident_footprint_bytes)} = {nums.gap_percent}% of "
            f"{format_bytes(c)}) would need low = {low}%"
        )
    if 100 * nums.unremovable_bytes >= high * c:
        return (
            f"high can be at most {high}% ({format_bytes(int(high / 100 * c))}), but what GC can "
            f"never free is already {format_bytes(nums.unremovable_bytes)}: other data "
            f"{format_bytes(profile.other_data_bytes)} + {nums.effective_concurrent_pulls} "
            f"in-use image(s) × {format_bytes(nums.resident_footprint_bytes)}; usage would "
            "stay above high and the headroom would not exist"
        )
    return high, low


def _feasible_at(profile: NodeProfile, capacity: int) -> bool:
    p = dataclasses.replace(profile, image_disk_capacity_bytes=capacity)
    return not isinstance(thresholds(p, plan_numbers(p)), str)


def minimum_capacity(profile: NodeProfile) -> int | None:
    """The smallest image disk (bytes, rounded up to a GiB) on which a plan exists."""
    hi = 1 << 50  # 1 PiB
    if not _feasible_at(profile, hi):
        return None
    lo = profile.image_disk_capacity_bytes
    while hi - lo > 1 << 20:
        mid = (lo + hi) // 2
        if _feasible_at(profile, mid):
            hi = mid
        else:
            lo = mid
    gib_bytes = 1 << 30
    return -(-hi // gib_bytes) * gib_bytes


def minimum_gc_age_seconds(nums: PlanNumbers) -> float:
    """max(the kubelet's 2m, 1.5 × t_pull), up to whole minutes."""
    return max(KUBELET_MIN_AGE_DEFAULT_SECONDS, minutes_up(MIN_AGE_SAFETY * nums.pull_seconds))


def maximum_gc_age_seconds(min_age_seconds: float) -> float:
    """7 days, and always above the minimum GC age."""
    return max(MAXIMUM_GC_AGE_SECONDS, min_age_seconds + 60)
