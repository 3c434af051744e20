"""The kubelet's parsing of eviction thresholds (``evictionHard`` / ``--eviction-hard``).

``pkg/kubelet/eviction/helpers.go`` ``ParseThresholdConfig`` runs in ``cmd/kubelet/app/
server.go`` ``run()`` on the merged configuration; an error stops the kubelet with
"failed to run Kubelet: <error>". Identical in every version read (KubeEdge-vendored
1.21.4 ... 1.32.10); only the set of signals changed. Each statement is ``signal -> value``:
- the signal must be one of :data:`EVICTION_SIGNALS` for the version ("unsupported
  eviction signal %v");
- a value ending in ``%`` is ``strconv.ParseFloat(strings.TrimRight(v, "%"), 32)`` / 100;
  exactly "0%" and "100%" are accepted and drop the threshold; below 0 → "eviction
  percentage threshold %v must be >= 0%%: %s", above 100 → "... must be <= 100%%: %s";
- anything else is ``resource.ParseQuantity`` (apimachinery ``quantity.go``), and must be
  positive: "eviction threshold %v must be positive: %s".

The operator is fixed per signal (``<``, api/types.go ``OpForSignal``); on the command line
the ``<`` is the pair separator of ``LangleSeparatedMapStringString``, checked by
:func:`mlnode.knowledge.values.parse_signal_map`, not here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from mlnode.knowledge.spans import Span, v
from mlnode.versions import Version

__all__ = [
    "EVICTION_SIGNALS",
    "EvictionSignals",
    "eviction_signals",
    "eviction_startup_message",
    "threshold_error",
    "threshold_errors",
]

_BASE = frozenset(
    {
        "memory.available",
        "allocatableMemory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
        "imagefs.inodesFree",
        "pid.available",
    }
)


@dataclass(frozen=True)
class EvictionSignals:
    """The signal names ``validSignal`` accepts (keys of ``signalToResource``)."""

    span: Span
    signals: frozenset[str]
    source: str


EVICTION_SIGNALS: tuple[EvictionSignals, ...] = (
    EvictionSignals(
        Span(until=v("1.29")),
        _BASE,
        "pkg/kubelet/eviction/helpers.go signalToResource, read at 1.21.4, 1.22.6, 1.23.15, "
        "1.24.14, 1.26.7, 1.27.7, 1.28.6 (KubeEdge vendor); 1.20 and 1.25 unread, taken as same",
    ),
    EvictionSignals(
        Span(since=v("1.29")),
        _BASE | {"containerfs.available", "containerfs.inodesFree"},
        "helpers.go signalToResource gains SignalContainerFs* in 1.29 (KEP-4191), read at "
        "1.29.6, 1.30.7, 1.31.12, 1.32.10; 1.33+ unread, taken as same",
    ),
)


def eviction_signals(version: Version) -> frozenset[str]:
    return next(r.signals for r in EVICTION_SIGNALS if r.span.contains(version))


_FLOAT32_MAX = 3.4028234663852886e38
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]*\.?[0-9a-fA-F_]*)[pP][+-]?\d+")
_FORMAT_WRONG = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def _parse_float32(text: str) -> float:
    """Go's ``strconv.ParseFloat(text, 32)``; ValueError with Go's wording."""
    if _SPECIAL.fullmatch(text):
        return float(text.lower().replace("infinity", "inf"))
    if _DECIMAL.fullmatch(text) or _HEX.fullmatch(text):
        value = float.fromhex(text.replace("_", "")) if _HEX.fullmatch(text) else float(text)
        if abs(value) > _FLOAT32_MAX:
            raise ValueError(f'strconv.ParseFloat: parsing "{text}": value out of range')
        return value
    raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')


def _split_quantity(text: str) -> tuple[str, str]:
    """apimachinery's ``parseQuantityString``: (number, suffix); ValueError as Go says it."""
    m = re.fullmatch(r"([+-]?[0-9]*(?:\.[0-9]*)?)([eEinumkKMGTP]*[-+]?[0-9]*)", text)
    if not text or m is None:
        raise ValueError(_FORMAT_WRONG)
    return m.group(1), m.group(2)


def _quantity(text: str) -> tuple[Fraction, str]:
    """``resource.ParseQuantity``: the exact value and its suffix (the suffix is
    interpreted before the number, as in Go). DERIVED: ErrNumeric ("unable to parse numeric
    part of quantity"), which Go returns only for numbers beyond its parser, is not
    reproduced."""
    number, suffix = _split_quantity(text)
    exp = re.fullmatch(r"[eE]([+-]?\d+)", suffix)
    if suffix in _BINARY:
        scale = Fraction(1024) ** _BINARY[suffix]
    elif suffix in _DECIMAL_SI:
        scale = Fraction(10) ** _DECIMAL_SI[suffix]
    elif exp:
        scale = Fraction(10) ** int(exp.group(1))
    else:
        raise ValueError("unable to parse quantity's suffix")
    # Go reads missing digits as 0: "-", "." and "Mi" are zero (quantity.go Zeroes/Num),
    # which then fails "must be positive".
    digits = number.lstrip("+-")
    sign = -1 if number.startswith("-") else 1
    whole, _, frac = digits.partition(".")
    value = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    return sign * value * scale, suffix


def _canonical(value: Fraction, suffix: str, written: str) -> str:
    """``Quantity.String()`` for the values the "must be positive" message prints."""
    if value == 0:
        return "0"
    if suffix in _BINARY and value.denominator == 1:
        n, power = int(value), 0
        while power < 6 and n % 1024 == 0:
            n, power = n // 1024, power + 1
        return f"{n}{next((s for s, p in _BINARY.items() if p == power), '')}"
    return written  # DERIVED: other canonical forms are not reproduced; shown as written


def threshold_errors(statements: Mapping[str, str], version: Version) -> tuple[str, ...]:
    """The kubelet's error for each refused statement of an evictionHard map, in order.

    The kubelet stops at the first one it meets (Go map order is random); this lists all.
    """
    errors = (threshold_error(signal, value, version) for signal, value in statements.items())
    return tuple(e for e in errors if e is not None)


def threshold_error(signal: str, value: str, version: Version) -> str | None:
    """The kubelet's error for the threshold ``signal: value``; None when it is accepted."""
    if signal not in eviction_signals(version):
        return f"unsupported eviction signal {signal}"
    if value.endswith("%"):
        if value in ("0%", "100%"):
            return None
        try:
            percent = _parse_float32(value.rstrip("%")) / 100
        except ValueError as e:
            return str(e)
        if math.isnan(percent):
            return None  # NaN passes both comparisons in Go
        if percent < 0:
            return f"eviction percentage threshold {signal} must be >= 0%: {value}"
        if percent > 1:
            return f"eviction percentage threshold {signal} must be <= 100%: {value}"
        return None
    try:
        quantity, suffix = _quantity(value)
    except ValueError as e:
        return str(e)
    if quantity <= 0:
        shown = _canonical(quantity, suffix, value)
        return f"eviction threshold {signal} must be positive: {shown}"
    return None


def eviction_startup_message(error: str) -> str:
    """What the kubelet exits with (cmd/kubelet/app/server.go ``Run``)."""
    return f"failed to run Kubelet: {error}"
