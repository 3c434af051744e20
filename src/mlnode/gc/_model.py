"""What image GC plans over: images, the image filesystem, the policy, and the plan.

Time model: a timestamp of ``None`` for ``last_used`` means "never seen in use", which
the kubelet represents as Go's zero time (0001-01-01T00:00:00Z); see
:data:`~mlnode.gc.GO_ZERO_TIME`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from mlnode.errors import InputError
from mlnode.gc._goarith import GO_ZERO_TIME, INT64_MAX, usage_percent

__all__ = [
    "FilesystemState",
    "GcImage",
    "GcPlan",
    "GcPolicy",
    "InvalidCapacity",
    "InvalidGcInput",
    "Kept",
    "MirrorBlob",
    "PolicyName",
    "Reason",
    "Removal",
    "last_used_or_zero",
    "plan_to_json",
]

#: Why a plan removes something: ``age`` / ``space`` for images, ``mirror-cache`` for a
#: complete blob of the node mirror's cache (the ml policy's first tier).
Reason = Literal["space", "age", "mirror-cache"]


class PolicyName(enum.StrEnum):
    """Which planner to use."""

    ML = "ml"
    KUBELET = "kubelet"


class InvalidGcInput(InputError, ValueError):
    """A policy, filesystem or image value that cannot be true; ``key`` names the field.

    An :class:`~mlnode.errors.InputError` (exit 2) because such values come from a
    snapshot or state file; the CLI turns ones that came from options into a
    :class:`~mlnode.errors.UsageError`. Still a ``ValueError`` for callers of the API.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class InvalidCapacity(InvalidGcInput):
    """The image filesystem reports capacity 0.

    The kubelet's ``GarbageCollect`` returns this error after its maximum-age pass
    (:func:`~mlnode.gc.plan_kubelet` then returns a plan with ``error`` set); the ml
    policy refuses to plan. The key names the snapshot field.
    """

    def __init__(self) -> None:
        # Same text as the kubelet's InvalidDiskCapacity event (v1.28+).
        super().__init__("filesystem.capacity_bytes", "invalid capacity 0 on image filesystem")


def _check_int64(key: str, value: int, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidGcInput(key, f"must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidGcInput(key, f"must be >= {minimum}, got {value}")
    if value > INT64_MAX:
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
class MirrorBlob:
    """One blob of the node mirror's cache as the ml policy sees it.

    ``disk_bytes`` is what removing it frees (the sparse data file's blocks). Only a
    ``complete`` blob that is not ``in_flight`` (containerd is not ingesting it right now)
    may be removed; partial blobs belong to the mirror's own bound.
    """

    digest: str
    disk_bytes: int
    complete: bool
    last_access_unix: float
    in_flight: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            raise InvalidGcInput("digest", "must be a non-empty string")
        _check_int64("disk_bytes", self.disk_bytes)

    @property
    def removable(self) -> bool:
        return self.complete and not self.in_flight


def last_used_or_zero(image: GcImage) -> datetime:
    """``last_used``, with "never" as the kubelet's Go zero time."""
    return image.last_used if image.last_used is not None else GO_ZERO_TIME


@dataclass(frozen=True, kw_only=True)
class GcPolicy:
    """Garbage-collection settings. Field names mirror the kubelet's configuration.

    ``kubelet_uptime_seconds`` models the kubelet's rule that the maximum-age pass waits
    until the GC loop has run longer than ``maximum_age_seconds``; ``None`` means "long
    enough". ``headroom_bytes``, ``largest_image_bytes`` and ``keep_patterns`` are used
    only by the ml policy (see :func:`~mlnode.gc.plan_ml`).
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
        # available > capacity is accepted: cAdvisor can report it, and the kubelet then
        # logs "Availability is larger than capacity" and uses capacity (clamped()).

    @property
    def over_reported(self) -> bool:
        """Whether the reading says more is available than the filesystem holds."""
        return self.available_bytes > self.capacity_bytes

    def clamped(self) -> FilesystemState:
        """The reading as the kubelet's ``GarbageCollect`` uses it: ``available`` at most
        ``capacity`` (image_gc_manager.go, "Availability is larger than capacity")."""
        if not self.over_reported:
            return self
        return FilesystemState(
            capacity_bytes=self.capacity_bytes, available_bytes=self.capacity_bytes
        )

    @property
    def usage_percent(self) -> int:
        """The kubelet's ``100 - int(available*100/capacity)`` after its clamp of
        ``available`` to ``capacity`` (raises on capacity 0)."""
        if self.capacity_bytes == 0:
            raise InvalidCapacity()
        return usage_percent(min(self.available_bytes, self.capacity_bytes), self.capacity_bytes)


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
    passes included. ``satisfied`` is ``bytes_freed >= bytes_to_free``, except that a plan
    with an ``error`` is never satisfied.

    ``error`` is set when the planner stopped where the kubelet's ``GarbageCollect``
    returns an error after having removed images (capacity 0 after the age pass): the
    removals in ``removed`` still happen, and the collection counts as failed.
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
    error: str | None = None


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
