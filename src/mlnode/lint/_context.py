"""What every lint rule gets: the node's versions and sizes, and where a setting goes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mlnode.formats.base import ParsedDocument
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import place
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.versions import RuntimeSpec, Version

__all__ = ["LintContext", "Rule", "runtime_home_fix"]


@dataclass(frozen=True)
class LintContext:
    kubernetes_version: Version
    runtime: RuntimeSpec
    image_disk_bytes: int | None = None
    largest_image_bytes: int | None = None
    # True when the documents are the whole node (--root): absence of something is then
    # evidence, not just "not in the files given".
    whole_node: bool = False
    # The node mirror's URL (``apply --mirror``): W215 checks that one is first in hosts.toml
    # files; without it, any loopback plain-HTTP host other than the registry counts.
    mirror_url: str | None = None


def runtime_home_fix(key: str, value: Any, ctx: LintContext) -> str:
    """Where this setting goes for the node's versions, as an instruction."""
    placement = place(ImageSettings(**{key: value}), ctx.kubernetes_version, ctx.runtime)
    parts = []
    for pv in placement.runtime_values:
        table = ".".join(f'"{t}"' if "." in t else t for t in pv.row.table)
        if pv.row.table:
            parts.append(
                f"set {pv.row.name} = {_toml(pv.value)} under [{table}] in the"
                f" {ctx.runtime.kind.value} config ({ctx.runtime})"
            )
        else:
            parts.append(f"pass --{pv.row.name}={pv.value} to {ctx.runtime.kind.value}")
    for fieldname, fv in placement.kubelet_fields.items():
        parts.append(f"set {fieldname}: {fv} in the KubeletConfiguration")
    for flag, fv in placement.kubelet_flags.items():
        parts.append(f"pass --{flag}={fv}")
    for refusal in placement.refusals:
        parts.append(f"no home on this node: {refusal.reason}")
    return "; ".join(parts)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


Rule = Callable[[Sequence[ParsedDocument], EffectiveSettings, LintContext], Iterable[Finding]]
