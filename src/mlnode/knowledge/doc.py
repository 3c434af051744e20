"""Render the knowledge tables as Markdown (docs/settings.md), for reviewers.

``python -m mlnode.knowledge.doc > docs/settings.md``; a test keeps the file in step
with the tables.
"""

from __future__ import annotations

from mlnode.knowledge.spans import Span
from mlnode.knowledge.table import (
    CONFIG_DIR_SUPPORT,
    EVICTION_HARD_DEFAULTS,
    FEATURE_GATES,
    KUBELET_SETTINGS,
    REMOVED_FLAGS,
    RUNTIME_SETTINGS,
    ValueKind,
)
from mlnode.knowledge.validation import VALIDATION_RULES
from mlnode.units import format_go_duration
from mlnode.versions import KUBERNETES_KNOWN

__all__ = ["render_markdown"]


def _span(span: Span) -> str:
    return "all" if not span.since and not span.until else span.describe()


def _value(kind: ValueKind, value: object) -> str:
    if value is None:
        return "unset"
    if kind is ValueKind.DURATION and isinstance(value, int | float):
        return format_go_duration(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}<{v}" for k, v in value.items())
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    out: list[str] = [
        "# Image settings mlnode knows",
        "",
        "Generated from `src/mlnode/knowledge/` by `python -m mlnode.knowledge.doc`; do not",
        "edit by hand. Versions are kubelet versions unless the row names a runtime; a span",
        '"since A to before B" means present in A and later, absent from B on.',
        "",
        "## Kubelet",
        "",
        "| setting | config field (span) | flag (span) | default | unit | gate | summary"
        " | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in KUBELET_SETTINGS:
        field = f"`{r.field}` ({_span(r.field_span)})" if r.field else "none"
        flag = f"`--{r.flag}` ({_span(r.flag_span)})" if r.flag else "none"
        if r.flag and r.flag_deprecated_since == KUBERNETES_KNOWN[0]:
            flag += ", deprecated in every version known"
        elif r.flag and r.flag_deprecated_since:
            flag += f", deprecated since {r.flag_deprecated_since}"
        out.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{r.key}`",
                    field,
                    flag,
                    _value(r.kind, r.default),
                    r.unit,
                    r.feature_gate or "",
                    r.summary,
                    r.source,
                )
            )
            + " |"
        )
    out += [
        "",
        "## Runtimes",
        "",
        "| setting | runtime | versions | where | key | default | config version | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rr in RUNTIME_SETTINGS:
        where = "[" + ".".join(rr.table) + "]" if rr.table else "command-line flag"
        out.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{rr.key}`",
                    rr.runtime.value,
                    _span(rr.span),
                    where,
                    f"`{rr.name}`",
                    _value(rr.kind, rr.default),
                    str(rr.config_version or ""),
                    rr.source,
                )
            )
            + " |"
        )
    out += ["", "## Kubelet validation (the kubelet's wording)", ""]
    out += ["| rule | settings | kubelet versions | wording per version | source |"]
    out += ["|---|---|---|---|---|"]
    sample = {
        "image_gc_high_threshold_percent": 101,
        "image_gc_low_threshold_percent": 101,
        "image_minimum_gc_age_seconds": 120.0,
        "image_maximum_gc_age_seconds": -1e-9,
        "max_parallel_image_pulls": 0,
        "serialize_image_pulls": True,
        "node_status_max_images": -2,
        "registry_pull_qps": -1,
        "registry_burst": -1,
    }
    for rule in VALIDATION_RULES:
        wording = "; ".join(f"{_span(span)}: {msg(sample)}" for span, msg in rule.messages)
        out.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (rule.rule, ", ".join(rule.keys), _span(rule.span), wording, rule.source)
            )
            + " |"
        )
    out += ["", "## Feature gates", "", "| gate | from | stage | default | source |"]
    out += ["|---|---|---|---|---|"]
    for g in FEATURE_GATES:
        out.append(f"| {g.gate} | {g.since} | {g.stage} | {g.default} | {_cell(g.source)} |")
    out += ["", "## `--config-dir` drop-ins", ""]
    out += [
        "| kubelet versions | supported | env needed | merge | apiVersion/kind required | source |"
    ]
    out += ["|---|---|---|---|---|---|"]
    for c in CONFIG_DIR_SUPPORT:
        out.append(
            f"| {_span(c.span)} | {c.supported} | {c.env_required or ''} | {c.merge} | "
            f"{c.requires_type_meta} | {_cell(c.source)} |"
        )
    out += ["", "## Default `evictionHard` (Linux)", "", "| kubelet versions | signals | source |"]
    out += ["|---|---|---|"]
    for e in EVICTION_HARD_DEFAULTS:
        sig = ", ".join(f"{k}<{v}" for k, v in e.signals.items())
        out.append(f"| {_span(e.span)} | {sig} | {_cell(e.source)} |")
    out += ["", "## Removed kubelet flags (the kubelet refuses to start)", ""]
    out += ["| flag | removed in | why | fix | source |", "|---|---|---|---|---|"]
    for f in REMOVED_FLAGS:
        out.append(
            f"| `--{f.flag}` | {f.removed_in} | {_cell(f.why)} | {_cell(f.fix)} | "
            f"{_cell(f.source)} |"
        )
    out += [
        "",
        "Every other flag is checked against `src/mlnode/knowledge/data/kubelet_flags.json`",
        "(1.21–1.24, 1.26–1.32, read from kubelet sources; see its `_source`).",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
