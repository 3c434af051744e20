"""Image garbage-collection planning: the kubelet's algorithm, and mlnode's ML-node policy.

Everything here is pure: functions take images, the image filesystem's numbers, a policy
and the time, and return a :class:`GcPlan`. Nothing is read, removed or written; the
executor in :mod:`mlnode.ops.gc_runtime` carries plans out.

Two planners share one input shape:

``plan_kubelet``
    The kubelet's ``realImageGCManager.GarbageCollect`` (``pkg/kubelet/images/
    image_gc_manager.go``, v1.29+ with ``imageMaximumGCAge``; identical to v1.28 and
    earlier when ``maximum_age_seconds`` is 0), reproduced step by step with Go's int64
    arithmetic. See the function docstring for the mapping.

``plan_ml``
    Same protections, plus a byte headroom target and a size-aware choice of which
    images to remove. See the function docstring for the policy.

Time model: a timestamp of ``None`` for ``last_used`` means "never seen in use", which
the kubelet represents as Go's zero time (0001-01-01T00:00:00Z); the kubelet planner
uses exactly that value, including Go's saturation of ``time.Sub`` at about 292 years.
"""

from __future__ import annotations

import enum
import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "GO_ZERO_TIME",
    "FilesystemState",
    "GcImage",
    "GcPlan",
    "GcPolicy",
    "InvalidCapacity",
    "InvalidGcInput",
    "Kept",
    "PolicyName",
    "Removal",
    "fewest_lru_cover",
    "plan",
    "plan_kubelet",
    "plan_ml",
    "plan_to_json",
]

#: Go's ``time.Time{}``: what the kubelet stores for "never used" and, up to v1.28, for
#: the first detection after a kubelet start.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

Reason = Literal["space", "age"]


class PolicyName(enum.StrEnum):
    """Which planner to use."""

    ML = "ml"
    KUBELET = "kubelet"


class InvalidGcInput(ValueError):
    """A policy, filesystem or image value that cannot be true; ``key`` names the field."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class InvalidCapacity(InvalidGcInput):
    """The image filesystem reports capacity 0; the kubelet refuses to garbage collect."""

    def __init__(self) -> None:
        # Same text as the kubelet's InvalidDiskCapacity event (v1.28+).
        super().__init__("capacity_bytes", "invalid capacity 0 on image filesystem")


def _check_int64(key: str, value: int, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidGcInput(key, f"must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidGcInput(key, f"must be >= {minimum}, got {value}")
    if value > _INT64_MAX:
        raise InvalidGcInput(key, f"must fit in a signed 64-bit integer, got {value}")


def _check_seconds(key: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidGcInput(key, f"must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise InvalidGcInput(key, f"must not be negative, got {value}")


@dataclass(frozen=True, kw_only=True)
class GcImage:
    """One image as garbage collection sees it.

    ``size_bytes`` is what the runtime reports (containerd: the compressed size).
    ``last_used`` is the last time a container (any state) referenced the image, or
    ``None`` if never; ``first_detected`` is when the image was first seen on the node.
    ``names`` are its tags and digests, used only for display and ``--keep`` patterns.
    """

    id: str
    size_bytes: int
    pinned: bool = False
    in_use: bool = False
    being_pulled: bool = False
    last_used: datetime | None = None
    first_detected: datetime
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidGcInput("id", "must be a non-empty string")
        _check_int64("size_bytes", self.size_bytes)
        for key, ts in (("last_used", self.last_used), ("first_detected", self.first_detected)):
            if ts is not None and ts.tzinfo is None:
                raise InvalidGcInput(key, "must carry a UTC offset")

    @property
    def display_name(self) -> str:
        """The first tag if there is one, else the id."""
        return self.names[0] if self.names else self.id


@dataclass(frozen=True, kw_only=True)
class GcPolicy:
    """Garbage-collection settings. Field names mirror the kubelet's configuration.

    ``kubelet_uptime_seconds`` models the kubelet's rule that the maximum-age pass waits
    until the GC loop has run longer than ``maximum_age_seconds``; ``None`` means "long
    enough". ``headroom_bytes``, ``largest_image_bytes`` and ``keep_patterns`` are used
    only by the ml policy (see :func:`plan_ml`).
    """

    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    minimum_age_seconds: float = 120.0
    maximum_age_seconds: float = 0.0
    kubelet_uptime_seconds: float | None = None
    headroom_bytes: int | None = None
    largest_image_bytes: int | None = None
    keep_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The kubelet's own rules (pkg/kubelet/apis/config/validation), which are stricter
        # than NewImageGCManager's (that one allows low == high).
        for key in ("high_threshold_percent", "low_threshold_percent"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidGcInput(key, f"must be an integer, got {value!r}")
            if not 0 <= value <= 100:
                raise InvalidGcInput(key, f"must be between 0 and 100, inclusive, got {value}")
        if self.low_threshold_percent >= self.high_threshold_percent:
            raise InvalidGcInput(
                "low_threshold_percent",
                f"{self.low_threshold_percent} must be less than high_threshold_percent "
                f"{self.high_threshold_percent}",
            )
        _check_seconds("minimum_age_seconds", self.minimum_age_seconds)
        _check_seconds("maximum_age_seconds", self.maximum_age_seconds)
        if 0 < self.maximum_age_seconds <= self.minimum_age_seconds:
            raise InvalidGcInput(
                "maximum_age_seconds",
                f"{self.maximum_age_seconds} must be greater than minimum_age_seconds "
                f"{self.minimum_age_seconds}",
            )
        _check_seconds("kubelet_uptime_seconds", self.kubelet_uptime_seconds, allow_none=True)
        for key in ("headroom_bytes", "largest_image_bytes"):
            value = getattr(self, key)
            if value is not None:
                _check_int64(key, value)

    @property
    def minimum_age(self) -> timedelta:
        return timedelta(seconds=self.minimum_age_seconds)

    @property
    def maximum_age(self) -> timedelta:
        return timedelta(seconds=self.maximum_age_seconds)


@dataclass(frozen=True, kw_only=True)
class FilesystemState:
    """The filesystem holding the runtime's image store (statvfs of the containerd root)."""

    capacity_bytes: int
    available_bytes: int

    def __post_init__(self) -> None:
        _check_int64("capacity_bytes", self.capacity_bytes)
        _check_int64("available_bytes", self.available_bytes)
        if self.available_bytes > self.capacity_bytes:
            # The kubelet logs "Availability is larger than capacity" and clamps; a
            # snapshot saying so is wrong, so mlnode rejects it.
            raise InvalidGcInput(
                "available_bytes",
                f"{self.available_bytes} is larger than capacity_bytes {self.capacity_bytes}",
            )

    @property
    def usage_percent(self) -> int:
        """The kubelet's ``100 - int(available*100/capacity)`` (raises on capacity 0)."""
        if self.capacity_bytes == 0:
            raise InvalidCapacity()
        return 100 - _go_div(_wrap64(self.available_bytes * 100), self.capacity_bytes)


