"""Profile values: sizes, rates, durations and versions as text, and every key's parser
and sanity check (shared by profile files and command-line options)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlnode.errors import InvalidValue, MlnodeError
from mlnode.units import parse_bytes, parse_go_duration
from mlnode.versions import RuntimeSpec, Version, parse_kubernetes_version, parse_runtime

__all__ = ["KEYS", "PROFILE_KEYS", "Key", "format_rate", "parse_rate", "parse_size"]


_RATE_RE = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<prefix>[kKMGT]i?)?(?P<unit>bit/s|bps|B/s)\s*$"
)
_RATE_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_rate(text: str | float) -> float:
    """``10Gbit/s``, ``10Gbps``, ``1.25GB/s``, ``800MiB/s`` or a number → bytes per second."""
    if isinstance(text, bool):
        raise InvalidValue("a rate is a number or text like 10Gbit/s, not true/false")
    if isinstance(text, int | float):
        value = float(text)
    else:
        stripped = text.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
            value = float(stripped)
        else:
            m = _RATE_RE.match(text)
            if not m:
                raise InvalidValue(
                    f"{text!r} is not a rate (examples: 10Gbit/s, 10Gbps, 1.25GB/s, 800MiB/s)"
                )
            prefix = m.group("prefix") or ""
            if prefix.endswith("i"):
                scale = 1024.0 ** ("KMGT".index(prefix[0].upper()) + 1)
            else:
                scale = _RATE_PREFIX[prefix]
            value = float(m.group("num")) * scale
            if m.group("unit") != "B/s":
                value /= 8
    if not math.isfinite(value) or value <= 0:
        raise InvalidValue(f"{text!r}: a rate must be greater than 0")
    return value


def format_rate(bytes_per_second: float) -> str:
    """Bits per second with a decimal prefix (links are sold that way): ``10 Gbit/s``."""
    bits = bytes_per_second * 8
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits >= scale:
            return f"{bits / scale:.3g} {prefix}bit/s"
    return f"{bits:.3g} bit/s"


def parse_size(value: str | int) -> int:
    """A size as text (``15GiB``) or a byte count → bytes (``ValueError`` when not a size)."""
    if isinstance(value, bool):
        raise InvalidValue("a size is a number or text like 15GiB, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidValue(f"{value!r} is not a whole number of bytes")
        return int(value)
    text = str(value).strip()
    if text.startswith("-"):
        raise InvalidValue(f"{text!r}: a size cannot be negative")
    return parse_bytes(text)


def _parse_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValue(f"{value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise InvalidValue(f"{value!r} is not a whole number") from None


def _parse_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue(f"{value!r} is not a number")
    text = str(value).strip().removesuffix("%")
    try:
        out = float(text)
    except ValueError:
        raise InvalidValue(f"{value!r} is not a number") from None
    if not math.isfinite(out):
        raise InvalidValue(f"{value!r} is not a finite number")
    return out


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidValue(f"{value!r} is not true or false")


def _parse_seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidValue(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    return parse_go_duration(str(value))


def _parse_k8s(value: Any) -> Version:
    if isinstance(value, float):
        raise InvalidValue(
            f'{value!r} was read as a number; quote the version ("1.30"), '
            "since YAML reads 1.30 as 1.3"
        )
    try:
        return parse_kubernetes_version(str(value), option="kubernetes_version")
    except MlnodeError as e:
        raise InvalidValue(str(e).removeprefix("kubernetes_version: ")) from e


def _parse_runtime(value: Any) -> RuntimeSpec:
    try:
        return parse_runtime(str(value), option="runtime")
    except MlnodeError as e:
        raise InvalidValue(str(e).removeprefix("runtime: ")) from e


@dataclass(frozen=True)
class Key:
    name: str  # the friendly key in a profile file
    field: str  # the ProfileInput field (also accepted as a key)
    parse: Callable[[Any], Any]  # text or number → value; ValueError when it is not one
    check: Callable[[Any], str | None]  # value → what is impossible about it, or None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _not_negative(v: float) -> str | None:
    return None if v >= 0 else "cannot be negative"


def _at_least_one(v: int) -> str | None:
    return None if v >= 1 else "must be at least 1"


def _percent(v: float) -> str | None:
    return None if 0 <= v < 100 else "must be a percent from 0 up to (not including) 100"


def _ratio(v: float) -> str | None:
    return None if 0.5 <= v <= 20 else "must be between 0.5 and 20 (unpacked ÷ compressed)"


def _any(_v: Any) -> str | None:
    return None


KEYS: tuple[Key, ...] = (
    Key("image_disk", "image_disk_capacity_bytes", parse_size, _positive),
    Key("largest_image", "largest_image_bytes", parse_size, _positive),
    Key(
        "largest_image_unpacked",
        "largest_image_unpacked_bytes",
        parse_size,
        _positive,
    ),
    Key("unpack_ratio", "unpack_ratio", _parse_float, _ratio),
    Key("largest_layer", "largest_layer_bytes", parse_size, _positive),
    Key("bandwidth", "link_bandwidth_bytes_per_second", parse_rate, _positive),
    Key("concurrent_pulls", "concurrent_pulls", _parse_int, _at_least_one),
    Key(
        "growth_per_hour",
        "other_writers_growth_bytes_per_hour",
        parse_size,
        _not_negative,
    ),
    Key("other_data", "other_data_bytes", parse_size, _not_negative),
    Key("shared_with_os", "shared_with_os", _parse_bool, _any),
    Key(
        "imagefs_eviction_percent",
        "imagefs_eviction_percent",
        _parse_float,
        _percent,
    ),
    Key("unpack_rate", "unpack_bytes_per_second", parse_rate, _positive),
    Key("registry_stall", "registry_stall_seconds", _parse_seconds, _not_negative),
    Key("discard_unpacked_layers", "discard_unpacked_layers", _parse_bool, _any),
    Key("kubernetes_version", "kubernetes_version", _parse_k8s, _any),
    Key("runtime", "runtime", _parse_runtime, _any),
)

# Every key a profile file may hold: friendly keys and NodeProfile field names.
PROFILE_KEYS: tuple[str, ...] = tuple(
    sorted({k.name for k in KEYS} | {k.field for k in KEYS} | {"unpack_ratio"})
)
