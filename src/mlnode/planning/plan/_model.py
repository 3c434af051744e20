"""The plan's values: its numbers, the arithmetic behind each setting, and where each goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement
from mlnode.planning.profile import NodeProfile

__all__ = ["PLAN_SCHEMA", "Home", "Justification", "Plan", "PlanNumbers", "Step"]

PLAN_SCHEMA = "mlnode.plan/v1"


@dataclass(frozen=True)
class Justification:
    """One line of arithmetic behind one value: "headroom = ... = 20% ≥ ... = 155 GiB"."""

    setting: str  # an ImageSettings key, or a derived quantity ("headroom", "need")
    value: str  # as the operator will see it written ("76", "12m0s", "unset")
    formula: str
    numbers: str

    def __str__(self) -> str:
        return f"{self.setting} = {self.value}: {self.formula}; {self.numbers}"


@dataclass(frozen=True)
class Home:
    """Where one setting goes for the profile's versions."""

    setting: str
    target: str  # "kubelet config", "kubelet flag", "feature gate", "containerd", "refused"
    name: str  # field, flag, gate, TOML key path; "" for refusals
    value: Any  # as written in the file; the reason for refusals
    file: str  # the file (or place) it is written to


@dataclass(frozen=True)
class PlanNumbers:
    """The intermediate quantities, in bytes, seconds and percent."""

    peak_footprint_bytes: int
    resident_footprint_bytes: int
    effective_concurrent_pulls: int
    pull_seconds: float
    download_seconds: float
    unpack_seconds: float
    images_per_pull_slot_per_period: float
    growth_per_period_bytes: int
    need_bytes: int
    need_percent: float
    gap_percent: int
    unremovable_bytes: int
    unremovable_percent: int


@dataclass(frozen=True)
class Plan:
    profile: NodeProfile
    settings: ImageSettings
    feasible: bool
    reason: str | None
    numbers: PlanNumbers
    justifications: tuple[Justification, ...]
    placement: Placement | None
    homes: tuple[Home, ...]
    files: tuple[str, ...]
    warnings: tuple[str, ...]
    minimum_capacity_bytes: int | None = None  # set when infeasible and some disk would do


@dataclass(frozen=True)
class Step:
    """What one part of the plan decides: settings, their arithmetic, and warnings.

    :func:`~mlnode.planning.plan.make_plan` runs the parts in order and concatenates them,
    so the justifications and warnings keep the order the operator reads them in.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    justifications: tuple[Justification, ...] = ()
    warnings: tuple[str, ...] = ()