@dataclass(frozen=True)
class Removal:
    """One image the plan removes, and why: ``age`` (maximum age) or ``space``."""

    id: str
    size_bytes: int
    reason: Reason
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kept:
    """One image the plan leaves, and why (one short phrase)."""

    id: str
    size_bytes: int
    reason: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GcPlan:
    """What a planner decided.

    ``bytes_to_free`` is 0 when no space-based collection is due. Otherwise it is the
    shortfall against the target measured on the filesystem as given (for the kubelet:
    its ``amountToFree``). ``bytes_freed`` is the sum of the sizes of ``removed``, both
    passes included. ``satisfied`` is ``bytes_freed >= bytes_to_free``.
    """

    policy: PolicyName
    bytes_to_free: int
    removed: tuple[Removal, ...]
    bytes_freed: int
    satisfied: bool
    triggered: bool
    usage_percent: int
    capacity_bytes: int
    available_bytes: int
    target_available_bytes: int | None = None
    headroom_bytes: int | None = None
    kept: tuple[Kept, ...] = ()
    explanations: tuple[str, ...] = field(default_factory=tuple)


def plan_to_json(p: GcPlan) -> dict[str, Any]:
    """The ``--output json`` document: exactly these four keys (docs/gc.md)."""
    return {
        "bytes_to_free": p.bytes_to_free,
        "removed": [
            {"id": r.id, "size_bytes": r.size_bytes, "reason": r.reason} for r in p.removed
        ],
        "bytes_freed": p.bytes_freed,
        "satisfied": p.satisfied,
    }


# --- Go arithmetic -----------------------------------------------------------------


def _wrap64(value: int) -> int:
    """Wrap to int64 the way Go's two's-complement arithmetic does on overflow."""
    return ((value - _INT64_MIN) % 2**64) + _INT64_MIN


