"""Turning a value as written (flag text or decoded YAML) into a setting's typed value.

Flags follow pflag's parsing (``strconv.ParseBool``, ``ParseInt``, Go durations,
``mapStringString`` with ``<`` for eviction signals); config fields follow the kubelet's
JSON decoding of the v1beta1 types (int32 fields must be numbers, durations strings).
Errors are ValueError with a message ready to sit behind "file:line: ".
"""

from __future__ import annotations

import re
import struct
from typing import Any

from mlnode.errors import InvalidValue
from mlnode.knowledge.table import KubeletSetting, ValueKind
from mlnode.units import parse_go_duration

__all__ = [
    "EVICTION_SIGNALS",
    "check_eviction_thresholds",
    "parse_field_value",
    "parse_flag_value",
    "parse_signal_map",
    "split_signal_map",
]

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _go_int(text: str) -> int:
    t = text.strip()
    if not t or not (t.lstrip("+-").isdigit()):
        raise InvalidValue(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(t)


def parse_flag_value(row: KubeletSetting, text: str | None) -> Any:
    """The typed value of ``--flag=text`` (``text`` None for a bare flag)."""
    flag = f"--{row.flag}"
    if row.kind is ValueKind.BOOL:
        if text is None:
            return True
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidValue(f'invalid argument "{text}" for "{flag}": invalid boolean')
    if text is None:
        raise InvalidValue(f"flag needs an argument: {flag}")
    try:
        if row.kind in (ValueKind.PERCENT, ValueKind.INT):
            return _go_int(text)
        if row.kind is ValueKind.DURATION:
            return parse_go_duration(text)
        if row.kind is ValueKind.SIGNAL_MAP:
            thresholds = split_signal_map(text)
    except ValueError as e:
        raise InvalidValue(f'invalid argument "{text}" for "{flag}" flag: {e}') from None
    if row.kind is ValueKind.SIGNAL_MAP:
        try:
            check_eviction_thresholds(thresholds)
        except InvalidValue as e:
            raise InvalidValue(f"{flag}: {e}") from None
        return thresholds
    raise AssertionError(row.kind)


#: The eviction signals the kubelet knows (pkg/kubelet/eviction/helpers.go, signalToResource
#: at kubernetes/kubernetes master): any other name makes it exit with "unsupported eviction
#: signal". containerfs.* came with the split image filesystem (KEP-4191); the set is not
#: narrowed per version here.
EVICTION_SIGNALS = frozenset(
    {
        "memory.available",
        "allocatableMemory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
        "imagefs.inodesFree",
        "containerfs.available",
        "containerfs.inodesFree",
        "pid.available",
    }
)

# resource.ParseQuantity (k8s.io/apimachinery/pkg/api/resource/quantity.go,
# parseQuantityString): a sign, digits, an optional fraction, then suffix characters from
# [eEinumkKMGTP] and an optional signed exponent; anything else is the format error, a
# suffix made of those characters that means nothing is the suffix error.
_QUANTITY = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_QUANTITY_SUFFIXES = frozenset({"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"} | set("numkMGTPE"))
_EXPONENT_SUFFIX = re.compile(r"[eE][+-]?[0-9]+")
_QUANTITY_FORMAT = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
# strconv.ParseFloat's decimal syntax (hex floats left out: no one writes 0x1p4%).
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT32_MAX = 3.4028234663852886e38


def _float32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


def split_signal_map(text: str) -> dict[str, str]:
    """``--eviction-hard`` as pflag reads it (component-base's
    LangleSeparatedMapStringString): comma-separated ``SIGNAL<VALUE`` pairs, spaces
    trimmed, a later signal replacing an earlier one."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part:
            continue
        signal, sep, value = part.partition("<")
        if not sep:
            raise InvalidValue(f"malformed pair {part!r}, expect string<string")
        out[signal.strip()] = value.strip()
    return out


def _check_percentage(signal: str, value: str) -> None:
    number = value.rstrip("%")
    if number.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise InvalidValue(f"eviction threshold {signal} must be a percentage, got {value}")
    if not _GO_FLOAT.fullmatch(number):
        raise InvalidValue(
            f'{signal}<{value}: strconv.ParseFloat: parsing "{number}": invalid syntax'
        )
    parsed = float(number)
    if abs(parsed) > _FLOAT32_MAX:
        raise InvalidValue(
            f'{signal}<{value}: strconv.ParseFloat: parsing "{number}": value out of range'
        )
    fraction = _float32(_float32(parsed) / 100)
    if fraction < 0:
        raise InvalidValue(f"eviction percentage threshold {signal} must be >= 0%: {value}")
    if fraction > 1:
        raise InvalidValue(f"eviction percentage threshold {signal} must be <= 100%: {value}")


def _check_quantity(signal: str, value: str) -> None:
    m = _QUANTITY.fullmatch(value)
    if not value or m is None:
        raise InvalidValue(f"{signal}<{value}: {_QUANTITY_FORMAT}")
    sign, whole, fraction, suffix = m.groups()
    if suffix not in _QUANTITY_SUFFIXES and not _EXPONENT_SUFFIX.fullmatch(suffix):
        raise InvalidValue(f"{signal}<{value}: unable to parse quantity's suffix")
    if sign == "-" or not (whole + (fraction or "")).strip("0"):
        raise InvalidValue(f"eviction threshold {signal} must be positive: {value}")


def check_eviction_thresholds(thresholds: dict[str, str]) -> None:
    """The kubelet's own checks of evictionHard (``parseThresholdStatement``), which make
    it exit at start: a known signal; a percentage between 0% and 100% (exactly "0%" and
    "100%" are ignored); otherwise a quantity that parses and is more than zero.

    mlnode also refuses ``nan%``, which the kubelet takes as a threshold that never fires.
    """
    for signal, value in thresholds.items():
        if signal not in EVICTION_SIGNALS:
            raise InvalidValue(f"unsupported eviction signal {signal or repr(signal)}")
        if value.endswith("%"):
            if value not in ("0%", "100%"):
                _check_percentage(signal, value)
        else:
            _check_quantity(signal, value)


def parse_signal_map(text: str) -> dict[str, str]:
    """``SIGNAL<VALUE,...`` split like the kubelet's flag and checked like its eviction
    manager (:func:`check_eviction_thresholds`)."""
    thresholds = split_signal_map(text)
    check_eviction_thresholds(thresholds)
    return thresholds


def parse_field_value(row: KubeletSetting, value: Any) -> Any:
    """The typed value of a KubeletConfiguration field as decoded from YAML."""
    name = row.field
    if row.kind is ValueKind.BOOL:
        if isinstance(value, bool):
            return value
        raise InvalidValue(f"{name}: expected true or false, got {value!r}")
    if row.kind in (ValueKind.PERCENT, ValueKind.INT):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"{name}: expected a whole number, got {value!r}")
        return value
    if row.kind is ValueKind.DURATION:
        if not isinstance(value, str):
            raise InvalidValue(f'{name}: expected a duration string such as "2m0s", got {value!r}')
        try:
            return parse_go_duration(value)
        except ValueError as e:
            raise InvalidValue(f"{name}: {e}") from None
    if row.kind is ValueKind.SIGNAL_MAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidValue(
                f"{name}: expected a mapping of signal to quantity strings "
                f'(imagefs.available: "15%"), got {value!r}'
            )
        thresholds = {str(k): v for k, v in value.items()}
        try:
            check_eviction_thresholds(thresholds)
        except InvalidValue as e:
            raise InvalidValue(f"{name}: {e}") from None
        return thresholds
    raise AssertionError(row.kind)
