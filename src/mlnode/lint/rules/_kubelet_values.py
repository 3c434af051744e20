"""Kubelet values: ones it refuses, fields this version lacks, flags that override the file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlnode.formats.base import ParsedDocument
from mlnode.knowledge.eviction import eviction_startup_message, threshold_error
from mlnode.knowledge.model import Layer, Origin
from mlnode.knowledge.table import (
    RUNTIME_SETTINGS,
    kubelet_setting,
    kubelet_setting_by_field,
)
from mlnode.knowledge.validation import startup_failure_message, validate_kubelet
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.units import format_go_duration

__all__ = [
    "eviction_threshold_rule",
    "fields_unknown_rule",
    "overrides_rule",
    "problems_rule",
    "validation_rule",
]


def problems_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for p in eff.problems:
        runtime_key = any(r.key == p.key and r.name in p.message for r in RUNTIME_SETTINGS)
        who = ctx.runtime.kind.value if runtime_key else "the kubelet"
        yield Finding(
            "E103",
            p.message,
            f"{who} refuses this configuration and does not start",
            "write the value in the form the comment or docs show (e.g. a Go duration such as "
            '"30m0s", a whole number for percents)',
            p.origin,
        )


def validation_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    values = {k: sv.value for k, sv in eff.kubelet.items() if sv.layer is not Layer.DEFAULT}
    failures = validate_kubelet(values, ctx.kubernetes_version, eff.feature_gates)
    for failure in failures:
        origins = [eff.kubelet[k].origin for k in failure.keys if eff.kubelet[k].origin]
        code = "E105" if failure.rule == "max-gc-age-gate" else "E104"
        fix = {
            "gc-low-below-high": "make imageGCLowThresholdPercent lower than "
            "imageGCHighThresholdPercent (to turn GC off, set high to 100 and low below it)",
            "max-gc-age-gate": "enable featureGates.ImageMaximumGCAge or remove imageMaximumGCAge",
            "max-gc-age-above-min": "make imageMaximumGCAge longer than imageMinimumGCAge",
            "max-parallel-needs-parallel": "set serializeImagePulls: false",
        }.get(failure.rule, "use a value in the range the message gives")
        yield Finding(
            code,
            failure.message,
            "the kubelet does not start: "
            f'"{startup_failure_message([failure], ctx.kubernetes_version)}"',
            fix,
            origins[-1] if origins else None,
        )


def _eviction_statements(eff: EffectiveSettings) -> dict[str, tuple[str, Origin | None]]:
    """The evictionHard map the kubelet parses, each statement with where it was set.

    Config file and drop-ins merge key by key (mergo in 1.28, JSON merge patch after);
    ``--eviction-hard`` replaces the file's map (its first ``Set`` clears it) and further
    occurrences add to it (component-base ``LangleSeparatedMapStringString``).
    """
    values = [v for v in eff.history.get("eviction_hard", ()) if v.layer is not Layer.DEFAULT]
    flags = [v for v in values if v.layer is Layer.FLAG]
    out: dict[str, tuple[str, Origin | None]] = {}
    for sv in flags or values:
        if isinstance(sv.value, dict):
            for signal, value in sv.value.items():
                if value is not None:
                    out[str(signal)] = (str(value), sv.origin)
    return out


def eviction_threshold_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    """E111: an evictionHard statement the kubelet's threshold parser rejects."""
    for signal, (value, origin) in _eviction_statements(eff).items():
        error = threshold_error(signal, value, ctx.kubernetes_version)
        if error is None:
            continue
        yield Finding(
            "E111",
            f"evictionHard {signal}: {value} is refused by kubelet {ctx.kubernetes_version}:"
            f" {error}",
            f'the kubelet does not start: "{eviction_startup_message(error)}"',
            "use a known signal (imagefs.available, nodefs.available, memory.available, ...)"
            ' with a percentage between 0% and 100% or a positive quantity such as "10Gi"',
            origin,
        )


def fields_unknown_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        for occ in doc.fields:
            row = kubelet_setting_by_field(occ.field)
            if row is None or row.field_span.contains(ctx.kubernetes_version):
                continue
            since = ", ".join(str(p) for p in row.field_span.since)
            yield Finding(
                "W211",
                f"{occ.field} does not exist in kubelet {ctx.kubernetes_version}"
                f" (it arrived in {since})",
                'strict decoding fails, the kubelet falls back to lenient decoding ("Using '
                'lenient decoding as strict decoding failed") and ignores the field',
                f"remove it, or upgrade the kubelet to {since} or later",
                occ.origin,
            )


def overrides_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for key, values in eff.history.items():
        flags = [v for v in values if v.layer is Layer.FLAG]
        files = [v for v in values if v.layer in (Layer.CONFIG_FILE, Layer.DROP_IN)]
        if not flags or not files:
            continue
        winner = flags[-1]
        for fv in files:
            row = kubelet_setting(key)
            yield Finding(
                "W208",
                f"{winner.raw} overrides {row.field} = {_show(row.kind.value, fv.value)} set at "
                f"{fv.origin}",
                "the config file's value has no effect while the flag is there",
                f"keep one: remove {winner.raw}, or remove {row.field} from {fv.origin}",
                winner.origin,
            )


def _show(kind: str, value: Any) -> str:
    return format_go_duration(value) if kind == "duration" else str(value)
