"""What a node is, as far as image settings care: its image disk, its images, its link.

A :class:`NodeProfile` is assembled from layers, highest priority first: command-line
options, a profile file (:func:`load_profile`), local inspection
(:mod:`mlnode.planning.inspect`), and finally :data:`ML_DEFAULTS`. Every value remembers
where it came from (``NodeProfile.sources``) so a plan can say "15 GiB (ML default)".

Profile file keys (YAML or JSON; every key optional; sizes and rates as below)::

    image_disk: 1.75TiB              # capacity of the filesystem holding the runtime's images
    largest_image: 15GiB             # compressed (what the registry sends, what CRI reports)
    largest_image_unpacked: 30GiB    # on disk after unpacking; or instead:
    unpack_ratio: 2.0                #   unpacked = ratio × compressed
    largest_layer: 12GiB             # compressed
    bandwidth: 10Gbit/s              # registry → node, for this node alone
    concurrent_pulls: 2              # large pulls the node may run at once
    growth_per_hour: 10GiB           # other writers on the image disk (logs, datasets, ...)
    other_data: 30GiB                # data on the image disk that image GC cannot free
    shared_with_os: true             # the image disk is the root filesystem
    imagefs_eviction_percent: 15     # the node's evictionHard imagefs.available, in percent
    unpack_rate: 150MB/s             # unpacked bytes written per second while unpacking
    registry_stall: 60s              # longest silence expected from the registry
    discard_unpacked_layers: false   # containerd's CRI option of that name
    kubernetes_version: "1.30"       # quote it: YAML reads 1.30 as the number 1.3
    runtime: containerd@1.7.13       # containerd@X.Y.Z, crio@X.Y.Z, cri-dockerd@X.Y.Z, docker

Each key may also be spelt as its NodeProfile field name (``largest_image_bytes``, ...);
then a size or rate may be a plain number in the field's unit.

Sizes: ``15GiB``, ``15Gi``, ``16GB``, ``500MB`` or a byte count (:func:`mlnode.units.parse_bytes`;
``G``/``GB`` are powers of 1000, ``Gi``/``GiB`` powers of 1024).

Rates (:func:`parse_rate`): a number, an optional SI or binary prefix, then a unit that says
bits or bytes — ``bit/s`` or ``bps`` for bits, ``B/s`` for bytes: ``10Gbit/s``, ``10Gbps``,
``1.25GB/s``, ``800MiB/s``, ``125000000`` (bytes per second). Prefixes are decimal
(``k``/``K``=10³, ``M``=10⁶, ``G``=10⁹, ``T``=10¹²) unless followed by ``i`` (``Mi``=2²⁰).
The case of ``b``/``B`` matters: ``Gb/s`` is refused because it is ambiguous in practice.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import MlnodeError, UsageError
from mlnode.planning._documents import Document, load_document
from mlnode.units import format_bytes, parse_bytes, parse_go_duration
from mlnode.versions import RuntimeSpec, Version, parse_kubernetes_version, parse_runtime

__all__ = [
    "ML_DEFAULTS",
    "PROFILE_KEYS",
    "MlDefault",
    "NodeProfile",
    "ProfileInput",
    "format_rate",
    "load_profile",
    "option_input",
    "parse_rate",
    "parse_size",
    "resolve_profile",
]

GiB = 1024**3


@dataclass(frozen=True)
class NodeProfile:
    """One node (or a pool of identical nodes), everything the planner needs, all resolved.

    Sizes are bytes, rates bytes per second, durations seconds. ``sources`` maps each field
    name to where its value came from ("option --image-disk", "profile p.yaml:3",
    "inspection: statvfs /var/lib/containerd", "ML default: ...").
    """

    image_disk_capacity_bytes: int
    largest_image_bytes: int  # compressed, as the registry sends it and CRI reports it
    largest_image_unpacked_bytes: int  # the snapshot (unpacked files) of that image
    largest_layer_bytes: int  # compressed
    link_bandwidth_bytes_per_second: float
    concurrent_pulls: int
    # Writes by everything else on the image filesystem (logs, datasets, checkpoints,
    # container writable layers), per hour. The plan uses the part that lands in one
    # image-GC period (5 min).
    other_writers_growth_bytes_per_hour: int
    # Data on the image filesystem that image GC can never free (OS, logs, datasets).
    other_data_bytes: int
    shared_with_os: bool
    imagefs_eviction_percent: float  # the node's evictionHard imagefs.available, as a percent
    unpack_bytes_per_second: float  # unpacked bytes written per second while unpacking
    registry_stall_seconds: float  # longest silence expected from the registry mid-pull
    discard_unpacked_layers: bool  # containerd: drop the compressed blobs after unpacking
    kubernetes_version: Version | None = None
    runtime: RuntimeSpec | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def unpack_ratio(self) -> float:
        return self.largest_image_unpacked_bytes / self.largest_image_bytes

    def to_json(self) -> dict[str, Any]:
        """Field name → value in the field's unit; versions as strings."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Version | RuntimeSpec):
                value = str(value)
            out[f.name] = value
        return out


