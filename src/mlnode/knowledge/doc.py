"""Render the knowledge tables as Markdown (docs/settings.md), for reviewers.

``python -m mlnode.knowledge.doc > docs/settings.md``; a test keeps the file in step
with the tables.
"""

from __future__ import annotations

from mlnode.knowledge.eviction import EVICTION_SIGNALS
from mlnode.knowledge.spans import Span
from mlnode.knowledge.table import (
    CONFIG_DIR_SUPPORT,
    CONTAINERD_CONFIG_VERSIONS,
    CONTAINERD_IMPORT_VERSION_RULES,
    CONTAINERD_PLUGIN_KEYS,
    EVICTION_HARD_DEFAULTS,
    FEATURE_GATES,
    FLAG_VALUE_TYPES,
    KUBELET_SETTINGS,
    REMOVED_FLAGS,
    RESTRICTED_FLAG_VALUES,
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


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def _intro() -> list[str]:
    return [
        "# Image settings mlnode knows",
        "",
        "Generated from `src/mlnode/knowledge/` by `python -m mlnode.knowledge.doc`; do not",
        "edit by hand. Versions are kubelet versions unless the row names a runtime; a span",
        '"since A to before B" means present in A and later, absent from B on.',
        "",
    ]


def _kubelet_section() -> list[str]:
    out = [
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
            _row(
                (
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
        )
    return out


def _runtime_section() -> list[str]:
    out = [
        "",
        "## Runtimes",
        "",
        "| setting | runtime | versions | where | key | default | config version | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rr in RUNTIME_SETTINGS:
        where = "[" + ".".join(rr.table) + "]" if rr.table else "command-line flag"
        out.append(
            _row(
                (
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
        )
    return out


def _containerd_section() -> list[str]:
    out = ["", "## containerd config `version` (what each containerd does with it)", ""]
    out += ["| containerd | file version | outcome | containerd says | effect | source |"]
    out += ["|---|---|---|---|---|---|"]
    for c in (*CONTAINERD_CONFIG_VERSIONS, *CONTAINERD_IMPORT_VERSION_RULES):
        versions = c.versions if c.low is not None or c.high is not None else "import > root"
        says = c.containerd_says.replace("{version}", "N").replace("{root}", "R")
        out.append(_row((_span(c.span), versions, c.outcome.value, says, c.effect, c.source)))
    out += ["", "## containerd plugin keys", "", "| table | containerd | keys | read | source |"]
    out += ["|---|---|---|---|---|"]
    for k in CONTAINERD_PLUGIN_KEYS:
        table = "[" + ".".join(f'"{t}"' if "." in t else t for t in k.table) + "]"
        keys = ", ".join(f"`{x}`" for x in sorted(k.keys))
        out.append(_row((table, _span(k.span), keys, "yes" if k.read else "no", k.source)))
    return out


# Values that break every validation rule, so each rule's wording shows with numbers in it.
_VALIDATION_SAMPLE = {
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


def _validation_section() -> list[str]:
    out = ["", "## Kubelet validation (the kubelet's wording)", ""]
    out += ["| rule | settings | kubelet versions | wording per version | source |"]
    out += ["|---|---|---|---|---|"]
    for rule in VALIDATION_RULES:
        wording = "; ".join(
            f"{_span(span)}: {msg(_VALIDATION_SAMPLE)}" for span, msg in rule.messages
        )
        out.append(_row((rule.rule, ", ".join(rule.keys), _span(rule.span), wording, rule.source)))
    return out


def _kubelet_facts_sections() -> list[str]:
    out = ["", "## Feature gates", "", "| gate | from | stage | default | source |"]
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
    return out


def _removed_flags_section() -> list[str]:
    out = ["", "## Removed kubelet flags (the kubelet refuses to start)", ""]
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
    return out


def _refusals_section() -> list[str]:
    out = ["", "## Flag values the kubelet's flag parser reads (pflag)", ""]
    out += ["| flag | pflag type | kubelet versions | source |", "|---|---|---|---|"]
    for t in FLAG_VALUE_TYPES:
        out.append(f"| `--{t.flag}` | {t.pflag_type} | {_span(t.span)} | {_cell(t.source)} |")
    out += ["", "## Flags that accept only some values", ""]
    out += ["| flag | kubelet versions | accepted | the kubelet's error | source |"]
    out += ["|---|---|---|---|---|"]
    for r in RESTRICTED_FLAG_VALUES:
        wording = r.startup.format(error=r.error)
        out.append(
            f"| `--{r.flag}` | {_span(r.span)} | {', '.join(sorted(r.allowed))} | "
            f"{_cell(wording)} | {_cell(r.source)} |"
        )
    out += ["", "## Eviction signals the threshold parser accepts", ""]
    out += ["| kubelet versions | signals | source |", "|---|---|---|"]
    for e in EVICTION_SIGNALS:
        out.append(f"| {_span(e.span)} | {', '.join(sorted(e.signals))} | {_cell(e.source)} |")
    out += [
        "",
        "Feature gate names are checked against `src/mlnode/knowledge/data/feature_gates.json`",
        "(1.21–1.24, 1.26–1.32, read from kubelet sources; see its `_source`); other versions",
        "get I303 (not checked).",
        "",
    ]
    return out


def render_markdown() -> str:
    sections = (
        _intro,
        _kubelet_section,
        _runtime_section,
        _containerd_section,
        _validation_section,
        _kubelet_facts_sections,
        _removed_flags_section,
        _refusals_section,
    )
    return "\n".join(line for section in sections for line in section())


if __name__ == "__main__":
    print(render_markdown(), end="")
