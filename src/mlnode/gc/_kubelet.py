"""The kubelet's ``realImageGCManager.GarbageCollect`` (``pkg/kubelet/images/
image_gc_manager.go``, v1.30+ with ``imageMaximumGCAge``; identical to v1.29 and earlier
when ``maximum_age_seconds`` is 0), reproduced step by step with Go's int64 arithmetic.

Line numbers below are from the copy KubeEdge v1.23.1 vendors (Kubernetes v1.32.10,
``vendor/k8s.io/kubernetes/pkg/kubelet/images/image_gc_manager.go``; ``kubelet.go``
next to it).

0. ``imageGCHighThresholdPercent == 100`` and ``imageMaximumGCAge == 0``: the kubelet
   never starts the GC loop (``kubelet.go StartGarbageCollection``, lines 1409-1415).
   Up to v1.29 the high threshold alone decides (v1.29.6 ``kubelet.go`` line 1331:
   ``== 100`` disables GC whatever the maximum age); from v1.30 a maximum age keeps
   the loop running, and mlnode models that. Nothing is removed when the loop is off.
   The eviction manager can still delete unused images under disk pressure; that
   path is not modelled here.
1. Eviction order: skip images in use by any container (all states) and pinned
   images (mlnode also skips images being pulled); sort by ``lastUsed`` (never used
   = Go zero time, so first), ties by earlier ``firstDetected``.
2. Maximum-age pass (``freeOldImages``, lines 399-428), only when
   ``maximum_age_seconds > 0`` and the kubelet's GC loop has been running longer than
   that (``kubelet_uptime_seconds``; ``None`` = yes): remove every image in the order
   with ``now - lastUsed > maxAge``. It ignores the minimum age, and a never-used
   image counts as infinitely old. It runs *before* the filesystem is read, so
   nothing below (not even capacity 0) undoes its removals.
3. Read the filesystem (lines 353-370). The kubelet reads its stats *after* step 2,
   and its bytes are not added to the space pass's count; mlnode models that read as
   the snapshot's ``available_bytes`` plus the age pass's bytes (capped at capacity),
   which is the same size accounting the kubelet uses for the space pass. When
   ``available > capacity`` the kubelet logs "Availability is larger than capacity"
   and sets ``available = capacity`` (lines 367-370); it does not refuse.
4. ``capacity == 0`` (lines 372-377): the kubelet emits ``InvalidDiskCapacity`` and
   returns "invalid capacity 0 on image filesystem"; the age pass's removals stand.
   mlnode returns a plan with those removals and ``error`` set (never satisfied).
   Otherwise ``usage = 100 - int(available*100/capacity)``; nothing more unless
   ``usage >= high`` (line 381: so usage 100 at high 100 does trigger). Then
   ``amountToFree = capacity*(100-low)/100 - available`` (int64, truncating).
5. Space pass over the images left by step 2, in order: skip ``lastUsed >= now``,
   skip ``now - firstDetected < minAge``, otherwise remove and add its size; stop as
   soon as the total freed is ``>= amountToFree``. The check comes *after* a removal,
   so when ``amountToFree <= 0`` the kubelet still removes the first eligible image.

``bytes_to_free`` in the result is ``amountToFree`` plus the age pass's bytes, i.e.
the shortfall against the low threshold on the filesystem as given, so that
``satisfied == (bytes_freed >= bytes_to_free)`` is the kubelet's own
``freed >= amountToFree`` test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from mlnode.gc._common import (
    age_explanation,
    build_plan,
    eviction_order,
    fmt_seconds,
    keep,
    not_eligible,
    removals,
    split_too_old,
)
from mlnode.gc._goarith import amount_to_free, go_sub, low_target_bytes, usage_percent
from mlnode.gc._model import (
    FilesystemState,
    GcImage,
    GcPlan,
    GcPolicy,
    InvalidCapacity,
    Kept,
    PolicyName,
    Removal,
    last_used_or_zero,
)

__all__ = ["plan_kubelet"]


def plan_kubelet(
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
) -> GcPlan:
    """Plan exactly what the kubelet's image GC would remove at ``now``.

    The rules, step by step, are in the module docstring.
    """
    if policy.high_threshold_percent == 100 and policy.maximum_age_seconds == 0:
        return build_plan(
            PolicyName.KUBELET,
            filesystem,
            kept=[keep(i, "image GC disabled") for i in images],
            explanations=[
                "image GC is disabled: high threshold 100% and no maximum age "
                "(the kubelet does not start its image GC loop)"
            ],
        )
    order, kept = eviction_order(images)
    explanations: list[str] = []
    age_removed, remaining = _age_pass(order, policy, now, explanations)

    # Steps 3-4: the filesystem as read after the age pass.
    if filesystem.over_reported:
        explanations.append(
            f"available {filesystem.available_bytes} bytes is larger than capacity "
            f'{filesystem.capacity_bytes} bytes: the kubelet logs "Availability is larger '
            'than capacity" and uses the capacity'
        )
    capacity = filesystem.capacity_bytes
    if capacity == 0:
        return _invalid_capacity(filesystem, kept, remaining, explanations, age_removed)
    available = min(capacity, filesystem.available_bytes + sum(r.size_bytes for r in age_removed))
    usage = usage_percent(available, capacity)
    high, low = policy.high_threshold_percent, policy.low_threshold_percent
    if usage < high:
        explanations.append(
            f"usage {usage}% is below the high threshold {high}%: no space-based collection"
        )
        kept.extend(keep(i, "not needed") for i in remaining)
        return build_plan(
            PolicyName.KUBELET, filesystem, kept=kept, explanations=explanations, age=age_removed
        )
    need = amount_to_free(capacity, low, available)
    explanations.append(
        f"usage {usage}% >= high threshold {high}%: free {need} bytes to reach "
        f"the low threshold {low}%"
    )
    space_removed = _space_pass(remaining, need, policy, now, kept)
    freed = sum(r.size_bytes for r in space_removed)
    if freed < need:
        explanations.append(
            f"not enough eligible images: freed {freed} of {need} bytes "
            "(the kubelet would report FreeDiskSpaceFailed)"
        )
    return build_plan(
        PolicyName.KUBELET,
        filesystem,
        kept=kept,
        explanations=explanations,
        age=age_removed,
        space=space_removed,
        need_bytes=need,
        target_available_bytes=low_target_bytes(capacity, low),
    )


def _invalid_capacity(
    filesystem: FilesystemState,
    kept: list[Kept],
    remaining: Sequence[GcImage],
    explanations: list[str],
    age_removed: list[Removal],
) -> GcPlan:
    """Step 4 on capacity 0: the age pass's removals stand, and collection fails."""
    error = InvalidCapacity().message
    explanations.append(
        f"{error}: the kubelet stops here (InvalidDiskCapacity event) after the "
        "maximum-age pass, whose removals stand; no space-based collection"
    )
    kept.extend(keep(i, "not reached: invalid capacity") for i in remaining)
    return build_plan(
        PolicyName.KUBELET,
        filesystem,
        kept=kept,
        explanations=explanations,
        age=age_removed,
        error=error,
    )


