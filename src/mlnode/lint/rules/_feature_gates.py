"""Kubelet feature gates: a gate this kubelet does not register, or a locked one flipped.

Both stop the kubelet at start (k8s.io/component-base featuregate ``Set`` / ``SetFromMap``);
which gates each version registers is data (:mod:`mlnode.knowledge.feature_gates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from mlnode.formats.base import ParsedDocument
from mlnode.formats.facts import KubesprayFacts
from mlnode.knowledge.feature_gates import check_feature_gate
from mlnode.knowledge.model import Origin
from mlnode.knowledge.values import go_quote
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding

__all__ = ["feature_gate_rule", "parse_feature_gates_flag"]


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_feature_gates_flag(text: str) -> tuple[dict[str, bool], str | None]:
    """``--feature-gates`` as component-base ``MapStringBool.Set`` reads it: the gates, and
    pflag's error for the first malformed pair (the kubelet stops there)."""
    gates: dict[str, bool] = {}
    for part in text.split(","):
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep:
            error = "malformed pair, expect string=bool"
        elif raw in _TRUE or raw in _FALSE:
            gates[name] = raw in _TRUE
            continue
        else:
            error = (
                f"invalid value of {name}: {raw}, err: strconv.ParseBool: parsing "
                f"{go_quote(raw)}: invalid syntax"
            )
        return gates, f'invalid argument {go_quote(text)} for "--feature-gates" flag: {error}'
    return gates, None


def _gate_settings(
    docs: Sequence[ParsedDocument], problems: list[Finding]
) -> Iterator[tuple[str, bool, Origin]]:
    """Every gate set anywhere, with where: featureGates fields, --feature-gates flags,
    kubespray's gate variables. A flag pflag refuses goes to ``problems``."""
    for doc in docs:
        for occ in doc.fields:
            if occ.field == "featureGates" and isinstance(occ.value, dict):
                for name, on in occ.value.items():
                    if isinstance(on, bool):
                        yield str(name), on, occ.origin
        for flag in doc.flags:
            if flag.name != "feature-gates" or not flag.value:
                continue
            gates, error = parse_feature_gates_flag(flag.value)
            if error is not None:
                problems.append(_unparsable(error, flag.origin))
            for name, on in gates.items():
                yield name, on, flag.origin
        if isinstance(doc.facts, KubesprayFacts):
            for name, on in doc.facts.feature_gates.items():
                yield name, on, Origin(doc.path, None, "kubelet_feature_gates/kube_feature_gates")


def _unparsable(error: str, origin: Origin) -> Finding:
    return Finding(
        "E103",
        error,
        f'the kubelet does not start: "failed to parse kubelet flag: {error}"',
        "write --feature-gates=Name=true,Other=false (true or false for each gate)",
        origin,
    )


def feature_gate_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    k8s = ctx.kubernetes_version
    unchecked: list[str] = []
    problems: list[Finding] = []
    for name, on, origin in _gate_settings(docs, problems):
        verdict = check_feature_gate(name, on, k8s)
        if not verdict.checked:
            unchecked.append(name)
        if verdict.error is None:
            continue
        locked = verdict.error.startswith("cannot set")
        yield Finding(
            "E110" if locked else "E109",
            f"feature gate {name}={'true' if on else 'false'} is refused by kubelet {k8s}",
            f'the kubelet does not start: "{verdict.error}"',
            f"remove {name} (it is locked to its default in this version)"
            if locked
            else f"remove {name}, or check its spelling against the feature gates of this version",
            origin,
        )
    yield from problems
    if unchecked:
        yield Finding(
            "I303",
            f"mlnode has no feature gate list for kubelet {k8s.major}.{k8s.minor}: "
            + ", ".join(sorted(set(unchecked)))
            + " not checked",
            "an unknown gate would stop the kubelet; mlnode cannot tell for these",
            "check them against the feature-gates reference of this version",
            None,
        )
