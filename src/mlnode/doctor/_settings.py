"""A node's files, as the doctor reads them: lint findings with exact fix commands, the
effective thresholds with provenance, the pull deadline in effect, and a comparison with
the running kubelet's configz.

Pure except :func:`lint_node`, which reads the files (through :mod:`mlnode.rootpath`, never
outside the root).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlnode.doctor._model import Finding, Setting
from mlnode.doctor._pull_texts import deadline_row
from mlnode.errors import InvalidValue
from mlnode.formats.base import ParsedDocument
from mlnode.formats.detect import read_any
from mlnode.formats.kubelet_argv import parse_kubelet_args
from mlnode.knowledge.model import Layer, SettingValue
from mlnode.knowledge.table import kubelet_setting_by_field
from mlnode.knowledge.values import parse_field_value
from mlnode.lint.engine import LintContext, LintReport, lint_documents
from mlnode.lint.findings import Finding as LintFinding
from mlnode.node import UnitCommand, discover_node_files, node_path_of, read_text
from mlnode.units import format_go_duration
from mlnode.versions import RuntimeSpec, Version

__all__ = [
    "THRESHOLD_KEYS",
    "apply_line",
    "configured_deadline",
    "configz_findings",
    "configz_values",
    "lint_findings",
    "lint_node",
    "pull_deadline",
    "runtime_deadline_default",
    "setting_text",
    "thresholds",
]

# The effective settings a report shows (lint's keys), in this order.
THRESHOLD_KEYS = (
    "image_gc_high_threshold_percent",
    "image_gc_low_threshold_percent",
    "image_minimum_gc_age_seconds",
    "image_maximum_gc_age_seconds",
    "eviction_hard",
    "serialize_image_pulls",
    "max_parallel_image_pulls",
)
_DEADLINE = "image_pull_progress_deadline_seconds"
# Lint codes whose fix is the settings moved by `mlnode apply --from-kubelet-args`.
_APPLY_FIXES = {"E101", "E112", "W202", "W205", "W208"}


def lint_node(root: Path, k8s: Version, runtime: RuntimeSpec) -> LintReport:
    """Lint every standard file of the node under ``root`` (as ``mlnode lint --root``)."""
    docs: list[ParsedDocument] = []
    for host_path in discover_node_files(root).all_paths():
        node_path = node_path_of(root, host_path)
        text = read_text(root, node_path, strict=True)
        if text is not None:
            docs.extend(read_any(str(host_path), text))
    ctx = LintContext(kubernetes_version=k8s, runtime=runtime, whole_node=True)
    return lint_documents(docs, ctx)


def _image_flags(argv: Sequence[str]) -> list[str]:
    """The kubelet's image-setting flags on its command line, as written, in order
    (``--name=value`` or ``--name value``); the rest (kubeconfig, node labels) is left."""
    out: list[str] = []
    i = 0
    args = list(argv[1:])
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--"):
            i += 1
            continue
        pair = [tok]
        if "=" not in tok and i + 1 < len(args) and not args[i + 1].startswith("--"):
            pair.append(args[i + 1])
        i += len(pair)
        try:
            settings, ignored = parse_kubelet_args(shlex.join(pair))
        except (InvalidValue, ValueError):
            continue
        if not settings.is_empty() and not ignored:
            out.extend(pair)
    return out


def apply_line(root: Path, command: UnitCommand) -> str | None:
    """The ``mlnode apply`` command that moves the kubelet command line's image settings
    into their homes for this node's versions and removes the flags, or None when the
    command line holds none."""
    flags = _image_flags(command.argv)
    if not flags:
        return None
    parts = ["mlnode", "apply"]
    if root != Path("/"):
        parts += ["--root", str(root)]
    parts += ["--from-kubelet-args", " ".join(flags)]
    return shlex.join(parts)


def lint_findings(report: LintReport, *, node: str, apply_command: str | None) -> list[Finding]:
    out: list[Finding] = []
    for f in report.findings:
        out.append(_from_lint(f, node=node, apply_command=apply_command))
    return out


def _from_lint(f: LintFinding, *, node: str, apply_command: str | None) -> Finding:
    where: tuple[str, ...] = ()
    if f.origin is not None:
        where = (f.origin.path + (f":{f.origin.line}" if f.origin.line else ""),)
    fix = f.fix
    if apply_command is not None and f.code in _APPLY_FIXES:
        fix = f"{apply_command}  (it will: {f.fix}; add --dry-run first to see the diff)"
    return Finding(f.code, f.message, f.consequence, fix, evidence=where, node=node, subject=None)


def _source(sv: SettingValue, default_of: str) -> str:
    if sv.origin is not None:
        return str(sv.origin)
    return f"default of {default_of}" if sv.layer is Layer.DEFAULT else sv.layer.name.lower()


def thresholds(report: LintReport, k8s: Version) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for key in THRESHOLD_KEYS:
        sv = report.effective.kubelet.get(key)
        if sv is not None:
            out[key] = Setting(sv.value, _source(sv, f"kubelet {k8s}"))
    return out


def runtime_deadline_default(runtime: RuntimeSpec) -> tuple[float | None, str]:
    """(the runtime's default pull deadline in seconds, or None when this version has none;
    the source line). The row is the classifier's own (``_pull_texts.deadline_row``)."""
    row = deadline_row(runtime)
    if row is None:
        return None, f"{runtime} has no pull progress deadline"
    since = "/".join(str(v) for v in row.span.since)
    when = f", this default from {since}" if since else ""
    return float(row.default), f"default of {runtime} ({row.name}{when})"