def _age_pass(
    order: list[GcImage], policy: GcPolicy, now: datetime, explanations: list[str]
) -> tuple[list[Removal], list[GcImage]]:
    """Step 2: the removals for the maximum age, and the images left for the space pass."""
    if policy.maximum_age_seconds <= 0:
        return [], order
    max_age = policy.maximum_age
    uptime = policy.kubelet_uptime_seconds
    if uptime is not None and timedelta(seconds=uptime) <= max_age:
        explanations.append(
            f"maximum-age pass skipped: the kubelet has been collecting for "
            f"{fmt_seconds(uptime)}, not longer than the maximum age "
            f"{fmt_seconds(policy.maximum_age_seconds)}"
        )
        return [], order
    age_removed, remaining = split_too_old(
        order, lambda i: go_sub(now, last_used_or_zero(i)) > max_age
    )
    explanations.append(age_explanation(policy, age_removed))
    return age_removed, remaining


def _space_pass(
    remaining: Sequence[GcImage], need: int, policy: GcPolicy, now: datetime, kept: list[Kept]
) -> list[Removal]:
    """Step 5: remove eligible images in order until ``need`` is freed; record the rest."""
    chosen: list[GcImage] = []
    freed = 0
    done = False
    for image in remaining:
        why = "not needed" if done else not_eligible(image, policy, now, go_sub)
        if why is not None:
            kept.append(keep(image, why))
            continue
        chosen.append(image)
        freed += image.size_bytes
        done = freed >= need
    return removals(chosen, "space")
