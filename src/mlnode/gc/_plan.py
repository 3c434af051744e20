"""Choosing a planner by name."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mlnode.gc._kubelet import plan_kubelet
from mlnode.gc._ml import plan_ml
from mlnode.gc._model import FilesystemState, GcImage, GcPlan, GcPolicy, PolicyName

__all__ = ["plan"]


def plan(
    name: PolicyName,
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
) -> GcPlan:
    """Dispatch to :func:`~mlnode.gc.plan_ml` or :func:`~mlnode.gc.plan_kubelet`."""
    planner = plan_kubelet if name is PolicyName.KUBELET else plan_ml
    return planner(images, filesystem, policy, now=now)
