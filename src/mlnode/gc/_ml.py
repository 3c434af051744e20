"""mlnode's policy for nodes that pull images of tens of gigabytes: :func:`plan_ml`.

**Never removed:** images in use by any container (all states), pinned by the
runtime, being pulled, matching a ``keep_patterns`` glob (``fnmatch`` on the id and
every name), used at or after ``now``, or first detected less than
``minimum_age_seconds`` ago. mlnode persists first-detected and last-used times
(:mod:`mlnode.ops.image_state`), so the minimum age survives restarts, unlike the
kubelet's (kubernetes#119711).

**Target:** ``available >= max(low-threshold target, headroom)`` where the
low-threshold target is the kubelet's ``capacity*(100-low)/100`` and the headroom is
``headroom_bytes`` if set, else the larger of the largest image in ``images`` and
``largest_image_bytes`` (room to pull the biggest image again, e.g. a new tag).

**Trigger:** usage ``>= high`` (kubelet arithmetic) *or* ``available < headroom``.
Between the thresholds with enough headroom nothing is removed (hysteresis).

**Maximum age** (``maximum_age_seconds > 0``): eligible images whose last activity
(``last_used``, or ``first_detected`` if never used) is older than that are removed
first, whatever the disk usage. Unlike the kubelet, a never-used image is aged from
its first detection, and no uptime wait is needed because the times are persisted.

**Choice:** :func:`fewest_lru_cover` — the kubelet's LRU order, but only the fewest
images of the LRU prefix needed to reach the target, oldest first. Re-pulling an
image costs roughly its size whatever its rank, so removing fewer images of the
same coldness means fewer re-pulls.

**Mirror cache first:** when the space pass has bytes to free and the node mirror's
cache is given, its complete blobs not in flight are removed first (reason
``mirror-cache``, least recently accessed first, :mod:`mlnode.gc._mirror`); images are
chosen only for what the cache does not cover.

**When the target cannot be reached:** if usage is at or above the high threshold,
free what can be freed towards the low-threshold target (disk pressure matters more
than re-pull cost); if only the headroom is short, remove nothing, because no
removal would make room for the image. Either way ``satisfied`` is false.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mlnode.gc._common import (
    age_explanation,
    build_plan,
    eviction_order,
    keep,
    not_eligible,
    removals,
    split_too_old,
)
from mlnode.gc._goarith import low_target_bytes, usage_percent
from mlnode.gc._mirror import mirror_tier
from mlnode.gc._model import (
    FilesystemState,
    GcImage,
    GcPlan,
    GcPolicy,
    InvalidCapacity,
    Kept,
    MirrorBlob,
    PolicyName,
    Removal,
    last_used_or_zero,
)

__all__ = ["fewest_lru_cover", "plan_ml"]


def fewest_lru_cover(candidates: Sequence[GcImage], need: int) -> list[GcImage]:
    """Choose which of ``candidates`` (in LRU order) to remove to free ``need`` bytes.

    1. Take the LRU prefix the kubelet would remove: candidates in order until their
       sizes add up to ``need`` (all of them if they never do).
    2. Within that prefix, pick the fewest images whose sizes still reach ``need``.
    3. Among selections of that size, take the oldest: walk the prefix in LRU order and
       keep an image whenever a selection of the minimum size that includes it exists.

    So the result is never larger than the kubelet's, never reaches further into recently
    used images than the kubelet would, and leaves every image that is not needed.
    Returns an empty list when ``need <= 0``; all candidates when they cannot reach it.
    """
    if need <= 0:
        return []
    prefix: list[GcImage] = []
    total = 0
    for image in candidates:
        prefix.append(image)
        total += image.size_bytes
        if total >= need:
            break
    if total < need:
        return prefix
    by_size = sorted((i.size_bytes for i in prefix), reverse=True)
    slots, covered = 0, 0
    while covered < need:
        covered += by_size[slots]
        slots += 1
    chosen: list[GcImage] = []
    remaining = need
    for index, image in enumerate(prefix):
        if slots == 0 or remaining <= 0:
            break
        rest = sorted((i.size_bytes for i in prefix[index + 1 :]), reverse=True)
        if image.size_bytes + sum(rest[: slots - 1]) >= remaining:
            chosen.append(image)
            remaining -= image.size_bytes
            slots -= 1
    return chosen


@dataclass(frozen=True)
class _Target:
    """Where the ml policy aims: ``available >= target``, the larger of the two floors."""

    low_target: int
    headroom: int
    headroom_note: str

    @property
    def target(self) -> int:
        return max(self.low_target, self.headroom)


def _target(images: Sequence[GcImage], filesystem: FilesystemState, policy: GcPolicy) -> _Target:
    low_target = low_target_bytes(filesystem.capacity_bytes, policy.low_threshold_percent)
    if policy.headroom_bytes is not None:
        return _Target(low_target, policy.headroom_bytes, "set explicitly")
    seen = max((i.size_bytes for i in images), default=0)
    headroom = max(seen, policy.largest_image_bytes or 0)
    return _Target(low_target, headroom, "room for the largest image")


def plan_ml(
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
    mirror: Sequence[MirrorBlob] = (),
) -> GcPlan:
    """Plan mlnode's collection for nodes that pull images of tens of gigabytes.

    The rules, step by step, are in the module docstring. ``mirror`` is the node mirror's
    cache: when space must be freed, its complete blobs go first (:mod:`mlnode.gc._mirror`),
    as removals with reason ``mirror-cache``, and images only for the rest.
    """
    if filesystem.capacity_bytes == 0:
        raise InvalidCapacity()
    over_reported = filesystem.over_reported
    filesystem = filesystem.clamped()
    goal = _target(images, filesystem, policy)
    order, kept = eviction_order(images, policy.keep_patterns)
    candidates: list[GcImage] = []
    for image in order:
        why = not_eligible(image, policy, now, operator.sub)
        if why is None:
            candidates.append(image)
        else:
            kept.append(keep(image, why))
    explanations: list[str] = []
    if over_reported:
        explanations.append(
            "available is larger than capacity: taken as capacity (as the kubelet does)"
        )
    age_removed: list[Removal] = []
    if policy.maximum_age_seconds > 0:
        max_age = policy.maximum_age
        age_removed, candidates = split_too_old(
            candidates, lambda i: now - max(last_used_or_zero(i), i.first_detected) > max_age
        )
        explanations.append(age_explanation(policy, age_removed))
    available = min(
        filesystem.capacity_bytes,
        filesystem.available_bytes + sum(r.size_bytes for r in age_removed),
    )
    need = _space_need(available, filesystem, policy, goal, explanations)
    space_removed: list[Removal] = []
    cache_freed = 0
    if need is not None and mirror:
        cache_removed, note = mirror_tier(mirror, need)
        explanations.append(note)
        space_removed.extend(cache_removed)
        cache_freed = sum(r.size_bytes for r in cache_removed)
    if need is None or cache_freed >= need:
        kept.extend(keep(i, "not needed") for i in candidates)
    else:
        space_removed += _space_pass(
            candidates,
            available + cache_freed,
            need - cache_freed,
            filesystem.capacity_bytes,
            policy,
            goal,
            kept,
            explanations,
        )
    return build_plan(
        PolicyName.ML,
        filesystem,
        kept=kept,
        explanations=explanations,
        age=age_removed,
        space=space_removed,
        need_bytes=need,
        target_available_bytes=goal.target,
        headroom_bytes=goal.headroom,
    )


def _space_need(
    available: int,
    filesystem: FilesystemState,
    policy: GcPolicy,
    goal: _Target,
    explanations: list[str],
) -> int | None:
    """The bytes the space pass must free, or None when no space-based collection is due."""
    usage = usage_percent(available, filesystem.capacity_bytes)
    high, low = policy.high_threshold_percent, policy.low_threshold_percent
    over_high = usage >= high
    short_headroom = available < goal.headroom
    need = goal.target - available
    if need <= 0:
        explanations.append(
            f"{available} bytes available already reach the target of {goal.target} bytes"
        )
        return None
    if not (over_high or short_headroom):
        explanations.append(
            f"usage {usage}% is below the high threshold {high}% and {available} bytes "
            f"available cover the headroom of {goal.headroom} bytes ({goal.headroom_note})"
        )
        return None
    why = []
    if over_high:
        why.append(f"usage {usage}% >= high threshold {high}%")
    if short_headroom:
        why.append(
            f"{available} bytes available < headroom {goal.headroom} bytes ({goal.headroom_note})"
        )
    explanations.append(
        f"{' and '.join(why)}: free {need} bytes to reach {goal.target} bytes available "
        f"(low threshold {low}% = {goal.low_target} bytes)"
    )
    return need


def _space_pass(
    candidates: Sequence[GcImage],
    available: int,
    need: int,
    capacity: int,
    policy: GcPolicy,
    goal: _Target,
    kept: list[Kept],
    explanations: list[str],
) -> list[Removal]:
    """Choose the removals for ``need`` bytes; record the candidates left as not needed."""
    eligible_bytes = sum(i.size_bytes for i in candidates)
    if eligible_bytes >= need:
        chosen = fewest_lru_cover(candidates, need)
    elif usage_percent(available, capacity) >= policy.high_threshold_percent:
        low_need = goal.low_target - available
        chosen = fewest_lru_cover(candidates, low_need)
        explanations.append(
            f"only {eligible_bytes} bytes are eligible: freeing towards the low threshold "
            f"({max(low_need, 0)} bytes) without the headroom"
        )
    else:
        chosen = []
        explanations.append(
            f"only {eligible_bytes} bytes are eligible, short of the {need} bytes of "
            "headroom: removing images would not make room, so none are removed"
        )
    chosen_ids = {i.id for i in chosen}
    kept.extend(keep(i, "not needed") for i in candidates if i.id not in chosen_ids)
    return removals(chosen, "space")