def _go_div(a: int, b: int) -> int:
    """Go's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_GO_MAX_DURATION = timedelta(microseconds=_INT64_MAX // 1000)
_GO_MIN_DURATION = timedelta(microseconds=_INT64_MIN // 1000)


def _go_sub(t: datetime, u: datetime) -> timedelta:
    """Go's ``t.Sub(u)``: saturates at about ±292 years instead of overflowing."""
    d = t - u
    if d > _GO_MAX_DURATION:
        return _GO_MAX_DURATION
    if d < _GO_MIN_DURATION:
        return _GO_MIN_DURATION
    return d


def _last_used(image: GcImage) -> datetime:
    return image.last_used if image.last_used is not None else GO_ZERO_TIME


# --- shared steps ------------------------------------------------------------------


def _eviction_order(
    images: Sequence[GcImage], keep_patterns: Sequence[str] = ()
) -> tuple[list[GcImage], list[Kept]]:
    """Unprotected images, oldest ``last_used`` first, ties by earlier ``first_detected``.

    The kubelet builds this list from a Go map and sorts it with the unstable
    ``sort.Sort``, so images tied on both times come in no defined order; mlnode orders
    them by id, so a plan does not depend on the order the runtime lists images in.
    """
    candidates: list[GcImage] = []
    kept: list[Kept] = []
    for image in images:
        reason = _protection(image, keep_patterns)
        if reason is None:
            candidates.append(image)
        else:
            kept.append(Kept(image.id, image.size_bytes, reason, image.names))
    candidates.sort(key=lambda i: (_last_used(i), i.first_detected, i.id))
    return candidates, kept


def _protection(image: GcImage, keep_patterns: Sequence[str]) -> str | None:
    if image.in_use:
        return "in use by a container"
    if image.pinned:
        return "pinned by the runtime"
    if image.being_pulled:
        return "being pulled"
    for pattern in keep_patterns:
        for name in (image.id, *image.names):
            if fnmatch.fnmatchcase(name, pattern):
                return f"matches --keep {pattern}"
    return None


def _removals(images: Iterable[GcImage], reason: Reason) -> list[Removal]:
    return [Removal(i.id, i.size_bytes, reason, i.names) for i in images]


def _age_explanation(policy: GcPolicy, removed: Sequence[Removal]) -> str:
    return (
        f"maximum-age pass (older than {_fmt_seconds(policy.maximum_age_seconds)} since "
        f"last use): {len(removed)} image(s), {sum(r.size_bytes for r in removed)} bytes"
    )


def _fmt_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# --- the kubelet -------------------------------------------------------------------