# Fields that ProfileInput carries besides NodeProfile's own: a ratio, resolved late.
_EXTRA_INPUTS = ("unpack_ratio",)


@dataclass(frozen=True)
class ProfileInput:
    """A partial profile from one source; None = this source does not say."""

    image_disk_capacity_bytes: int | None = None
    largest_image_bytes: int | None = None
    largest_image_unpacked_bytes: int | None = None
    unpack_ratio: float | None = None
    largest_layer_bytes: int | None = None
    link_bandwidth_bytes_per_second: float | None = None
    concurrent_pulls: int | None = None
    other_writers_growth_bytes_per_hour: int | None = None
    other_data_bytes: int | None = None
    shared_with_os: bool | None = None
    imagefs_eviction_percent: float | None = None
    unpack_bytes_per_second: float | None = None
    registry_stall_seconds: float | None = None
    discard_unpacked_layers: bool | None = None
    kubernetes_version: Version | None = None
    runtime: RuntimeSpec | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "sources" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class MlDefault:
    """A value the planner assumes when no source gives one, and why."""

    key: str  # a NodeProfile field, or "unpack_ratio"
    value: Any
    shown: str
    reason: str


ML_DEFAULTS: tuple[MlDefault, ...] = (
    MlDefault(
        "largest_image_bytes",
        15 * GiB,
        "15 GiB",
        "the images mlnode is for are 10–15 GB compressed (CUDA + framework + weights); "
        "plan for the top of the range",
    ),
    MlDefault(
        "unpack_ratio",
        2.0,
        "×2.0",
        "gzip shrinks CUDA/cuDNN libraries and Python wheels about 2–3×, model weights "
        "barely (≈1.1×); ML images mix both. Measure yours: layer sizes in the manifest vs "
        "du of the unpacked snapshot",
    ),
    MlDefault(
        "largest_layer_bytes",
        None,  # = largest_image_bytes
        "= largest image",
        "ML images often carry one giant layer (a pip install of torch + CUDA, or weights); "
        "assume the worst case, one layer holding the whole image",
    ),
    MlDefault(
        "link_bandwidth_bytes_per_second",
        1e9 / 8,
        "1 Gbit/s",
        "the smallest common datacenter link; a node's share of a busy registry is often "
        "below its NIC speed",
    ),
    MlDefault(
        "concurrent_pulls",
        2,
        "2",
        "a training pod plus the next job or a sidecar; 1 (the kubelet's serial default) "
        "makes every small pull wait behind a 15 GB one",
    ),
    MlDefault(
        "other_writers_growth_bytes_per_hour",
        10 * GiB,
        "10 GiB/h",
        "container logs, checkpoints and dataset caches on the same disk; ≈3 MB/s sustained",
    ),
    MlDefault(
        "other_data_bytes",
        None,  # 30 GiB when shared_with_os, else 0
        "30 GiB if shared with the OS, else 0",
        "the OS, /var/log and the kubelet's pod directories on a shared root disk; "
        "a dedicated image disk holds images only",
    ),
    MlDefault(
        "shared_with_os",
        True,
        "true",
        "when unknown, assume the image store sits on the root filesystem (the common "
        "default install), which is the less forgiving case",
    ),
    MlDefault(
        "imagefs_eviction_percent",
        15.0,
        "15%",
        "the kubelet's default evictionHard imagefs.available<15%",
    ),
    MlDefault(
        "unpack_bytes_per_second",
        150e6,
        "150 MB/s",
        "measured ≈180 MB/s (2 GiB unpacked in ≈12 s, containerd 1.6, 2 cores, disk "
        "≈250 MB/s; runtime-testbed.md), rounded down: decompression is single-threaded",
    ),
    MlDefault(
        "registry_stall_seconds",
        60.0,
        "60 s",
        "assumed, not measured: token refresh, redirect to object storage, a busy registry "
        "or a pull-through cache answering late can go quiet for tens of seconds",
    ),
    MlDefault(
        "discard_unpacked_layers",
        False,
        "false",
        "containerd's default: the content store keeps the compressed blobs after unpacking",
    ),
)

