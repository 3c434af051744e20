"""Go's int64 arithmetic and ``time.Sub``, as the kubelet's image GC computes with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "GO_ZERO_TIME",
    "INT64_MAX",
    "amount_to_free",
    "go_div",
    "go_sub",
    "low_target_bytes",
    "usage_percent",
    "wrap64",
]

#: Go's ``time.Time{}``: what the kubelet stores for "never used" and, up to v1.28, for
#: the first detection after a kubelet start.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


def wrap64(value: int) -> int:
    """Wrap to int64 the way Go's two's-complement arithmetic does on overflow."""
    return ((value - _INT64_MIN) % 2**64) + _INT64_MIN


def go_div(a: int, b: int) -> int:
    """Go's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_GO_MAX_DURATION = timedelta(microseconds=INT64_MAX // 1000)
_GO_MIN_DURATION = timedelta(microseconds=_INT64_MIN // 1000)


def go_sub(t: datetime, u: datetime) -> timedelta:
    """Go's ``t.Sub(u)``: saturates at about ±292 years instead of overflowing."""
    d = t - u
    if d > _GO_MAX_DURATION:
        return _GO_MAX_DURATION
    if d < _GO_MIN_DURATION:
        return _GO_MIN_DURATION
    return d


def usage_percent(available_bytes: int, capacity_bytes: int) -> int:
    """The kubelet's ``100 - int(available*100/capacity)`` in int64 (capacity must be > 0)."""
    return 100 - go_div(wrap64(available_bytes * 100), capacity_bytes)


def low_target_bytes(capacity_bytes: int, low_threshold_percent: int) -> int:
    """The available bytes the kubelet aims for: ``capacity*(100-low)/100`` in int64."""
    return go_div(wrap64(capacity_bytes * (100 - low_threshold_percent)), 100)


def amount_to_free(capacity_bytes: int, low_threshold_percent: int, available_bytes: int) -> int:
    """The kubelet's ``amountToFree = capacity*(100-low)/100 - available`` in int64."""
    return wrap64(low_target_bytes(capacity_bytes, low_threshold_percent) - available_bytes)
