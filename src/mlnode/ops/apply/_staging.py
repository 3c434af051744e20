"""The files a plan is building: what each will hold, why, and which service reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlnode.ops.apply._model import NodeLayout

__all__ = ["Staging"]


@dataclass
class Staging:
    """New texts by node path on top of the layout's files, with reasons and units."""

    layout: NodeLayout
    new: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def current(self, path: str) -> str | None:
        return self.new.get(path, self.layout.files.get(path))

    def stage(self, path: str, text: str, reason: str, unit: str = "kubelet") -> None:
        if text == self.current(path):
            return
        self.new[path] = text
        self.reasons[path] = "; ".join(filter(None, [self.reasons.get(path), reason]))
        self.units[path] = unit
