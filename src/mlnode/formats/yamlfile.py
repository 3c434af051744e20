"""Reading a YAML config file of mlnode's own (the mirror's, the agent's, a kubeconfig) the
one way: read as UTF-8, refused before parsing when it holds NUL bytes or runaway nesting
(:mod:`~mlnode.formats.textcheck`), parsed round-trip so every value keeps its line; each
failure is one :class:`~mlnode.errors.InputError` naming the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mlnode.errors import InputError
from mlnode.formats.textcheck import check_text

__all__ = ["read_yaml_file", "yaml_line"]


def read_yaml_file(path: Path, *, typ: str = "rt") -> Any:
    """The document in ``path`` (``typ`` "rt": with line numbers; "safe": plain data)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {getattr(e, 'strerror', None) or e}", path=path) from None
    check_text(path, text)
    try:
        return YAML(typ=typ, pure=True).load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InputError(f"not YAML: {problem}", path=path, line=line) from None


def yaml_line(node: Any, key: str | int | None = None) -> int | None:
    """The 1-based line of ``key`` in a round-trip mapping or sequence ``node`` (of the node
    itself when ``key`` is None, or when the key has no position)."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        return int(lc.key(key)[0] if isinstance(key, str) else lc.item(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return int(lc.line) + 1
