"""The steps both planners share, and the one place a :class:`GcPlan` is assembled."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from mlnode.gc._model import (
    FilesystemState,
    GcImage,
    GcPlan,
    GcPolicy,
    Kept,
    PolicyName,
    Reason,
    Removal,
    last_used_or_zero,
)

__all__ = [
    "age_explanation",
    "build_plan",
    "eviction_order",
    "fmt_seconds",
    "keep",
    "not_eligible",
    "removals",
    "split_too_old",
]


def eviction_order(
    images: Sequence[GcImage], keep_patterns: Sequence[str] = ()
) -> tuple[list[GcImage], list[Kept]]:
    """Unprotected images, oldest ``last_used`` first, ties by earlier ``first_detected``.

    The kubelet builds this list from a Go map and sorts it with the unstable
    ``sort.Sort``, so images tied on both times come in no defined order; mlnode orders
    them by id, so a plan does not depend on the order the runtime lists images in.
    """
    candidates: list[GcImage] = []
    protected: list[Kept] = []
    for image in images:
        reason = _protection(image, keep_patterns)
        if reason is None:
            candidates.append(image)
        else:
            protected.append(keep(image, reason))
    candidates.sort(key=lambda i: (last_used_or_zero(i), i.first_detected, i.id))
    return candidates, protected


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


def not_eligible(
    image: GcImage,
    policy: GcPolicy,
    now: datetime,
    sub: Callable[[datetime, datetime], timedelta],
) -> str | None:
    """Why the space pass must leave ``image``, or None; ``sub`` is how age is measured."""
    if last_used_or_zero(image) >= now:
        return "used at or after now"
    if sub(now, image.first_detected) < policy.minimum_age:
        return "younger than the minimum age"
    return None


def keep(image: GcImage, reason: str) -> Kept:
    return Kept(image.id, image.size_bytes, reason, image.names)


def removals(images: Iterable[GcImage], reason: Reason) -> list[Removal]:
    return [Removal(i.id, i.size_bytes, reason, i.names) for i in images]


def split_too_old(
    order: Sequence[GcImage], too_old: Callable[[GcImage], bool]
) -> tuple[list[Removal], list[GcImage]]:
    """The maximum-age pass: removals for the images ``too_old`` picks, and the rest."""
    old = [i for i in order if too_old(i)]
    old_ids = {i.id for i in old}
    return removals(old, "age"), [i for i in order if i.id not in old_ids]


def age_explanation(policy: GcPolicy, removed: Sequence[Removal]) -> str:
    return (
        f"maximum-age pass (older than {fmt_seconds(policy.maximum_age_seconds)} since "
        f"last use): {len(removed)} image(s), {sum(r.size_bytes for r in removed)} bytes"
    )


def fmt_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def build_plan(
    policy: PolicyName,
    filesystem: FilesystemState,
    *,
    kept: Sequence[Kept],
    explanations: Sequence[str],
    age: Sequence[Removal] = (),
    space: Sequence[Removal] = (),
    need_bytes: int | None = None,
    target_available_bytes: int | None = None,
    headroom_bytes: int | None = None,
    error: str | None = None,
) -> GcPlan:
    """Assemble a plan from what the passes chose.

    ``need_bytes`` is what the space pass had to free on the filesystem as read after the
    age pass (``None``: no space-based collection was due, so the plan is satisfied and
    not triggered). ``bytes_to_free`` adds the age pass's bytes back, so it is the
    shortfall on the filesystem as given, and ``satisfied`` is the space pass reaching
    its own need. With an ``error`` (the collection stopped after the age pass) the plan
    is triggered and never satisfied; on capacity 0 it reports usage 100%.
    """
    age_freed = sum(r.size_bytes for r in age)
    space_freed = sum(r.size_bytes for r in space)
    if need_bytes is None:
        bytes_to_free, satisfied, triggered = 0, True, False
    else:
        bytes_to_free, satisfied, triggered = (
            need_bytes + age_freed,
            space_freed >= need_bytes,
            True,
        )
    if error is not None:
        satisfied, triggered = False, True
    usage = filesystem.usage_percent if filesystem.capacity_bytes > 0 else 100
    return GcPlan(
        policy=policy,
        bytes_to_free=bytes_to_free,
        removed=(*age, *space),
        bytes_freed=age_freed + space_freed,
        satisfied=satisfied,
        triggered=triggered,
        usage_percent=usage,
        capacity_bytes=filesystem.capacity_bytes,
        available_bytes=min(filesystem.available_bytes, filesystem.capacity_bytes),
        target_available_bytes=target_available_bytes,
        headroom_bytes=headroom_bytes,
        kept=tuple(kept),
        explanations=tuple(explanations),
        error=error,
    )
