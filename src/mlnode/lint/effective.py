"""A node's effective image settings, computed with the kubelet's precedence.

defaults < the --config file < --config-dir drop-ins (sorted by file name) < flags.
Flags are ordered as the kubelet's ExecStart line expands its environment variables
(kubeadm: KUBELET_KUBEADM_ARGS before KUBELET_EXTRA_ARGS); a repeated flag's last value
wins, as with pflag. Runtime settings are resolved separately: later files win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnode.formats.base import DocumentKind, FlagOccurrence, ParsedDocument
from mlnode.formats.facts import ContainerdFacts, KubeletConfigFacts
from mlnode.knowledge.model import Layer, Origin, SettingValue
from mlnode.knowledge.placement import default_feature_gates
from mlnode.knowledge.table import (
    KUBELET_SETTINGS,
    RUNTIME_SETTINGS,
    RuntimeSetting,
    eviction_hard_defaults,
    kubelet_setting_by_field,
    kubelet_setting_by_flag,
    runtime_settings_for,
)
from mlnode.knowledge.values import parse_field_value, parse_flag_value
from mlnode.units import parse_go_duration
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = [
    "ARGS_VARIABLE_ORDER",
    "EffectiveSettings",
    "ValueProblem",
    "compute_effective",
    "config_version_of",
    "ordered_flags",
    "runtime_duration_seconds",
    "runtime_row_for",
]

CONTAINERD_V2_CRI_TABLE = ("plugins", "io.containerd.grpc.v1.cri")

# v1beta1 defaults.go replaces these zero values with the default (kubeadm writes "0s").
_ZERO_MEANS_DEFAULT = frozenset(
    {"image_minimum_gc_age_seconds", "runtime_request_timeout_seconds", "registry_burst"}
)

# The order in which kubelet unit files put these variables on the ExecStart line.
ARGS_VARIABLE_ORDER = (
    "KUBELET_KUBECONFIG_ARGS",
    "KUBELET_CONFIG_ARGS",
    "KUBELET_KUBEADM_ARGS",
    "KUBELET_ARGS",
    "KUBELET_EXTRA_ARGS",
)


@dataclass(frozen=True)
class ValueProblem:
    """A value the kubelet or runtime cannot decode (it refuses to start)."""

    key: str
    origin: Origin
    message: str


@dataclass(frozen=True)
class EffectiveSettings:
    kubelet: Mapping[str, SettingValue]  # ImageSettings key -> winning value (defaults too)
    runtime: Mapping[str, SettingValue]  # ImageSettings key -> value from the runtime config
    feature_gates: Mapping[str, bool]  # effective: version defaults + configured
    history: Mapping[str, tuple[SettingValue, ...]]  # every value seen, low to high precedence
    problems: tuple[ValueProblem, ...] = field(default=())

    def value(self, key: str) -> Any:
        sv = self.kubelet.get(key) or self.runtime.get(key)
        return None if sv is None else sv.value


def config_version_of(doc: ParsedDocument) -> int | None:
    """The config version of a containerd file (what runtime_row_for wants); None for others."""
    return doc.facts.config_version if isinstance(doc.facts, ContainerdFacts) else None


def runtime_row_for(
    name: str, table: tuple[str, ...], runtime: RuntimeSpec, config_version: int | None = None
) -> RuntimeSetting | None:
    """The runtime row this key is read as, or None when this runtime version ignores it.

    containerd 2.x migrates a version-2 file, so there the 1.x CRI table is read too.
    """
    if runtime.version is None:
        return None
    for row in RUNTIME_SETTINGS:
        if row.runtime is not runtime.kind or row.name != name:
            continue
        if not row.span.contains(runtime.version):
            continue
        if row.table == table:
            return row
        migrated = (
            runtime.kind is RuntimeKind.CONTAINERD
            and config_version is not None
            and config_version < (row.config_version or 0)
            and table == CONTAINERD_V2_CRI_TABLE
        )
        if migrated:
            return row
    return None


# kubeadm writes nodeRegistration.kubeletExtraArgs to kubeadm-flags.env as KUBELET_KUBEADM_ARGS.
_KUBEADM_EXTRA_ARGS = ".nodeRegistration.kubeletExtraArgs"


def _flag_rank(flag: FlagOccurrence, doc_index: int) -> tuple[int, int, int]:
    var = flag.origin.detail
    if var and var.endswith(_KUBEADM_EXTRA_ARGS):
        var = "KUBELET_KUBEADM_ARGS"
    try:
        var_rank = ARGS_VARIABLE_ORDER.index(var)
    except ValueError:
        var_rank = ARGS_VARIABLE_ORDER.index("KUBELET_ARGS")
    return (var_rank, doc_index, flag.origin.line or 0)


def ordered_flags(docs: Sequence[ParsedDocument]) -> list[FlagOccurrence]:
    """Every kubelet flag in ExecStart order (stable for ties)."""
    indexed = [(_flag_rank(f, i), f) for i, d in enumerate(docs) for f in d.flags]
    indexed.sort(key=lambda item: item[0])
    return [f for _, f in indexed]


def _config_layer(doc: ParsedDocument) -> Layer | None:
    facts = doc.facts
    if isinstance(facts, KubeletConfigFacts) and facts.kubeadm_ignored_by:
        return None  # a KubeletConfiguration in a join file: kubeadm join never reads it
    if doc.kind is DocumentKind.KUBELET_DROPIN:
        return Layer.DROP_IN
    if doc.kind in (DocumentKind.KUBELET_CONFIG, DocumentKind.KUBEADM, DocumentKind.KUBESPRAY):
        return Layer.CONFIG_FILE
    return None


def _parse_feature_gates(text: str) -> dict[str, bool]:
    gates: dict[str, bool] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        gates[name.strip()] = value.strip().lower() in ("true", "1", "t")
    return gates


@dataclass
class _Seen:
    """What the steps of :func:`compute_effective` collect, in precedence order.

    Mutable on purpose: each step appends to it, so the history keeps the order of layers.
    """

    history: dict[str, list[SettingValue]] = field(default_factory=dict)
    problems: list[ValueProblem] = field(default_factory=list)
    configured_gates: dict[str, bool] = field(default_factory=dict)


def compute_effective(
    docs: Iterable[ParsedDocument], version: Version, runtime: RuntimeSpec
) -> EffectiveSettings:
    docs = list(docs)
    seen = _Seen()
    _add_defaults(seen, version, runtime)
    _add_config_files(seen, docs, version)
    _add_flags(seen, docs, version, runtime)
    kubelet = _winners(seen.history)
    runtime_values = _add_runtime_config(seen, docs, runtime)
    gates = default_feature_gates(version)
    gates.update(seen.configured_gates)
    return EffectiveSettings(
        kubelet=kubelet,
        runtime=runtime_values,
        feature_gates=gates,
        history={k: tuple(v) for k, v in seen.history.items()},
        problems=tuple(seen.problems),
    )


def _add_defaults(seen: _Seen, version: Version, runtime: RuntimeSpec) -> None:
    """The kubelet's default for every setting this version has (as a field or a flag)."""
    for row in KUBELET_SETTINGS:
        if row.key == "image_pull_progress_deadline_seconds" and (
            runtime.kind is not RuntimeKind.DOCKER or not row.flag_span.contains(version)
        ):
            continue  # the runtime owns this deadline; its default is added later
        exists = (row.field is not None and row.field_span.contains(version)) or (
            row.flag is not None and row.flag_span.contains(version)
        )
        if not exists:
            continue
        default = eviction_hard_defaults(version) if row.key == "eviction_hard" else row.default
        seen.history.setdefault(row.key, []).append(
            SettingValue(row.key, default, Layer.DEFAULT, None, None)
        )


