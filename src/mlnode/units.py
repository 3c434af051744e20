"""Go-style durations and byte sizes, as the kubelet and the runtimes write them.

The kubelet's config fields are ``metav1.Duration`` (Go ``time.ParseDuration``), its flags
take the same syntax, and containerd and CRI-O parse their TOML duration strings the same
way. Keeping one parser means ``30m``, ``1h30m`` and ``0s`` mean the same thing everywhere.
"""

from __future__ import annotations

import math
import re

from mlnode.errors import InvalidValue

__all__ = [
    "format_bytes",
    "format_go_duration",
    "parse_bytes",
    "parse_go_duration",
]

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_NS_LIMIT = 1 << 63  # Go's Duration is an int64 count of nanoseconds


def _part_ns(number: str, unit: str) -> int | None:
    """``number`` of ``unit`` in nanoseconds as Go's ParseDuration adds it (src/time/format.go:
    leadingInt refuses an integer part past 1<<63, the product past 1<<63 is refused, the
    fraction's digits stop counting once they would overflow and it is added truncated);
    None where Go reports an overflow."""
    whole, _, frac = number.partition(".")
    v = 0
    for c in whole:
        if v > _NS_LIMIT // 10:
            return None
        v = v * 10 + int(c)
        if v > _NS_LIMIT:
            return None
    scale_ns = _UNIT_NS[unit]
    if v > _NS_LIMIT // scale_ns:
        return None
    v *= scale_ns
    f, scale, overflow = 0, 1.0, False
    for c in frac:
        if overflow or f > (_NS_LIMIT - 1) // 10:
            overflow = True
            continue
        y = f * 10 + int(c)
        if y > _NS_LIMIT:
            overflow = True
            continue
        f, scale = y, scale * 10
    if f > 0:
        v += int(float(f) * (float(scale_ns) / scale))
        if v > _NS_LIMIT:
            return None
    return v


def parse_go_duration(text: str) -> float:
    """Parse a Go duration (``1h30m``, ``2m0s``, ``-5s``, ``0``) into seconds.

    Raises ValueError with Go's wording for anything ``time.ParseDuration`` rejects,
    notably a bare number other than 0 ("missing unit in duration") and a duration that does
    not fit Go's int64 nanoseconds (``99999999999999999h``: 'time: invalid duration "..."',
    the kubelet refuses the config).
    """
    s = text.strip()
    orig = s
    if not s:
        raise InvalidValue(f'time: invalid duration "{orig}"')
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise InvalidValue(f'time: invalid duration "{orig}"')
    pos = 0
    total = 0.0
    total_ns = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", s[pos:]):
                raise InvalidValue(f'time: missing unit in duration "{orig}"')
            raise InvalidValue(f'time: invalid duration "{orig}"')
        part_ns = _part_ns(m.group(1), m.group(2))
        total_ns += part_ns if part_ns is not None else _NS_LIMIT + 1
        if total_ns > _NS_LIMIT:
            raise InvalidValue(f'time: invalid duration "{orig}"')
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if sign > 0 and total_ns > _NS_LIMIT - 1:
        raise InvalidValue(f'time: invalid duration "{orig}"')
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Format seconds the way Go's ``Duration.String`` does (``30m0s``, ``1h0m0s``, ``0s``)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    rem = abs(seconds)
    if rem < 1:
        ns = round(rem * 1e9)
        if ns < 1000:
            return f"{sign}{ns}ns"
        if ns < 1_000_000:
            return f"{sign}{_trim(ns / 1e3)}µs"
        return f"{sign}{_trim(ns / 1e6)}ms"
    hours = int(rem // 3600)
    rem -= hours * 3600
    minutes = int(rem // 60)
    rem -= minutes * 60
    secs = _trim(round(rem, 9))
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(x: float) -> str:
    if math.isclose(x, round(x), abs_tol=1e-9):
        return str(round(x))
    return f"{x:.9f}".rstrip("0").rstrip(".")


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
    "p": 1000**5,
    "pb": 1000**5,
    "pi": 1024**5,
    "pib": 1024**5,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int:
    """Parse ``15GiB``, ``15G``, ``200Mi`` or a plain byte count into bytes."""
    m = _BYTES_RE.match(text)
    if not m or m.group(2).lower() not in _BYTE_UNITS:
        raise InvalidValue(f"{text!r} is not a size (examples: 15GiB, 800Gi, 500MB, 1048576)")
    return int(float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()])


def format_bytes(n: int) -> str:
    """Binary units with one decimal: 15.0 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
