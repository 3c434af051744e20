"""Turning a value as written (flag text or decoded YAML) into a setting's typed value.

Flags follow pflag's parsing (``strconv.ParseBool``, ``ParseInt``, Go durations,
``mapStringString`` with ``<`` for eviction signals); config fields follow the kubelet's
JSON decoding of the v1beta1 types (int32 fields must be numbers, durations strings).
Errors are ValueError with a message ready to sit behind "file:line: ".
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlnode.errors import InvalidValue
from mlnode.knowledge.table import KubeletSetting, ValueKind
from mlnode.units import parse_go_duration

__all__ = [
    "go_parse_int32",
    "go_quote",
    "parse_field_value",
    "parse_flag_value",
    "parse_signal_map",
]

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def go_quote(text: str) -> str:
    """Go's ``%q`` / ``strconv.Quote`` for the texts the messages show (DERIVED: control
    characters are escaped the JSON way, ``\\u0001`` where Go writes ``\\x01``)."""
    return json.dumps(text, ensure_ascii=False)


_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")


def go_parse_int32(text: str) -> int:
    """``strconv.ParseInt(text, 0, 32)`` as pflag's ``Int32Var`` calls it."""
    m = _GO_INT.fullmatch(text)
    digits = m.group(1) if m else ""
    if not m or "__" in digits or digits.endswith("_"):
        raise InvalidValue(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    body = digits.replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        value = int(body[1:], 8)
    else:
        value = int(body, 0)
    if text.startswith("-"):
        value = -value
    if not -(2**31) <= value < 2**31:
        raise InvalidValue(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


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
        raise InvalidValue(
            f'invalid argument {go_quote(text)} for "{flag}" flag: '
            f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax"
        )
    if text is None:
        raise InvalidValue(f"flag needs an argument: {flag}")
    try:
        if row.kind in (ValueKind.PERCENT, ValueKind.INT):
            return go_parse_int32(text)
        if row.kind is ValueKind.DURATION:
            return parse_go_duration(text)
        if row.kind is ValueKind.SIGNAL_MAP:
            return parse_signal_map(text)
    except ValueError as e:
        raise InvalidValue(f'invalid argument {go_quote(text)} for "{flag}" flag: {e}') from None
    raise AssertionError(row.kind)


def parse_signal_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        signal, sep, quantity = part.partition("<")
        if not sep or not signal or not quantity:
            raise InvalidValue(f"malformed pair {part!r}, expected SIGNAL<QUANTITY")
        out[signal.strip()] = quantity.strip()
    return out


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
        return {str(k): v for k, v in value.items()}
    raise AssertionError(row.kind)
