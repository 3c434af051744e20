"""The lint engine. Input: parsed documents and the node's versions. Output: findings.

It computes the effective settings once and runs every rule of :mod:`mlnode.lint.rules`
over them; the rules, grouped by subject, hold the checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mlnode.formats.base import ParsedDocument
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings, compute_effective
from mlnode.lint.findings import Finding, Severity
from mlnode.lint.rules import RULES

__all__ = ["LintContext", "LintReport", "lint_documents"]


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    effective: EffectiveSettings
    documents: tuple[ParsedDocument, ...] = field(default=())

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out


def lint_documents(docs: Iterable[ParsedDocument], ctx: LintContext) -> LintReport:
    documents = tuple(docs)
    eff = compute_effective(documents, ctx.kubernetes_version, ctx.runtime)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(documents, eff, ctx))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings.sort(
        key=lambda f: (
            order[f.severity],
            f.origin.path if f.origin else "",
            (f.origin.line or 0) if f.origin else 0,
            f.code,
        )
    )
    return LintReport(tuple(findings), eff, documents)
