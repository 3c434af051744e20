"""Which kubelet flags must leave a node's files once settings are placed: the one rule.

``mlnode render`` (:func:`mlnode.formats.render.flag_removals`, for ``--merge``) and
``mlnode apply`` (:mod:`mlnode.ops.apply`, for EnvironmentFiles and the ExecStart= warning)
both ask :func:`kubelet_flag_removals`. A flag goes, with the first reason that holds:

1. ``REMOVED``: the kubelet of the placement's version no longer has it, so it would not
   start;
2. ``SHADOWS_CONFIG``: its setting is placed in the KubeletConfiguration, and a flag
   silently overrides the file;
3. ``RUNTIME_HOME``: its setting is placed in the runtime's config;
4. ``NO_EFFECT``: the pull-progress deadline flag with any runtime but Docker (the kubelet
   only ever passed it to dockershim).

The two commands differ only in the :class:`RemovalScope` they pass, and on purpose:

* ``apply`` (:data:`APPLY_REMOVALS`) edits a live node's files and then restarts the
  kubelet, so every flag that kubelet no longer has must go, image setting or not
  (``--container-runtime`` from 1.27): leaving one would stop the restarted kubelet. It
  changes nothing else it does not have to: a flag whose setting now lives in the
  runtime's config, or that merely has no effect, still starts the kubelet, so it stays
  (the pull-deadline flag is acted on only once 1.24 removed it).
* ``render`` (:data:`RENDER_REMOVALS`) writes the files' new content for the image
  settings it places: it takes out every image-setting flag that no longer belongs there
  (including runtime-homed and no-effect ones), and leaves flags that are not image
  settings to their owner.

Pure: values in, values out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from mlnode.knowledge.placement import Placement
from mlnode.knowledge.table import KUBELET_SETTINGS, REMOVED_FLAGS, RemovedFlag
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "APPLY_REMOVALS",
    "RENDER_REMOVALS",
    "FlagRemovalReason",
    "RemovalScope",
    "kubelet_flag_removals",
    "removed_flags",
    "shadowing_flags",
]


class FlagRemovalReason(enum.StrEnum):
    #: The kubelet of this version no longer has the flag: it would not start.
    REMOVED = "removed"
    #: The setting is placed in the KubeletConfiguration: the flag would override it.
    SHADOWS_CONFIG = "shadows-config"
    #: The setting is placed in the runtime's config: the kubelet flag is not its home.
    RUNTIME_HOME = "runtime-home"
    #: The pull-progress deadline flag does nothing with a CRI runtime.
    NO_EFFECT = "no-effect"


@dataclass(frozen=True)
class RemovalScope:
    """Where the commands legitimately differ (the module docstring says why)."""

    #: REMOVED covers every flag the kubelet dropped, not only image settings' flags.
    every_removed_flag: bool
    #: RUNTIME_HOME applies: flags whose setting is placed in the runtime's config go.
    runtime_homed: bool
    #: NO_EFFECT applies: the pull-progress deadline flag goes with CRI runtimes.
    no_effect: bool


#: ``mlnode apply``: whatever would stop the restarted kubelet, or shadow a written field.
APPLY_REMOVALS = RemovalScope(every_removed_flag=True, runtime_homed=False, no_effect=False)
#: ``mlnode render``: every image-setting flag that no longer belongs in the kubelet's args.
RENDER_REMOVALS = RemovalScope(every_removed_flag=False, runtime_homed=True, no_effect=True)

_DEADLINE_KEY = "image_pull_progress_deadline_seconds"


def removed_flags(version: Version) -> dict[str, RemovedFlag]:
    """The flags (names without ``--``) the kubelet of ``version`` no longer has."""
    return {r.flag: r for r in REMOVED_FLAGS if version.at_least(r.removed_in)}


def shadowing_flags(placement: Placement) -> frozenset[str]:
    """Flags that would override a field the placement sets (flags beat the config file)."""
    return frozenset(
        row.flag
        for row in KUBELET_SETTINGS
        if row.flag is not None and row.field is not None and row.field in placement.kubelet_fields
    )


def kubelet_flag_removals(
    placement: Placement, scope: RemovalScope, *, keep: Collection[str] = ()
) -> dict[str, FlagRemovalReason]:
    """The kubelet flags (names without ``--``) to take out, each with the first reason
    that holds; flags in ``keep`` (the ones the caller itself sets) never go."""
    gone = removed_flags(placement.kubernetes_version)
    shadowing = shadowing_flags(placement)
    runtime_keys = {pv.row.key for pv in placement.runtime_values}
    out: dict[str, FlagRemovalReason] = {}
    if scope.every_removed_flag:
        out.update(dict.fromkeys(gone, FlagRemovalReason.REMOVED))
    for row in KUBELET_SETTINGS:
        if row.flag is None or row.flag in out:
            continue
        if row.flag in gone:
            out[row.flag] = FlagRemovalReason.REMOVED
        elif row.flag in shadowing:
            out[row.flag] = FlagRemovalReason.SHADOWS_CONFIG
        elif scope.runtime_homed and row.key in runtime_keys:
            out[row.flag] = FlagRemovalReason.RUNTIME_HOME
        elif (
            scope.no_effect
            and row.key == _DEADLINE_KEY
            and placement.runtime.kind is not RuntimeKind.DOCKER
        ):
            out[row.flag] = FlagRemovalReason.NO_EFFECT
    return {name: why for name, why in out.items() if name not in keep}
