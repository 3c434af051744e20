"""Domain values for image settings: what an operator wants, and where a value came from."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SETTING_KEYS",
    "ImageSettings",
    "Layer",
    "Origin",
    "SettingValue",
]


@dataclass(frozen=True)
class ImageSettings:
    """The image-related settings of one node, independent of where they are written.

    Every field is optional: None means "not set here" (the kubelet or runtime default
    applies). Units are in the names; durations are seconds, as floats.
    """

    image_gc_high_threshold_percent: int | None = None
    image_gc_low_threshold_percent: int | None = None
    image_minimum_gc_age_seconds: float | None = None
    image_maximum_gc_age_seconds: float | None = None
    # The deadline for a pull that makes no progress. Its home depends on the runtime:
    # the kubelet flag (dockershim, ≤1.23), containerd's image_pull_progress_timeout,
    # CRI-O's pull_progress_timeout, cri-dockerd's own flag.
    image_pull_progress_deadline_seconds: float | None = None
    serialize_image_pulls: bool | None = None
    max_parallel_image_pulls: int | None = None
    registry_pull_qps: int | None = None
    registry_burst: int | None = None
    eviction_hard: Mapping[str, str] | None = None
    merge_default_eviction_settings: bool | None = None
    runtime_request_timeout_seconds: float | None = None
    node_status_max_images: int | None = None
    # containerd's per-pull layer download concurrency (max_concurrent_downloads).
    max_concurrent_downloads: int | None = None

    def set_fields(self) -> dict[str, Any]:
        """The settings that are set, by key, in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    def merged(self, override: ImageSettings) -> ImageSettings:
        """This value with every setting that ``override`` sets replaced by its value."""
        return dataclasses.replace(self, **override.set_fields())

    def is_empty(self) -> bool:
        return not self.set_fields()


SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageSettings))


class Layer(enum.IntEnum):
    """Where a kubelet value comes from, in the kubelet's order of precedence (low to high)."""

    DEFAULT = 0
    CONFIG_FILE = 1
    DROP_IN = 2
    FLAG = 3
    RUNTIME_CONFIG = 4  # runtime settings are not layered with the kubelet's


@dataclass(frozen=True)
class Origin:
    """A place a value was read from; ``line`` is 1-based."""

    path: str
    line: int | None = None
    detail: str = ""  # e.g. "KUBELET_EXTRA_ARGS" or "plugins.'io.containerd.cri.v1.images'"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where} ({self.detail})" if self.detail else where


@dataclass(frozen=True)
class SettingValue:
    """One value of one setting, with its provenance."""

    key: str
    value: Any
    layer: Layer
    origin: Origin | None = None  # None for a built-in default
    raw: str | None = None  # the text as written, e.g. "30m" or "80"
    overridden_by: tuple[Origin, ...] = field(default=())
