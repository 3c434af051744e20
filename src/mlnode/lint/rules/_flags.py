"""Kubelet flags: removed, deprecated, set as a flag where a config field exists, or unknown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlnode.formats.base import FlagOccurrence, ParsedDocument
from mlnode.knowledge.flags import known_flags
from mlnode.knowledge.table import (
    KubeletSetting,
    RemovedFlag,
    kubelet_setting,
    kubelet_setting_by_flag,
    removed_flag,
    restricted_flag_values,
)
from mlnode.knowledge.values import go_quote, parse_flag_value
from mlnode.lint._context import LintContext, runtime_home_fix
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.versions import RuntimeKind

__all__ = ["flag_rule"]

_DEADLINE = "image_pull_progress_deadline_seconds"


def flag_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    k8s = ctx.kubernetes_version
    accepted = known_flags(k8s)
    unchecked: list[str] = []
    for doc in docs:
        for flag in doc.flags:
            removed = removed_flag(flag.name, k8s)
            row = kubelet_setting_by_flag(flag.name)
            if removed is not None:
                yield _removed(flag, removed, row, ctx)
                continue
            deprecated = _deprecated(flag, row, ctx)
            if deprecated is not None:
                yield deprecated
            restricted = _restricted(flag, ctx)
            if restricted is not None:
                yield restricted
            if accepted is None:
                if row is None and flag.name not in ("config", "config-dir", "feature-gates"):
                    unchecked.append(flag.name)
                continue
            if flag.name not in accepted:
                yield Finding(
                    "E102",
                    f"--{flag.name} is not a flag of kubelet {k8s}",
                    'the kubelet does not start: "failed to parse kubelet flag: unknown flag: '
                    f'--{flag.name}"',
                    "remove it, or check its spelling against `kubelet --help`",
                    flag.origin,
                )
    if unchecked:
        yield Finding(
            "I302",
            f"mlnode has no flag list for kubelet {k8s.major}.{k8s.minor}: "
            + ", ".join(f"--{n}" for n in sorted(set(unchecked)))
            + " not checked",
            "an unknown flag would stop the kubelet; mlnode cannot tell for these",
            "check them against `kubelet --help` of this version",
            None,
        )


def _removed(
    flag: FlagOccurrence, removed: RemovedFlag, row: KubeletSetting | None, ctx: LintContext
) -> Finding:
    """E101: a flag this kubelet no longer has; the fix says where its value goes now."""
    fix = removed.fix
    if row is not None and row.key == _DEADLINE:
        value = _flag_value(row.key, flag.value)
        if value is not None:
            fix = runtime_home_fix(row.key, value, ctx) + f" (and remove {flag.text})"
    return Finding(
        "E101",
        f"--{flag.name} was removed in Kubernetes {removed.removed_in} "
        f"({removed.why}); this is kubelet {ctx.kubernetes_version}",
        'the kubelet does not start: "failed to parse kubelet flag: unknown flag: '
        f'--{flag.name}" (a systemd restart loop; the node goes NotReady)',
        fix,
        flag.origin,
    )


def _restricted(flag: FlagOccurrence, ctx: LintContext) -> Finding | None:
    """E112: a flag that parses any string, but whose value this kubelet then refuses."""
    rule = restricted_flag_values(flag.name, ctx.kubernetes_version)
    if rule is None or flag.value is None or flag.value in rule.allowed:
        return None
    error = rule.error.format(value=go_quote(flag.value))
    return Finding(
        "E112",
        f"{flag.text}: kubelet {ctx.kubernetes_version} accepts only "
        + " or ".join(f"--{flag.name}={a}" for a in sorted(rule.allowed)),
        f'the kubelet does not start: "{rule.startup.format(error=error)}"',
        f"use --{flag.name}=remote with --container-runtime-endpoint, or remove {flag.text}",
        flag.origin,
    )


def _deprecated(
    flag: FlagOccurrence, row: KubeletSetting | None, ctx: LintContext
) -> Finding | None:
    """W202, W203 or W205 for a deprecated flag that still parses; None when none applies."""
    k8s = ctx.kubernetes_version
    if row is None or row.flag_deprecated_since is None:
        return None
    if row.key == _DEADLINE and ctx.runtime.kind is not RuntimeKind.DOCKER:
        value = _flag_value(row.key, flag.value)
        return Finding(
            "W202",
            f"--{flag.name} only ever worked with dockershim; the runtime here is {ctx.runtime}",
            "the flag is accepted but does nothing: pulls keep the runtime's own deadline",
            (runtime_home_fix(row.key, value, ctx) if value is not None else "")
            + f"; remove {flag.text}",
            flag.origin,
        )
    if row.key == _DEADLINE and k8s.at_least(row.flag_deprecated_since):
        return Finding(
            "W203",
            f"--{flag.name} is deprecated since {row.flag_deprecated_since} and is"
            " removed in 1.24 with dockershim",
            "an upgrade to 1.24 with this flag stops the kubelet from starting",
            "plan the move to cri-dockerd, containerd >= 1.7 or CRI-O, where the "
            "deadline lives in the runtime",
            flag.origin,
        )
    # kubeadm join reads no KubeletConfiguration from its file: kubeletExtraArgs is the
    # per-node home there (formats._kubeadm_read), so the flag is no drift from a config file.
    from_join = (flag.origin.detail or "").startswith("JoinConfiguration.")
    if row.field and row.field_span.contains(k8s) and not from_join:
        return Finding(
            "W205",
            f"{flag.text} sets {row.field} as a flag",
            "it works, but the flag is deprecated and silently overrides the "
            "config file, so the two drift apart",
            f"set {row.field} in the KubeletConfiguration (a --config-dir drop-in "
            f"where supported) and remove {flag.text}",
            flag.origin,
        )
    return None


def _flag_value(key: str, text: str | None) -> Any:
    try:
        return parse_flag_value(kubelet_setting(key), text)
    except ValueError:
        return None
