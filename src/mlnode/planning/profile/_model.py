"""The profile's model: a resolved NodeProfile, partial inputs, the ML defaults, and how
layers of inputs (highest priority first) resolve into one profile."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnode.errors import UsageError
from mlnode.units import format_bytes
from mlnode.versions import RuntimeSpec, Version

__all__ = ["ML_DEFAULTS", "MlDefault", "NodeProfile", "ProfileInput", "resolve_profile"]

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
