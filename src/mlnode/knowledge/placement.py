"""Where each setting lives for a given kubelet and runtime version: pure, table-driven.

``place()`` is the one decision every renderer, ``apply`` and the linter's "fix" text
share: a setting goes to a KubeletConfiguration field when the field exists, to a kubelet
flag only when no field exists but the flag does (dockershim's pull deadline, ≤1.23), and
to the runtime's own config when that is its home. What has no home in these versions is
refused with the reason, never written where it would break the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.spans import Span
from mlnode.knowledge.table import (
    FEATURE_GATES,
    KUBELET_SETTINGS,
    RUNTIME_SETTINGS,
    KubeletSetting,
    RuntimeSetting,
    ValueKind,
    eviction_hard_defaults,
    runtime_settings_for,
)
from mlnode.units import format_go_duration
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = [
    "PlacedRuntimeValue",
    "Placement",
    "Refusal",
    "default_feature_gates",
    "feature_gate_default",
    "file_value",
    "flag_value",
    "place",
]

# Settings that the kubelet itself only ever honoured with dockershim; with any other
# runtime their home is the runtime's config.
_DOCKERSHIM_ONLY = frozenset({"image_pull_progress_deadline_seconds"})


@dataclass(frozen=True)
class PlacedRuntimeValue:
    row: RuntimeSetting
    value: Any  # as written in the runtime's file (Go duration string, int, ...)


@dataclass(frozen=True)
class Refusal:
    key: str
    reason: str


@dataclass(frozen=True)
class Placement:
    kubernetes_version: Version
    runtime: RuntimeSpec
    kubelet_fields: Mapping[str, Any] = field(default_factory=dict)
    kubelet_flags: Mapping[str, str] = field(default_factory=dict)
    feature_gates: Mapping[str, bool] = field(default_factory=dict)
    runtime_values: tuple[PlacedRuntimeValue, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def containerd_config_version(self) -> int | None:
        versions = {pv.row.config_version for pv in self.runtime_values}
        versions.discard(None)
        return max(versions) if versions else None  # type: ignore[type-var]


def file_value(kind: ValueKind, value: Any) -> Any:
    """A setting's value as YAML/TOML files hold it."""
    if kind is ValueKind.DURATION:
        return format_go_duration(float(value))
    if kind is ValueKind.SIGNAL_MAP:
        return dict(value)
    if kind is ValueKind.BOOL:
        return bool(value)
    return int(value)


def flag_value(kind: ValueKind, value: Any) -> str:
    """A setting's value as a kubelet flag takes it."""
    if kind is ValueKind.DURATION:
        return format_go_duration(float(value))
    if kind is ValueKind.SIGNAL_MAP:
        return ",".join(f"{k}<{val}" for k, val in dict(value).items())
    if kind is ValueKind.BOOL:
        return "true" if value else "false"
    return str(int(value))


def feature_gate_default(gate: str, version: Version) -> bool | None:
    """The gate's default in this kubelet version, or None when the gate does not exist."""
    rows = [r for r in FEATURE_GATES if r.gate == gate and version.at_least(r.since)]
    if not rows:
        return None
    return max(rows, key=lambda r: r.since.key()).default


def default_feature_gates(version: Version) -> dict[str, bool]:
    """Every gate mlnode knows, at its default in kubelet ``version`` (if it exists there)."""
    gates: dict[str, bool] = {}
    for gate in dict.fromkeys(r.gate for r in FEATURE_GATES):
        default = feature_gate_default(gate, version)
        if default is not None:
            gates[gate] = default
    return gates


def _kubelet_home(row: KubeletSetting, k8s: Version) -> str | None:
    if row.field and row.field_span.contains(k8s):
        return "field"
    if row.flag and row.flag_span.contains(k8s):
        return "flag"
    return None


def _first_version(span: Span) -> str:
    return ", ".join(str(p) for p in span.since) if span.since else "?"


def place(settings: ImageSettings, k8s: Version, runtime: RuntimeSpec) -> Placement:
    wanted = settings.set_fields()
    kubelet = _place_kubelet(wanted, k8s, runtime)
    runtime_values, runtime_refusals = _place_runtime(wanted, runtime)
    return dataclasses.replace(
        kubelet,
        runtime_values=runtime_values,
        refusals=kubelet.refusals + runtime_refusals,
        warnings=kubelet.warnings + _eviction_warnings(wanted, k8s),
    )