def configured_deadline(report: LintReport) -> float | None:
    """The pull deadline the runtime's config sets, or None when it keeps its default."""
    sv = report.effective.runtime.get(_DEADLINE)
    return float(sv.value) if sv is not None and sv.layer is not Layer.DEFAULT else None


def pull_deadline(report: LintReport, runtime: RuntimeSpec) -> Setting:
    """The deadline in effect: the runtime's configured value, else its default; value
    None when the runtime has none (containerd 1.6)."""
    configured = configured_deadline(report)
    if configured is not None:
        return Setting(configured, _source(report.effective.runtime[_DEADLINE], str(runtime)))
    value, source = runtime_deadline_default(runtime)
    return Setting(value, source)


def configz_values(kubeletconfig: Mapping[str, Any]) -> dict[str, Any]:
    """The live config's fields that are image settings, by lint's keys, in its units (a
    field that does not decode is left out)."""
    out: dict[str, Any] = {}
    for field, raw in kubeletconfig.items():
        row = kubelet_setting_by_field(field)
        if row is None:
            continue
        try:
            out[row.key] = parse_field_value(row, raw)
        except (InvalidValue, ValueError, TypeError):
            continue
    return out


def setting_text(key: str, value: Any) -> str:
    """A setting as an operator writes it: 2m0s, imagefs.available<15%, unset."""
    if value is None:
        return "unset"
    if key.endswith("_seconds") and isinstance(value, int | float):
        return format_go_duration(float(value))
    if isinstance(value, Mapping):
        return ", ".join(f"{k}<{v}" for k, v in sorted(value.items()))
    return str(value)


def configz_findings(
    node: str, report: LintReport, configz: Mapping[str, Any], *, restart_command: str
) -> list[Finding]:
    """D302 when the running kubelet (configz) runs with values its files do not give:
    the files changed after its last start, or it reads other files than these."""
    doc = configz.get("kubeletconfig")
    if not isinstance(doc, Mapping):
        return [
            Finding(
                "D303",
                "the kubelet's configz answer has no kubeletconfig object",
                "the kubelet's live settings cannot be compared with its files",
                "",
                node=node,
            )
        ]
    live = configz_values(doc)
    differ: list[str] = []
    for key in (*THRESHOLD_KEYS, "registry_pull_qps", "registry_burst"):
        sv = report.effective.kubelet.get(key)
        if sv is None or key not in live:
            continue
        want = sv.value
        got = live[key]
        if key == "eviction_hard" and isinstance(want, Mapping) and isinstance(got, Mapping):
            if {k: str(v) for k, v in want.items()} == {k: str(v) for k, v in got.items()}:
                continue
        elif want == got:
            continue
        differ.append(
            f"{key}: files say {setting_text(key, want)} ({_source(sv, 'the kubelet')}), the"
            f" running kubelet has {setting_text(key, got)}"
        )
    if not differ:
        return []
    return [
        Finding(
            "D302",
            f"the running kubelet has {len(differ)} image setting(s) its files do not give",
            "the files were changed after the kubelet last started (it reads them only at"
            " start), or it was started with other files than these",
            restart_command,
            evidence=tuple(differ),
            node=node,
        )
    ]