def _add_config_files(seen: _Seen, docs: Sequence[ParsedDocument], version: Version) -> None:
    """The --config file(s), then the drop-ins sorted by file name."""
    config_docs = [d for d in docs if _config_layer(d) is Layer.CONFIG_FILE]
    dropins = sorted(
        (d for d in docs if _config_layer(d) is Layer.DROP_IN), key=lambda d: d.path.rsplit("/")[-1]
    )
    for doc in [*config_docs, *dropins]:
        layer = _config_layer(doc)
        assert layer is not None
        for occ in doc.fields:
            if occ.field == "featureGates":
                _add_feature_gates_field(seen, occ.value, occ.origin)
                continue
            frow = kubelet_setting_by_field(occ.field)
            if frow is None or not frow.field_span.contains(version):
                continue  # lenient decoding drops a field this version lacks (lint W211)
            try:
                value = parse_field_value(frow, occ.value)
            except ValueError as e:
                seen.problems.append(ValueProblem(frow.key, occ.origin, str(e)))
                continue
            if value == 0 and frow.key in _ZERO_MEANS_DEFAULT:
                continue  # defaults.go replaces the zero before anything reads it
            seen.history[frow.key].append(SettingValue(frow.key, value, layer, occ.origin, None))


def _add_feature_gates_field(seen: _Seen, value: Any, origin: Origin) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        seen.problems.append(
            ValueProblem(
                "feature_gates",
                origin,
                f"featureGates: expected gate names mapped to true or false, got {value!r}",
            )
        )
        return
    seen.configured_gates.update({str(k): v for k, v in value.items()})


