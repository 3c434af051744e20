"""Pure helpers of the agent's pass: the headroom target, a GC run's record, and the
warm ConfigMap's images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlnode.agent._config import AgentConfig, WarmImage, parse_warm_images
from mlnode.errors import InvalidValue, MlnodeError
from mlnode.ports import ImageService
from mlnode.units import format_bytes

__all__ = ["GcOutcome", "config_map_images", "headroom_target", "size_of"]


def headroom_target(
    cfg: AgentConfig, largest_image_bytes: int, capacity_bytes: int
) -> tuple[int, str]:
    """The free bytes to keep on the image filesystem, and how it was chosen."""
    h = cfg.headroom
    if h.target_bytes is not None:
        target, why = h.target_bytes, "configured"
    else:
        landing = int(largest_image_bytes * (1 + h.unpack_factor))
        target = landing * h.concurrent_pulls + h.reserve_bytes
        why = (
            f"auto: largest image {format_bytes(largest_image_bytes)} x (1 + "
            f"{h.unpack_factor:g} unpacked) x {h.concurrent_pulls} + reserve "
            f"{format_bytes(h.reserve_bytes)}"
        )
    # the kubelet acts at usage >= high: keep usage a point below it
    below = capacity_bytes * (100 - (h.kubelet_high_threshold_percent - 1)) // 100
    if below > target:
        return below, (
            f"usage kept under the kubelet's {h.kubelet_high_threshold_percent} % GC threshold; "
            f"{why} would be less"
        )
    return target, why


@dataclass(frozen=True)
class GcOutcome:
    trigger: str
    at_unix: float
    target_bytes: int
    available_before_bytes: int
    available_after_bytes: int | None
    freed_bytes: int
    removed: tuple[tuple[str, int, str], ...]  # (name, size_bytes, reason)
    satisfied: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "at_unix": round(self.at_unix, 3),
            "target_bytes": self.target_bytes,
            "available_before_bytes": self.available_before_bytes,
            "available_after_bytes": self.available_after_bytes,
            "freed_bytes": self.freed_bytes,
            "removed": [{"name": n, "size_bytes": s, "reason": r} for n, s, r in self.removed],
            "satisfied": self.satisfied,
        }


def config_map_images(data: object, where: str) -> tuple[WarmImage, ...]:
    """The ConfigMap's ``images`` key: YAML, shaped like ``warm.images``; raises
    :class:`~mlnode.errors.InvalidValue` (the last good list then stays)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not data or not isinstance(data, dict) or "images" not in data:
        return ()
    try:
        node = YAML(typ="rt").load(str(data["images"]))
    except YAMLError as e:
        raise InvalidValue(f"{where}: images: not YAML: {getattr(e, 'problem', e)}") from None
    return parse_warm_images(node, f"{where}: images")


def size_of(cri: ImageService, image: str) -> int:
    try:
        found = cri.image_status(image)
    except MlnodeError:
        return 0
    return found.size_bytes if found is not None else 0
