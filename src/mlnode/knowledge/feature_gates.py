"""Which feature gates each kubelet version registers, from ``data/feature_gates.json``.

The kubelet exits when ``--feature-gates`` or ``featureGates`` names a gate it does not
register, or sets a gate locked to its default to the other value (k8s.io/component-base
``featuregate/feature_gate.go`` ``Set`` / ``SetFromMap``). The file is data read from the
kubelet's vendored sources per release (its ``_source`` says which); a version missing from
it is one we have not read. For those, a few gates (the image-related ones) are known from
kubernetes/website's feature-gate pages (the file's ``website`` part); any other gate is
not checked, and callers must say so rather than guess.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mlnode.versions import Version

__all__ = [
    "GateSpec",
    "GateVerdict",
    "check_feature_gate",
    "feature_gate_error",
    "known_feature_gates",
]


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


@dataclass(frozen=True)
class GateVerdict:
    """What kubelet ``version`` does with one gate setting."""

    checked: bool  # False: mlnode has no record of this gate in this version
    error: str | None = None  # the kubelet's error; None when it accepts the setting


_ALWAYS = frozenset({"AllAlpha", "AllBeta"})  # component-base featuregate, every version


def _unknown(name: str) -> GateVerdict:
    return GateVerdict(True, f"unrecognized feature gate: {name}")


def _locked(name: str, enabled: bool, default: bool) -> GateVerdict:
    value, lock = ("true" if enabled else "false"), ("true" if default else "false")
    return GateVerdict(
        True, f"cannot set feature gate {name} to {value}, feature is locked to {lock}"
    )


def _from_website(name: str, enabled: bool, version: Version) -> GateVerdict:
    """A version without a vendored list: the website's stages for the gates it has."""
    page = _data().get("website", {}).get("gates", {}).get(name)
    if page is None:
        return GateVerdict(name in _ALWAYS)
    key = version.minor_line
    stages = page["stages"]
    if key < Version.parse(stages[0]["from"]).minor_line:
        return _unknown(name)
    for stage in stages:
        to = stage["to"]
        if Version.parse(stage["from"]).minor_line <= key and (
            to is None or key <= Version.parse(to).minor_line
        ):
            if stage["locked"] is True and enabled != stage["default"]:
                return _locked(name, enabled, stage["default"])
            return GateVerdict(True)
    return GateVerdict(False)  # after the last stage: removed, or the page is behind


def check_feature_gate(name: str, enabled: bool, version: Version) -> GateVerdict:
    """Whether kubelet ``version`` accepts ``name=enabled`` in its feature gates."""
    gates = known_feature_gates(version)
    if gates is None:
        return _from_website(name, enabled, version)
    spec = gates.get(name)
    if spec is None:
        return _unknown(name)
    if spec.locked and enabled != spec.default:
        return _locked(name, enabled, spec.default)
    if spec.stage == "PreAlpha" and enabled:
        return GateVerdict(
            True,
            f"cannot set feature gate {name} to true, feature is PreAlpha at emulated "
            f"version {version.major}.{version.minor}",
        )
    return GateVerdict(True)


def feature_gate_error(name: str, enabled: bool, version: Version) -> str | None:
    """The kubelet's error for setting gate ``name`` to ``enabled``; None when it accepts it
    or when mlnode cannot tell (see :func:`check_feature_gate`)."""
    return check_feature_gate(name, enabled, version).error
