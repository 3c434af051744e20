"""The runtime's pull progress deadline: keys in the wrong table or version, and its value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.knowledge.model import Layer
from mlnode.knowledge.table import (
    RUNTIME_SETTINGS,
    runtime_settings_for,
)
from mlnode.lint._context import LintContext, runtime_home_fix
from mlnode.lint.effective import EffectiveSettings, config_version_of, runtime_row_for
from mlnode.lint.findings import Finding
from mlnode.units import format_go_duration, parse_go_duration
from mlnode.versions import RuntimeKind

__all__ = ["deadline_info_rule", "runtime_keys_rule"]


def runtime_keys_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    names = {(r.runtime, r.name) for r in RUNTIME_SETTINGS if r.table}
    for doc in docs:
        if doc.kind not in (DocumentKind.CONTAINERD, DocumentKind.CRIO):
            continue
        file_runtime = (
            RuntimeKind.CONTAINERD if doc.kind is DocumentKind.CONTAINERD else (RuntimeKind.CRIO)
        )
        for rv in doc.runtime_values:
            if (file_runtime, rv.name) not in names:
                continue
            if file_runtime is not ctx.runtime.kind:
                continue
            row = runtime_row_for(rv.name, rv.table, ctx.runtime, config_version_of(doc))
            if row is not None:
                continue
            here = [
                r
                for r in runtime_settings_for(ctx.runtime.kind, ctx.runtime.version)
                if r.name == rv.name
            ]
            if here:
                table = ".".join(here[0].table)
                msg = (
                    f"{rv.name} is under [{'.'.join(rv.table)}], but {ctx.runtime} reads it"
                    f" from [{table}]"
                )
            else:
                msg = f"{ctx.runtime} has no {rv.name}"
                if ctx.runtime.kind is RuntimeKind.CONTAINERD:
                    msg += " (it arrived in containerd 1.7.0)"
            yield Finding(
                "W201",
                msg,
                f"{ctx.runtime.kind.value} ignores unknown keys silently: pulls get no progress "
                "deadline from this line",
                runtime_home_fix("image_pull_progress_deadline_seconds", _seconds(rv.value), ctx)
                if rv.name in ("image_pull_progress_timeout", "pull_progress_timeout")
                else "move the key to the table this version reads",
                rv.origin,
            )


def _seconds(value: Any) -> float:
    try:
        return parse_go_duration(str(value))
    except ValueError:
        return 0.0


def deadline_info_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    rows = [
        r
        for r in runtime_settings_for(ctx.runtime.kind, ctx.runtime.version)
        if r.key == "image_pull_progress_deadline_seconds"
    ]
    if ctx.runtime.kind is RuntimeKind.DOCKER:
        return
    if not rows:
        return
    sv = eff.runtime.get("image_pull_progress_deadline_seconds")
    if sv is not None and sv.layer is Layer.DEFAULT:
        sv = None
    seconds = sv.value if sv is not None else rows[0].default
    where = f"set at {sv.origin}" if sv is not None else f"{ctx.runtime}'s default"
    meaning = (
        "no deadline: a stalled pull hangs until something cancels it"
        if seconds == 0
        else (
            f"a pull with no new byte for {format_go_duration(seconds)} is cancelled and starts "
            "again from byte 0"
        )
    )
    yield Finding(
        "I301",
        f"pull progress deadline is {format_go_duration(seconds)} ({where})",
        meaning,
        "see `mlnode plan` for a deadline fitted to your registry and link",
        sv.origin if sv else None,
    )
