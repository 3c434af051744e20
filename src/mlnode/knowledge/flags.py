"""Which flags each kubelet version accepts, from ``data/kubelet_flags.json``.

The file is data read from the kubelet's sources per release (its ``_source`` says which);
a version missing from it is one we have not read, and callers must say so rather than
guess: an unknown flag stops the kubelet, so a wrong "unknown" is as bad as a missed one.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from mlnode.versions import Version

__all__ = ["known_flags"]


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("mlnode.knowledge").joinpath("data/kubelet_flags.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def known_flags(version: Version) -> frozenset[str] | None:
    """The flag names (no dashes) kubelet ``version`` accepts, or None when not on record."""
    entry = _data().get("versions", {}).get(f"{version.major}.{version.minor}")
    if not entry or not entry.get("complete", True):
        return None
    return frozenset(entry["flags"])