def _add_flags(
    seen: _Seen, docs: Sequence[ParsedDocument], version: Version, runtime: RuntimeSpec
) -> None:
    """Flags in ExecStart order; each overrides the files and any earlier flag."""
    for flag in ordered_flags(docs):
        if flag.name == "feature-gates" and flag.value:
            seen.configured_gates.update(_parse_feature_gates(flag.value))
            continue
        grow = kubelet_setting_by_flag(flag.name)
        if grow is None or not grow.flag_span.contains(version):
            continue  # a removed flag has no value: the kubelet refuses it (lint E101)
        if grow.key == "image_pull_progress_deadline_seconds" and (
            runtime.kind is not RuntimeKind.DOCKER
        ):
            continue  # dockershim only; with a CRI runtime the flag does nothing (lint W202)
        try:
            value = parse_flag_value(grow, flag.value)
        except ValueError as e:
            seen.problems.append(ValueProblem(grow.key, flag.origin, str(e)))
            continue
        seen.history[grow.key].append(
            SettingValue(grow.key, value, Layer.FLAG, flag.origin, flag.text)
        )


def _winners(history: Mapping[str, list[SettingValue]]) -> dict[str, SettingValue]:
    """The last value of each setting, remembering where later (overridden) ones were."""
    kubelet: dict[str, SettingValue] = {}
    for key, values in history.items():
        winner = values[-1]
        later = tuple(v.origin for v in values[values.index(winner) + 1 :] if v.origin)
        kubelet[key] = (
            winner
            if not later
            else SettingValue(
                winner.key, winner.value, winner.layer, winner.origin, winner.raw, later
            )
        )
    return kubelet


_TOML_TYPE = ((bool, "boolean"), (int, "integer"), (float, "float"), (list, "array"))


def _toml_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "table"
    return next((name for t, name in _TOML_TYPE if isinstance(value, t)), "date-time")


def runtime_duration_seconds(name: str, value: Any, kind: RuntimeKind) -> float:
    """A runtime's duration setting as the runtime decodes it, in seconds.

    A string is a Go duration. CRI-O's durations are ``time.Duration`` fields
    (pkg/config/config.go ``PullProgressTimeout time.Duration``) decoded by BurntSushi/toml,
    which stores a TOML integer as nanoseconds. containerd's are strings
    (``ImagePullProgressTimeout string``: release/1.7 pkg/cri/config/config.go:378,
    main internal/cri/config/config.go:341): go-toml refuses any other TOML type, the
    plugin's config does not decode and containerd does not start (``config.Decode`` error
    returned from server.New: release/1.7 services/server/server.go:236-239, main
    cmd/containerd/server/server.go:183-186). Any type other than these is a ValueError.
    """
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from e
    if kind is RuntimeKind.CRIO and isinstance(value, int) and not isinstance(value, bool):
        return value / 1e9
    expected = "a duration string or an integer (nanoseconds)"
    if kind is not RuntimeKind.CRIO:
        expected = 'a duration string such as "5m0s"'
    raise ValueError(
        f"{name} is a TOML {_toml_type(value)} ({value!r}); {kind.value} decodes only"
        f" {expected} into it, so it cannot read this file"
    )


def _add_runtime_config(
    seen: _Seen, docs: Sequence[ParsedDocument], runtime: RuntimeSpec
) -> dict[str, SettingValue]:
    """The runtime's settings: later files win; the version's defaults fill the rest."""
    runtime_values: dict[str, SettingValue] = {}
    for doc in docs:
        for rv in doc.runtime_values:
            # Only keys this runtime version reads; the rules report the ignored ones.
            if doc.kind is DocumentKind.KUBESPRAY:
                # kubespray's variable is table-agnostic: its template picks the table.
                rrow = next(
                    (
                        r
                        for r in runtime_settings_for(runtime.kind, runtime.version)
                        if r.name == rv.name
                    ),
                    None,
                )
            else:
                rrow = runtime_row_for(rv.name, rv.table, runtime, config_version_of(doc))
            if rrow is None:
                continue
            rvalue: Any = rv.value
            if rrow.kind.value == "duration":
                try:
                    rvalue = runtime_duration_seconds(rv.name, rv.value, runtime.kind)
                except ValueError as e:
                    seen.problems.append(ValueProblem(rrow.key, rv.origin, str(e)))
                    continue
            sv = SettingValue(rrow.key, rvalue, Layer.RUNTIME_CONFIG, rv.origin, str(rv.value))
            seen.history.setdefault(rrow.key, []).append(sv)
            runtime_values[rrow.key] = sv
    for rrow in runtime_settings_for(runtime.kind, runtime.version):
        if rrow.key not in runtime_values:
            runtime_values[rrow.key] = SettingValue(rrow.key, rrow.default, Layer.DEFAULT)
            seen.history.setdefault(rrow.key, []).insert(0, runtime_values[rrow.key])
    return runtime_values