def plan_kubelet(
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
) -> GcPlan:
    """Plan exactly what the kubelet's image GC would remove at ``now``.

    Step by step (``image_gc_manager.go`` on main; 1.28 is the same without step 2):

    0. ``imageGCHighThresholdPercent == 100`` and ``imageMaximumGCAge == 0``: the kubelet
       never starts the GC loop (``kubelet.go StartGarbageCollection``; up to v1.28 the
       high threshold alone decides, and v1.28 has no maximum age). Nothing is removed.
       The eviction manager can still delete unused images under disk pressure; that
       path is not modelled here.
    1. Eviction order: skip images in use by any container (all states) and pinned
       images (mlnode also skips images being pulled); sort by ``lastUsed`` (never used
       = Go zero time, so first), ties by earlier ``firstDetected``.
    2. Maximum-age pass, only when ``maximum_age_seconds > 0`` and the kubelet's GC loop
       has been running longer than that (``kubelet_uptime_seconds``; ``None`` = yes):
       remove every image in the order with ``now - lastUsed > maxAge``. It ignores the
       minimum age, and a never-used image counts as infinitely old.
    3. Read the filesystem. The kubelet reads its stats *after* step 2, and its bytes are
       not added to the space pass's count; mlnode models that read as the snapshot's
       ``available_bytes`` plus the age pass's bytes (capped at capacity), which is the
       same size accounting the kubelet uses for the space pass.
    4. ``capacity == 0``: error "invalid capacity 0 on image filesystem".
       ``usage = 100 - int(available*100/capacity)``; nothing more unless
       ``usage >= high``. Then ``amountToFree = capacity*(100-low)/100 - available``
       (int64, truncating).
    5. Space pass over the images left by step 2, in order: skip ``lastUsed >= now``,
       skip ``now - firstDetected < minAge``, otherwise remove and add its size; stop as
       soon as the total freed is ``>= amountToFree``. The check comes *after* a removal,
       so when ``amountToFree <= 0`` the kubelet still removes the first eligible image.

    ``bytes_to_free`` in the result is ``amountToFree`` plus the age pass's bytes, i.e.
    the shortfall against the low threshold on the filesystem as given, so that
    ``satisfied == (bytes_freed >= bytes_to_free)`` is the kubelet's own
    ``freed >= amountToFree`` test. Raises :class:`InvalidCapacity` for capacity 0.
    """
    if filesystem.capacity_bytes == 0:
        raise InvalidCapacity()
    usage_before = filesystem.usage_percent
    common: dict[str, Any] = {
        "policy": PolicyName.KUBELET,
        "usage_percent": usage_before,
        "capacity_bytes": filesystem.capacity_bytes,
        "available_bytes": filesystem.available_bytes,
    }

    if policy.high_threshold_percent == 100 and policy.maximum_age_seconds == 0:
        return GcPlan(
            bytes_to_free=0,
            removed=(),
            bytes_freed=0,
            satisfied=True,
            triggered=False,
            kept=tuple(Kept(i.id, i.size_bytes, "image GC disabled", i.names) for i in images),
            explanations=(
                "image GC is disabled: high threshold 100% and no maximum age "
                "(the kubelet does not start its image GC loop)",
            ),
            **common,
        )

    order, kept = _eviction_order(images)
    explanations: list[str] = []

    # Step 2: maximum age.
    age_removed: list[Removal] = []
    remaining = order
    if policy.maximum_age_seconds > 0:
        max_age = policy.maximum_age
        uptime = policy.kubelet_uptime_seconds
        if uptime is not None and timedelta(seconds=uptime) <= max_age:
            explanations.append(
                f"maximum-age pass skipped: the kubelet has been collecting for "
                f"{_fmt_seconds(uptime)}, not longer than the maximum age "
                f"{_fmt_seconds(policy.maximum_age_seconds)}"
            )
        else:
            too_old = [i for i in order if _go_sub(now, _last_used(i)) > max_age]
            age_removed = _removals(too_old, "age")
            old_ids = {i.id for i in too_old}
            remaining = [i for i in order if i.id not in old_ids]
            explanations.append(_age_explanation(policy, age_removed))
    age_freed = sum(r.size_bytes for r in age_removed)

    # Steps 3-4: the filesystem as read after the age pass.
    capacity = filesystem.capacity_bytes
    available = min(capacity, filesystem.available_bytes + age_freed)
    usage = 100 - _go_div(_wrap64(available * 100), capacity)
    high, low = policy.high_threshold_percent, policy.low_threshold_percent
    if usage < high:
        explanations.append(
            f"usage {usage}% is below the high threshold {high}%: no space-based collection"
        )
        kept.extend(Kept(i.id, i.size_bytes, "not needed", i.names) for i in remaining)
        return GcPlan(
            bytes_to_free=0,
            removed=tuple(age_removed),
            bytes_freed=age_freed,
            satisfied=True,
            triggered=False,
            kept=tuple(kept),
            explanations=tuple(explanations),
            **common,
        )
    amount_to_free = _wrap64(_go_div(_wrap64(capacity * (100 - low)), 100) - available)
    target = _go_div(_wrap64(capacity * (100 - low)), 100)
    explanations.append(
        f"usage {usage}% >= high threshold {high}%: free {amount_to_free} bytes to reach "
        f"the low threshold {low}%"
    )

    # Step 5: space.
    space_removed: list[Removal] = []
    freed = 0
    done = False
    for image in remaining:
        if done:
            kept.append(Kept(image.id, image.size_bytes, "not needed", image.names))
        elif _last_used(image) >= now:
            kept.append(Kept(image.id, image.size_bytes, "used at or after now", image.names))
        elif _go_sub(now, image.first_detected) < policy.minimum_age:
            kept.append(
                Kept(image.id, image.size_bytes, "younger than the minimum age", image.names)
            )
        else:
            space_removed.append(Removal(image.id, image.size_bytes, "space", image.names))
            freed += image.size_bytes
            done = freed >= amount_to_free
    satisfied = freed >= amount_to_free
    if not satisfied:
        explanations.append(
            f"not enough eligible images: freed {freed} of {amount_to_free} bytes "
            "(the kubelet would report FreeDiskSpaceFailed)"
        )
    removed = (*age_removed, *space_removed)
    return GcPlan(
        bytes_to_free=amount_to_free + age_freed,
        removed=removed,
        bytes_freed=age_freed + freed,
        satisfied=satisfied,
        triggered=True,
        target_available_bytes=target,
        kept=tuple(kept),
        explanations=tuple(explanations),
        **common,
    )


# --- mlnode's policy ---------------------------------------------------------------


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


