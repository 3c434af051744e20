"""containerd's config ``version``: one it refuses to start on (E108), one it reads
differently from what the file says (W213). The facts are the rows of
``CONTAINERD_CONFIG_VERSIONS`` in :mod:`mlnode.knowledge.table`; which version containerd
checks across imported files comes from :mod:`mlnode.formats.containerd`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mlnode.formats.base import ParsedDocument
from mlnode.formats.containerd import checked_config_versions, declared_config_versions
from mlnode.knowledge.model import Origin
from mlnode.knowledge.table import (
    ConfigVersionOutcome,
    ContainerdConfigVersion,
    containerd_config_version,
    containerd_import_version_rule,
    containerd_native_config_version,
)
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.versions import RuntimeKind

__all__ = ["config_version_rule"]

_STOPS = (ConfigVersionOutcome.REFUSED, ConfigVersionOutcome.CRASHES)


def config_version_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    runtime = ctx.runtime
    if runtime.kind is not RuntimeKind.CONTAINERD or runtime.version is None:
        return
    declared = declared_config_versions(docs)
    if not declared:
        return
    native = containerd_native_config_version(runtime.version)
    fix = (
        f"write the file as version = {native}, the version {runtime} reads as written"
        f" (`containerd config default` of {runtime.version} prints one)"
    )
    for file_version, origin in checked_config_versions(docs, runtime.version):
        row = containerd_config_version(runtime.version, file_version)
        if row.outcome in _STOPS:
            yield _stops(row, file_version, origin, ctx, fix)
        elif row.outcome is ConfigVersionOutcome.READ_AS_V2:
            yield Finding(
                "W213",
                f"version = {file_version}, but {runtime} reads config version"
                f" {row.versions} as version 2 ({row.source})",
                row.effect,
                fix,
                origin,
            )
    yield from _import_above_root(declared, ctx, fix)


def _stops(
    row: ContainerdConfigVersion,
    file_version: int,
    origin: Origin | None,
    ctx: LintContext,
    fix: str,
) -> Finding:
    verb = "refuses to start on" if row.outcome is ConfigVersionOutcome.REFUSED else "crashes on"
    return Finding(
        "E108",
        f"version = {file_version}: {ctx.runtime} {verb} config version {row.versions}"
        f' ("{row.says(file_version)}"; {row.source})',
        row.effect,
        fix,
        origin,
    )


def _import_above_root(
    declared: list[tuple[int, Origin | None]], ctx: LintContext, fix: str
) -> Iterable[Finding]:
    assert ctx.runtime.version is not None
    rule = containerd_import_version_rule(ctx.runtime.version)
    if rule is None:
        return
    root = next((n for n, _ in declared if n != 0), 0)  # the first non-zero, in load order
    for file_version, origin in declared[1:]:
        if root and file_version > root:
            yield Finding(
                "E108",
                f"version = {file_version} in an imported file, above the root config's"
                f" version {root}: {ctx.runtime} refuses to start"
                f' ("{rule.says(file_version, root)}"; {rule.source})',
                rule.effect,
                f"write every imported file with a version no higher than the root config's"
                f" ({root}), or raise the root config to {file_version}",
                origin,
            )