_ML_DEFAULT = {d.key: d for d in ML_DEFAULTS}
_SHARED_OTHER_DATA = 30 * GiB

# ---------------------------------------------------------------------------------------
# Values


_RATE_RE = re.compile(
    r"^\s*(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<prefix>[kKMGT]i?)?(?P<unit>bit/s|bps|B/s)\s*$"
)
_RATE_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_rate(text: str | float) -> float:
    """``10Gbit/s``, ``10Gbps``, ``1.25GB/s``, ``800MiB/s`` or a number → bytes per second."""
    if isinstance(text, bool):
        raise ValueError("a rate is a number or text like 10Gbit/s, not true/false")
    if isinstance(text, int | float):
        value = float(text)
    else:
        stripped = text.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
            value = float(stripped)
        else:
            m = _RATE_RE.match(text)
            if not m:
                raise ValueError(
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
        raise ValueError(f"{text!r}: a rate must be greater than 0")
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
        raise ValueError("a size is a number or text like 15GiB, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number of bytes")
        return int(value)
    text = str(value).strip()
    if text.startswith("-"):
        raise ValueError(f"{text!r}: a size cannot be negative")
    return parse_bytes(text)


def _parse_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _parse_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number")
    text = str(value).strip().removesuffix("%")
    try:
        out = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite number")
    return out


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not true or false")


def _parse_seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    return parse_go_duration(str(value))


def _parse_k8s(value: Any) -> Version:
    if isinstance(value, float):
        raise ValueError(
            f'{value!r} was read as a number; quote the version ("1.30"), '
            "since YAML reads 1.30 as 1.3"
        )
    try:
        return parse_kubernetes_version(str(value), option="kubernetes_version")
    except MlnodeError as e:
        raise ValueError(str(e).removeprefix("kubernetes_version: ")) from e


def _parse_runtime(value: Any) -> RuntimeSpec:
    try:
        return parse_runtime(str(value), option="runtime")
    except MlnodeError as e:
        raise ValueError(str(e).removeprefix("runtime: ")) from e


@dataclass(frozen=True)
class _Key:
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


_KEYS: tuple[_Key, ...] = (
    _Key("image_disk", "image_disk_capacity_bytes", parse_size, _positive),
    _Key("largest_image", "largest_image_bytes", parse_size, _positive),
    _Key(
        "largest_image_unpacked",
        "largest_image_unpacked_bytes",
        parse_size,
        _positive,
    ),
    _Key("unpack_ratio", "unpack_ratio", _parse_float, _ratio),
    _Key("largest_layer", "largest_layer_bytes", parse_size, _positive),
    _Key("bandwidth", "link_bandwidth_bytes_per_second", parse_rate, _positive),
    _Key("concurrent_pulls", "concurrent_pulls", _parse_int, _at_least_one),
    _Key(
        "growth_per_hour",
        "other_writers_growth_bytes_per_hour",
        parse_size,
        _not_negative,
    ),
    _Key("other_data", "other_data_bytes", parse_size, _not_negative),
    _Key("shared_with_os", "shared_with_os", _parse_bool, _any),
    _Key(
        "imagefs_eviction_percent",
        "imagefs_eviction_percent",
        _parse_float,
        _percent,
    ),
    _Key("unpack_rate", "unpack_bytes_per_second", parse_rate, _positive),
    _Key("registry_stall", "registry_stall_seconds", _parse_seconds, _not_negative),
    _Key("discard_unpacked_layers", "discard_unpacked_layers", _parse_bool, _any),
    _Key("kubernetes_version", "kubernetes_version", _parse_k8s, _any),
    _Key("runtime", "runtime", _parse_runtime, _any),
)

# Every key a profile file may hold: friendly keys and NodeProfile field names.
PROFILE_KEYS: tuple[str, ...] = tuple(
    sorted({k.name for k in _KEYS} | {k.field for k in _KEYS} | {"unpack_ratio"})
)


def load_profile(path: Path | str) -> ProfileInput:
    """Read a profile file (YAML, or JSON when it ends in ``.json``).

    Raises InputError naming ``file:line`` and the key for unknown keys, values that do not
    parse, impossible values (capacity 0, negative sizes, ``concurrent_pulls`` < 1, a
    largest image bigger than the disk, a layer bigger than its image) and keys given twice
    under both spellings.
    """
    doc = load_document(path, what="profile")
    by_name = {k.name: k for k in _KEYS}
    by_field = {k.field: k for k in _KEYS}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    seen_as: dict[str, str] = {}
    for raw_key, raw in doc.data.items():
        key = by_name.get(raw_key) or by_field.get(raw_key)
        if key is None:
            known = ", ".join(k.name for k in _KEYS)
            raise doc.error(f"unknown key {raw_key!r} (known keys: {known})", raw_key)
        if key.field in seen_as:
            raise doc.error(
                f"{raw_key!r} repeats {seen_as[key.field]!r} (the same value spelt two ways)",
                raw_key,
            )
        seen_as[key.field] = raw_key
        if raw is None:
            raise doc.error(f"{raw_key}: no value", raw_key)
        try:
            value = key.parse(raw)
        except ValueError as e:
            raise doc.error(f"{raw_key}: {e}", raw_key) from e
        problem = key.check(value)
        if problem:
            raise doc.error(f"{raw_key}: {raw!r} {problem}", raw_key)
        values[key.field] = value
        line = doc.line(raw_key)
        sources[key.field] = f"profile {doc.path}" + (f":{line}" if line else "")

    _cross_check_file(doc, values, seen_as)
    return ProfileInput(**values, sources=sources)


def _cross_check_file(doc: Document, values: Mapping[str, Any], spelt: Mapping[str, str]) -> None:
    disk = values.get("image_disk_capacity_bytes")
    image = values.get("largest_image_bytes")
    layer = values.get("largest_layer_bytes")
    if disk is not None and image is not None and image > disk:
        key = spelt["largest_image_bytes"]
        raise doc.error(
            f"{key}: {format_bytes(image)} is larger than the image disk ({format_bytes(disk)})",
            key,
        )
    if image is not None and layer is not None and layer > image:
        key = spelt["largest_layer_bytes"]
        raise doc.error(
            f"{key}: {format_bytes(layer)} is larger than the largest image "
            f"({format_bytes(image)}); a layer is part of an image",
            key,
        )
    if "largest_image_unpacked_bytes" in values and "unpack_ratio" in values:
        key = spelt["unpack_ratio"]
        raise doc.error(
            f"give either {spelt['largest_image_unpacked_bytes']} or {key}, not both", key
        )


def resolve_profile(layers: Sequence[ProfileInput]) -> NodeProfile:
    """Merge partial profiles (highest priority first) and fill the rest from ML_DEFAULTS.

    Raises UsageError when the image disk capacity is known from no source, or when the
    merged values contradict each other (e.g. an option's image is bigger than the disk a
    profile file gives); the message names where each value came from.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.given().items():
            if name not in values:
                values[name] = value
                sources[name] = layer.sources.get(name, "given")

    if "image_disk_capacity_bytes" not in values:
        raise UsageError(
            "the image disk's capacity is unknown: pass --image-disk SIZE, a --profile with "
            "image_disk, or run on the node (or with --root) so it can be measured",
            option="--image-disk",
        )

    def default(name: str, value: Any, note: str | None = None) -> None:
        if name not in values:
            values[name] = value
            d = _ML_DEFAULT.get(name)
            sources[name] = (
                "ML default" + (f" ({note})" if note else "") + (f": {d.reason}" if d else "")
            )

    default("largest_image_bytes", _ML_DEFAULT["largest_image_bytes"].value)
    if "largest_image_unpacked_bytes" not in values:
        if "unpack_ratio" in values:
            ratio = float(values["unpack_ratio"])
            values["largest_image_unpacked_bytes"] = round(values["largest_image_bytes"] * ratio)
            sources["largest_image_unpacked_bytes"] = (
                f"{ratio:g} × largest image; ratio from {sources['unpack_ratio']}"
            )
        else:
            ratio = float(_ML_DEFAULT["unpack_ratio"].value)
            values["largest_image_unpacked_bytes"] = round(values["largest_image_bytes"] * ratio)
            sources["largest_image_unpacked_bytes"] = (
                f"ML default ({ratio:g} × largest image): {_ML_DEFAULT['unpack_ratio'].reason}"
            )
    values.pop("unpack_ratio", None)
    sources.pop("unpack_ratio", None)
    default("largest_layer_bytes", values["largest_image_bytes"], "= largest image")
    for name in (
        "link_bandwidth_bytes_per_second",
        "concurrent_pulls",
        "other_writers_growth_bytes_per_hour",
        "shared_with_os",
        "imagefs_eviction_percent",
        "unpack_bytes_per_second",
        "registry_stall_seconds",
        "discard_unpacked_layers",
    ):
        default(name, _ML_DEFAULT[name].value)
    if values["shared_with_os"]:
        default("other_data_bytes", _SHARED_OTHER_DATA, "30 GiB, shared with the OS")
    else:
        default("other_data_bytes", 0, "0, dedicated image disk")
    values.setdefault("kubernetes_version", None)
    values.setdefault("runtime", None)
    sources.setdefault("kubernetes_version", "unknown")
    sources.setdefault("runtime", "unknown")

    _cross_check_merged(values, sources)
    return NodeProfile(**values, sources=sources)


def _cross_check_merged(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    def where(name: str) -> str:
        source = sources.get(name, "?")
        return source.split(":", 1)[0] if source.startswith("ML default") else source

    disk = values["image_disk_capacity_bytes"]
    image = values["largest_image_bytes"]
    layer = values["largest_layer_bytes"]
    if image > disk:
        raise UsageError(
            f"the largest image, {format_bytes(image)} ({where('largest_image_bytes')}), is "
            f"larger than the image disk, {format_bytes(disk)} "
            f"({where('image_disk_capacity_bytes')})"
        )
    if layer > image:
        raise UsageError(
            f"the largest layer, {format_bytes(layer)} ({where('largest_layer_bytes')}), is "
            f"larger than the largest image, {format_bytes(image)} "
            f"({where('largest_image_bytes')})"
        )


def option_input(
    raw: Mapping[str, tuple[str, Any]],
) -> ProfileInput:
    """Build the options layer: field → (option name, text as typed). UsageError on bad text."""
    by_field = {k.field: k for k in _KEYS}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (option, text) in raw.items():
        if text is None:
            continue
        key = by_field[name]
        try:
            value = key.parse(text)
        except ValueError as e:
            raise UsageError(str(e), option=option) from e
        problem = key.check(value)
        if problem:
            raise UsageError(f"{text!r} {problem}", option=option)
        values[name] = value
        sources[name] = f"option {option}"
    return ProfileInput(**values, sources=sources)