def _place_kubelet(wanted: Mapping[str, Any], k8s: Version, runtime: RuntimeSpec) -> Placement:
    """The kubelet's part: config fields, flags, the feature gates they need, refusals."""
    fields: dict[str, Any] = {}
    flags: dict[str, str] = {}
    gates: dict[str, bool] = {}
    refusals: list[Refusal] = []
    warnings: list[str] = []
    for row in KUBELET_SETTINGS:
        if row.key not in wanted:
            continue
        value = wanted[row.key]
        if row.key in _DOCKERSHIM_ONLY and runtime.kind is not RuntimeKind.DOCKER:
            continue  # placed with the runtime
        home = _kubelet_home(row, k8s)
        if home == "field":
            assert row.field is not None
            fields[row.field] = file_value(row.kind, value)
            if row.feature_gate and not feature_gate_default(row.feature_gate, k8s):
                gates[row.feature_gate] = True
                warnings.append(
                    f"{row.field} needs the {row.feature_gate} feature gate, which is off by "
                    f"default in kubelet {k8s}: featureGates.{row.feature_gate}=true is set too"
                )
        elif home == "flag":
            assert row.flag is not None
            flags[row.flag] = flag_value(row.kind, value)
        else:
            refusals.append(_kubelet_refusal(row, k8s))
    return Placement(
        kubernetes_version=k8s,
        runtime=runtime,
        kubelet_fields=fields,
        kubelet_flags=flags,
        feature_gates=gates,
        refusals=tuple(refusals),
        warnings=tuple(warnings),
    )


def _kubelet_refusal(row: KubeletSetting, k8s: Version) -> Refusal:
    if row.key in _DOCKERSHIM_ONLY:
        reason = (
            f"--{row.flag} was removed in Kubernetes 1.24 together with dockershim; "
            "run cri-dockerd (which has its own --image-pull-progress-deadline) "
            "or move to containerd >= 1.7 or CRI-O"
        )
    elif row.field:
        reason = (
            f"{row.field} does not exist in kubelet {k8s} "
            f"(it arrived in {_first_version(row.field_span)})"
        )
    else:
        reason = f"{row.key} has no flag or field in kubelet {k8s}"
    return Refusal(row.key, reason)


def _place_runtime(
    wanted: Mapping[str, Any], runtime: RuntimeSpec
) -> tuple[tuple[PlacedRuntimeValue, ...], tuple[Refusal, ...]]:
    """The runtime's part: its config values, and refusals where this version has none."""
    runtime_values: list[PlacedRuntimeValue] = []
    refusals: list[Refusal] = []
    rows_here = runtime_settings_for(runtime.kind, runtime.version)
    for key in sorted({r.key for r in RUNTIME_SETTINGS}):
        if key not in wanted:
            continue
        if key in _DOCKERSHIM_ONLY and runtime.kind is RuntimeKind.DOCKER:
            continue
        match = [r for r in rows_here if r.key == key]
        if match:
            rrow = match[0]
            runtime_values.append(PlacedRuntimeValue(rrow, file_value(rrow.kind, wanted[key])))
            continue
        refusals.append(_runtime_refusal(key, runtime))
    return tuple(runtime_values), tuple(refusals)


def _runtime_refusal(key: str, runtime: RuntimeSpec) -> Refusal:
    existing = [r for r in RUNTIME_SETTINGS if r.key == key and r.runtime is runtime.kind]
    if not existing:
        return Refusal(key, f"{runtime.kind.value} has no setting for {key}")
    earliest = min(existing, key=lambda r: min(p.key() for p in r.span.since))
    extra = (
        "; containerd 1.6 ignores unknown keys, so writing it would change nothing"
        if runtime.kind is RuntimeKind.CONTAINERD
        else ""
    )
    return Refusal(
        key,
        f"{runtime} has no {earliest.name} (it arrived in {runtime.kind.value} "
        f"{_first_version(earliest.span)}){extra}",
    )


def _eviction_warnings(wanted: Mapping[str, Any], k8s: Version) -> tuple[str, ...]:
    """evictionHard that lists only some signals zeroes the others."""
    eviction = wanted.get("eviction_hard")
    if eviction is None or wanted.get("merge_default_eviction_settings"):
        return ()
    missing = sorted(set(eviction_hard_defaults(k8s)) - set(eviction))
    if not missing:
        return ()
    return (
        "evictionHard sets only "
        + ", ".join(sorted(eviction))
        + "; the kubelet then sets "
        + ", ".join(missing)
        + " to 0 (no eviction for them) unless they are listed too"
        + (" or mergeDefaultEvictionSettings is true" if k8s.at_least(Version(1, 33)) else ""),
    )
