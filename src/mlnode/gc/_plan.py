"""Choosing a planner by name."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mlnode.gc._kubelet import plan_kubelet
from mlnode.gc._ml import plan_ml
from mlnode.gc._model import FilesystemState, GcImage, GcPlan, GcPolicy, MirrorBlob, PolicyName

__all__ = ["plan"]


def plan(
    name: PolicyName,
    images: Sequence[GcImage],
    filesystem: FilesystemState,
    policy: GcPolicy,
    *,
    now: datetime,
    mirror: Sequence[MirrorBlob] = (),
) -> GcPlan:
    """Dispatch to :func:`~mlnode.gc.plan_ml` or :func:`~mlnode.gc.plan_kubelet`.

    ``mirror`` (the node mirror's cache) goes to the ml policy only: the kubelet policy is
    exactly the kubelet's, which does not know the mirror."""
    if name is PolicyName.KUBELET:
        return plan_kubelet(images, filesystem, policy, now=now)
    return plan_ml(images, filesystem, policy, now=now, mirror=mirror)
