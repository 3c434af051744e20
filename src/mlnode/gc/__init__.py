"""Image garbage-collection planning: the kubelet's algorithm, and mlnode's ML-node policy.

Everything here is pure: functions take images, the image filesystem's numbers, a policy
and the time, and return a :class:`GcPlan`. Nothing is removed; the only input read is
a ``--snapshot`` file the CLI names (:func:`load_snapshot`). The executor in
:mod:`mlnode.ops.gc_runtime` carries plans out against a runtime, and
:mod:`mlnode.ops.image_state` keeps the :class:`ImageState` file.

Two planners share one input shape and one result builder:

:func:`plan_kubelet`
    The kubelet's ``realImageGCManager.GarbageCollect`` (``pkg/kubelet/images/
    image_gc_manager.go``), reproduced step by step with Go's int64 arithmetic.

:func:`plan_ml`
    Same protections, plus a byte headroom target and a size-aware choice of which
    images to remove.

Modules: ``_model`` (values and validation), ``_goarith`` (Go integer arithmetic and
``time.Sub``), ``_common`` (eviction order, protections, the shared plan builder),
``_kubelet`` / ``_ml`` (the policies), ``_snapshot`` (the ``--snapshot`` reader),
``_state`` (first-detected / last-used records).
"""

from mlnode.gc._goarith import GO_ZERO_TIME
from mlnode.gc._kubelet import plan_kubelet
from mlnode.gc._ml import fewest_lru_cover, plan_ml
from mlnode.gc._model import (
    FilesystemState,
    GcImage,
    GcPlan,
    GcPolicy,
    InvalidCapacity,
    InvalidGcInput,
    Kept,
    MirrorBlob,
    PolicyName,
    Removal,
    plan_to_json,
)
from mlnode.gc._plan import plan
from mlnode.gc._snapshot import (
    GcSnapshot,
    SnapshotError,
    load_snapshot,
    parse_snapshot,
    parse_timestamp,
)
from mlnode.gc._state import (
    ImageRecord,
    ImageState,
    ObservedImage,
    detect,
    state_from_json,
    state_to_json,
)

__all__ = [
    "GO_ZERO_TIME",
    "FilesystemState",
    "GcImage",
    "GcPlan",
    "GcPolicy",
    "GcSnapshot",
    "ImageRecord",
    "ImageState",
    "InvalidCapacity",
    "InvalidGcInput",
    "Kept",
    "MirrorBlob",
    "ObservedImage",
    "PolicyName",
    "Removal",
    "SnapshotError",
    "detect",
    "fewest_lru_cover",
    "load_snapshot",
    "parse_snapshot",
    "parse_timestamp",
    "plan",
    "plan_kubelet",
    "plan_ml",
    "plan_to_json",
    "state_from_json",
    "state_to_json",
]
