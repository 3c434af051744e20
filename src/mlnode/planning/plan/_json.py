"""The ``mlnode.plan/v1`` JSON document: writing a plan, and reading its settings back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnode.errors import InvalidValue, MlnodeError
from mlnode.knowledge.model import SETTING_KEYS, ImageSettings
from mlnode.knowledge.table import KUBELET_SETTINGS, RUNTIME_SETTINGS, ValueKind
from mlnode.planning._documents import load_document
from mlnode.planning.plan._model import PLAN_SCHEMA, Plan
from mlnode.versions import RuntimeSpec, Version, parse_kubernetes_version, parse_runtime

__all__ = ["load_plan_settings", "plan_to_json"]


def _json_value(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_json_value(x) for x in v]
    if isinstance(v, Version | RuntimeSpec):
        return str(v)
    return v


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The ``mlnode.plan/v1`` document (docs/plan.md describes every key)."""
    pl = plan.placement
    placement: dict[str, Any] | None = None
    if pl is not None:
        placement = {
            "kubernetes_version": str(pl.kubernetes_version),
            "runtime": str(pl.runtime),
            "kubelet_fields": _json_value(pl.kubelet_fields),
            "kubelet_flags": _json_value(pl.kubelet_flags),
            "feature_gates": _json_value(pl.feature_gates),
            "runtime_values": [
                {
                    "key": pv.row.key,
                    "runtime": pv.row.runtime.value,
                    "table": list(pv.row.table),
                    "name": pv.row.name,
                    "value": _json_value(pv.value),
                    "config_version": pv.row.config_version,
                }
                for pv in pl.runtime_values
            ],
            "refusals": [{"key": r.key, "reason": r.reason} for r in pl.refusals],
            "homes": [dataclasses.asdict(h) for h in plan.homes],
            "files": list(plan.files),
        }
    return {
        "schema": PLAN_SCHEMA,
        "feasible": plan.feasible,
        "reason": plan.reason,
        "minimum_capacity_bytes": plan.minimum_capacity_bytes,
        "settings": _json_value(plan.settings.set_fields()),
        "justifications": [dataclasses.asdict(j) for j in plan.justifications],
        "numbers": dataclasses.asdict(plan.numbers),
        "profile": plan.profile.to_json(),
        "sources": dict(plan.profile.sources),
        "placement": placement,
        "warnings": list(plan.warnings),
    }


_KINDS: dict[str, ValueKind] = {r.key: r.kind for r in KUBELET_SETTINGS}
for _r in RUNTIME_SETTINGS:
    _KINDS.setdefault(_r.key, _r.kind)


def _setting_value(key: str, raw: Any) -> Any:
    kind = _KINDS.get(key, ValueKind.INT)
    if kind is ValueKind.BOOL:
        if not isinstance(raw, bool):
            raise InvalidValue(f"{raw!r} is not true or false")
        return raw
    if kind in (ValueKind.INT, ValueKind.PERCENT):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise InvalidValue(f"{raw!r} is not a whole number")
        if kind is ValueKind.PERCENT and not 0 <= raw <= 100:
            raise InvalidValue(f"{raw} is not a percent from 0 to 100")
        return raw
    if kind is ValueKind.DURATION:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            raise InvalidValue(f"{raw!r} is not a number of seconds ≥ 0")
        return float(raw)
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in raw.items()
    ):
        raise InvalidValue(f"{raw!r} is not a mapping of signal to quantity")
    return dict(raw)


def load_plan_settings(
    path: Path | str,
) -> tuple[ImageSettings, Version | None, RuntimeSpec | None]:
    """Read a ``mlnode plan --output json`` file back: its settings and versions.

    Raises InputError with ``file:line`` for a wrong schema, unknown setting keys, values of
    the wrong type, thresholds out of order, unknown versions, and an infeasible plan
    (whose settings would leave the disk unsafe).
    """
    doc = load_document(path, what="plan")
    schema = doc.data.get("schema")
    if schema != PLAN_SCHEMA:
        raise doc.error(
            f"schema is {schema!r}, expected {PLAN_SCHEMA!r} (write it with "
            "`mlnode plan --output json`)",
            "schema",
        )
    feasible = doc.data.get("feasible")
    if feasible is not True:
        if feasible is False:
            raise doc.error(
                f"the plan is not feasible: {doc.data.get('reason') or 'no reason given'}; "
                "there are no safe settings to render",
                "feasible",
            )
        raise doc.error(f"feasible must be true or false, not {feasible!r}", "feasible")
    raw_settings = doc.data.get("settings")
    if not isinstance(raw_settings, Mapping):
        raise doc.error("settings must be a mapping of setting keys to values", "settings")
    values: dict[str, Any] = {}
    for key, raw in raw_settings.items():
        if key not in SETTING_KEYS:
            raise doc.error(
                f"unknown setting {key!r} (known: {', '.join(SETTING_KEYS)})", "settings", key
            )
        if raw is None:
            continue
        try:
            values[key] = _setting_value(key, raw)
        except ValueError as e:
            raise doc.error(f"settings.{key}: {e}", "settings", key) from e
    high = values.get("image_gc_high_threshold_percent")
    low = values.get("image_gc_low_threshold_percent")
    if high is not None and low is not None and not low < high:
        raise doc.error(
            f"image_gc_low_threshold_percent {low} must be less than "
            f"image_gc_high_threshold_percent {high}",
            "settings",
            "image_gc_low_threshold_percent",
        )
    settings = ImageSettings(**values)

    profile = doc.data.get("profile")
    if profile is not None and not isinstance(profile, Mapping):
        raise doc.error("profile must be a mapping", "profile")
    profile = profile or {}
    k8s: Version | None = None
    runtime: RuntimeSpec | None = None
    try:
        if profile.get("kubernetes_version") is not None:
            k8s = parse_kubernetes_version(
                str(profile["kubernetes_version"]), option="profile.kubernetes_version"
            )
    except MlnodeError as e:
        raise doc.error(str(e), "profile", "kubernetes_version") from e
    try:
        if profile.get("runtime") is not None:
            runtime = parse_runtime(str(profile["runtime"]), option="profile.runtime")
    except MlnodeError as e:
        raise doc.error(str(e), "profile", "runtime") from e
    return settings, k8s, runtime
