"""Which feature gates each kubelet version registers, from ``data/feature_gates.json``.

The kubelet exits when ``--feature-gates`` or ``featureGates`` names a gate it does not
register, or sets a gate locked to its default to the other value (k8s.io/component-base
``featuregate/feature_gate.go`` ``Set`` / ``SetFromMap``). The file is data read from the
kubelet's vendored sources per release (its ``_source`` says which); a version missing from
it is one we have not read, and callers must say so rather than guess.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mlnode.versions import Version

__all__ = ["GateSpec", "feature_gate_error", "known_feature_gates"]


@dataclass(frozen=True)
class GateSpec:
    """One gate as kubelet ``version`` registers it."""

    name: str
    stage: str  # Alpha | Beta | GA | Deprecated | PreAlpha
    default: bool
    locked: bool  # LockToDefault: setting the other value is refused


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("mlnode.knowledge").joinpath("data/feature_gates.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def known_feature_gates(version: Version) -> dict[str, GateSpec] | None:
    """Every gate kubelet ``version`` registers, by name; None when not on record."""
    entry = _data()["versions"].get(f"{version.major}.{version.minor}")
    if entry is None:
        return None
    return {
        name: GateSpec(name, spec["stage"], spec["default"], spec["locked"])
        for name, spec in entry["gates"].items()
    }


def feature_gate_error(name: str, enabled: bool, version: Version) -> str | None:
    """The kubelet's error for setting gate ``name`` to ``enabled``; None when it accepts it
    or when mlnode has no gate list for ``version`` (see :func:`known_feature_gates`)."""
    gates = known_feature_gates(version)
    if gates is None:
        return None
    spec = gates.get(name)
    value = "true" if enabled else "false"
    if spec is None:
        return f"unrecognized feature gate: {name}"
    if spec.locked and enabled != spec.default:
        default = "true" if spec.default else "false"
        return f"cannot set feature gate {name} to {value}, feature is locked to {default}"
    if spec.stage == "PreAlpha" and enabled:
        return (
            f"cannot set feature gate {name} to {value}, feature is PreAlpha at emulated "
            f"version {version.major}.{version.minor}"
        )
    return None