def plan_ml(
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
) -> GcPlan:
    """Plan mlnode's collection for nodes that pull images of tens of gigabytes.

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

    **When the target cannot be reached:** if usage is at or above the high threshold,
    free what can be freed towards the low-threshold target (disk pressure matters more
    than re-pull cost); if only the headroom is short, remove nothing, because no
    removal would make room for the image. Either way ``satisfied`` is false.
    """
    if filesystem.capacity_bytes == 0:
        raise InvalidCapacity()
    capacity = filesystem.capacity_bytes
    high, low = policy.high_threshold_percent, policy.low_threshold_percent
    if policy.headroom_bytes is not None:
        headroom = policy.headroom_bytes
        headroom_note = "set explicitly"
    else:
        seen = max((i.size_bytes for i in images), default=0)
        headroom = max(seen, policy.largest_image_bytes or 0)
        headroom_note = "room for the largest image"
    low_target = _go_div(_wrap64(capacity * (100 - low)), 100)
    target = max(low_target, headroom)
    common: dict[str, Any] = {
        "policy": PolicyName.ML,
        "usage_percent": filesystem.usage_percent,
        "capacity_bytes": capacity,
        "available_bytes": filesystem.available_bytes,
        "target_available_bytes": target,
        "headroom_bytes": headroom,
    }

    order, kept = _eviction_order(images, policy.keep_patterns)
    candidates: list[GcImage] = []
    for image in order:
        if _last_used(image) >= now:
            kept.append(Kept(image.id, image.size_bytes, "used at or after now", image.names))
        elif now - image.first_detected < policy.minimum_age:
            kept.append(
                Kept(image.id, image.size_bytes, "younger than the minimum age", image.names)
            )
        else:
            candidates.append(image)
    explanations: list[str] = []

    age_removed: list[Removal] = []
    if policy.maximum_age_seconds > 0:
        max_age = policy.maximum_age
        too_old = [i for i in candidates if now - max(_last_used(i), i.first_detected) > max_age]
        age_removed = _removals(too_old, "age")
        old_ids = {i.id for i in too_old}
        candidates = [i for i in candidates if i.id not in old_ids]
        explanations.append(_age_explanation(policy, age_removed))
    age_freed = sum(r.size_bytes for r in age_removed)

    available = min(capacity, filesystem.available_bytes + age_freed)
    usage = 100 - _go_div(_wrap64(available * 100), capacity)
    over_high = usage >= high
    short_headroom = available < headroom
    need = target - available
    if not (over_high or short_headroom) or need <= 0:
        if need <= 0:
            explanations.append(
                f"{available} bytes available already reach the target of {target} bytes"
            )
        else:
            explanations.append(
                f"usage {usage}% is below the high threshold {high}% and {available} bytes "
                f"available cover the headroom of {headroom} bytes ({headroom_note})"
            )
        kept.extend(Kept(i.id, i.size_bytes, "not needed", i.names) for i in candidates)
        return GcPlan(
            bytes_to_free=0,
            removed=tuple(age_removed),
            bytes_freed=age_freed,
            satisfied=True,
            triggered=False,
            kept=tuple(kept),
            explanations=tuple(explanations),
            **common,
        )

    why = []
    if over_high:
        why.append(f"usage {usage}% >= high threshold {high}%")
    if short_headroom:
        why.append(f"{available} bytes available < headroom {headroom} bytes ({headroom_note})")
    explanations.append(
        f"{' and '.join(why)}: free {need} bytes to reach {target} bytes available "
        f"(low threshold {low}% = {low_target} bytes)"
    )
    eligible_bytes = sum(i.size_bytes for i in candidates)
    if eligible_bytes >= need:
        chosen = fewest_lru_cover(candidates, need)
    elif over_high:
        low_need = low_target - available
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
    for image in candidates:
        if image.id not in chosen_ids:
            kept.append(Kept(image.id, image.size_bytes, "not needed", image.names))
    space_removed = _removals(chosen, "space")
    freed = sum(r.size_bytes for r in space_removed)
    satisfied = freed >= need
    return GcPlan(
        bytes_to_free=need + age_freed,
        removed=(*age_removed, *space_removed),
        bytes_freed=age_freed + freed,
        satisfied=satisfied,
        triggered=True,
        kept=tuple(kept),
        explanations=tuple(explanations),
        **common,
    )


def plan(
    name: PolicyName,
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
) -> GcPlan:
    """Dispatch to :func:`plan_ml` or :func:`plan_kubelet`."""
    planner = plan_kubelet if name is PolicyName.KUBELET else plan_ml
    return planner(images, filesystem, policy, now=now)
