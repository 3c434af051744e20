"""The runtime's image keys: keys in the wrong table or version (W201), the keys of the
plugin tables mlnode lists (the transfer plugin), and the pull deadline in effect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlnode.formats.base import DocumentKind, ParsedDocument, RuntimeValueOccurrence
from mlnode.knowledge.model import Layer
from mlnode.knowledge.table import (
    RUNTIME_SETTINGS,
    containerd_knows_plugin_table,
    containerd_plugin_keys,
    containerd_unknown_keys,
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
        if file_runtime is not ctx.runtime.kind:
            continue
        plugin_tables: dict[tuple[str, ...], list[RuntimeValueOccurrence]] = {}
        for rv in doc.runtime_values:
            plugin = rv.table[:2]
            if file_runtime is RuntimeKind.CONTAINERD and containerd_knows_plugin_table(plugin):
                plugin_tables.setdefault(plugin, []).append(rv)
                continue
            if (file_runtime, rv.name) not in names:
                continue
            row = runtime_row_for(rv.name, rv.table, ctx.runtime, config_version_of(doc))
            if row is None:
                yield _misplaced(rv, ctx)
        for table, values in plugin_tables.items():
            yield from _plugin_table(table, values, ctx)


def _misplaced(rv: RuntimeValueOccurrence, ctx: LintContext) -> Finding:
    """W201 for an image key in a table this runtime version does not read it from."""
    here = [
        r for r in runtime_settings_for(ctx.runtime.kind, ctx.runtime.version) if r.name == rv.name
    ]
    any_row = next(r for r in RUNTIME_SETTINGS if r.name == rv.name)
    if here:
        msg = (
            f"{rv.name} is under [{_table(rv.table)}], but {ctx.runtime} reads it"
            f" from [{_table(here[0].table)}]"
        )
    else:
        msg = f"{ctx.runtime} has no {rv.name}"
        if ctx.runtime.kind is RuntimeKind.CONTAINERD:
            msg += " (it arrived in containerd 1.7.0)"
    return Finding(
        "W201",
        msg,
        f"{_ignores(ctx)}: {(here[0] if here else any_row).unread}",
        runtime_home_fix("image_pull_progress_deadline_seconds", _seconds(rv.value), ctx)
        if rv.name in ("image_pull_progress_timeout", "pull_progress_timeout")
        else "move the key to the table this version reads",
        rv.origin,
    )


def _plugin_table(
    table: tuple[str, ...], values: list[RuntimeValueOccurrence], ctx: LintContext
) -> Iterable[Finding]:
    """The keys of a containerd plugin table whose keys mlnode lists (the transfer plugin):
    nothing for a key this containerd reads there, else W201 saying what is wrong (once for
    the table when the plugin reads none of them)."""
    assert ctx.runtime.version is not None
    keys = containerd_plugin_keys(table, ctx.runtime.version)
    if keys is None:
        yield Finding(
            "W201",
            f"{ctx.runtime} has no plugin {table[1]}: nothing under [{_table(table)}] is read",
            f"{_ignores(ctx)}: this table does nothing on this node",
            "remove the table, or write it for the containerd that runs",
            values[0].origin,
        )
        return
    if not keys.read:
        what = "; ".join(f"{k} sets the {w}" for k, w in keys.what.items())
        yield Finding(
            "W201",
            f"{ctx.runtime} declares the keys of [{_table(table)}] but never reads them"
            f" ({keys.source})",
            "this table does nothing" + (f" ({what})" if what else ""),
            keys.fix,
            values[0].origin,
        )
        return
    for rv in values:
        key = rv.table[2] if len(rv.table) > 2 else rv.name  # a sub-table is a key too
        if key in keys.keys:
            continue
        if len(rv.table) == 2 and any(
            r.runtime is RuntimeKind.CONTAINERD and r.name == rv.name for r in RUNTIME_SETTINGS
        ):
            yield _misplaced(rv, ctx)  # an image key of the CRI plugin: say where it goes
            continue
        yield Finding(
            "W201",
            f"[{_table(table)}] has no key {key} in {ctx.runtime} (its keys:"
            f" {', '.join(sorted(keys.keys))}; {keys.source})",
            f"{_ignores(ctx)}: this line does nothing on this node",
            "remove the key, or move it to the plugin that reads it",
            rv.origin,
        )


def _ignores(ctx: LintContext) -> str:
    if ctx.runtime.kind is RuntimeKind.CONTAINERD and ctx.runtime.version is not None:
        return containerd_unknown_keys(ctx.runtime.version).consequence
    return f"{ctx.runtime.kind.value} ignores unknown keys silently"


def _table(table: tuple[str, ...]) -> str:
    return ".".join(f'"{t}"' if "." in t else t for t in table)


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
