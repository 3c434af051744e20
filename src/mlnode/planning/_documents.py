"""Read a small YAML or JSON document and remember the line of every key.

Profiles and plans are short files a person edits or a tool wrote; when a value in them is
wrong, the error must name ``file:line``. ruamel.yaml's round-trip loader keeps the line of
every mapping key. JSON is parsed with :mod:`json` first (strict, and its syntax errors carry
line and column), then read again with ruamel.yaml, which accepts JSON as YAML 1.2 flow
syntax, only to learn where the keys are.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mlnode.errors import InputError
from mlnode.formats.textcheck import check_text, check_yaml_expansion, nesting_error

__all__ = ["Document", "load_document"]


@dataclass(frozen=True)
class Document:
    """A top-level mapping and the 1-based line of each key, by key path."""

    path: Path
    data: Mapping[str, Any]
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, *keys: str) -> int | None:
        """The line of ``keys`` (a key path), else of its nearest parent that has one."""
        k = tuple(keys)
        while k:
            if k in self.lines:
                return self.lines[k]
            k = k[:-1]
        return None

    def error(self, message: str, *keys: str) -> InputError:
        return InputError(message, path=self.path, line=self.line(*keys))


def _plain(node: Any) -> Any:
    """ruamel's CommentedMap/CommentedSeq/ScalarFloat... → plain dict/list/int/float/str."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _collect_lines(node: Any, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    lc = getattr(node, "lc", None)
    if isinstance(node, Mapping) and lc is not None:
        for key, value in node.items():
            try:
                line0, _col = lc.key(key)
            except (KeyError, TypeError, AttributeError):
                continue
            path = (*prefix, str(key))
            out[path] = int(line0) + 1
            _collect_lines(value, path, out)


def _yaml_tree(text: str, path: Path) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    check_yaml_expansion(path, [yaml.compose(text)])  # aliases ("billion laughs")
    return yaml.load(text)


def load_document(path: Path | str, *, what: str) -> Document:
    """Load ``path`` (``.json`` → JSON, anything else → YAML); its top level must be a mapping.

    ``what`` names the document in errors ("profile", "plan"). Raises InputError with the
    line for unreadable files, syntax errors and a top level that is not a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such {what} file", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", path=p) from e

    check_text(p, text)
    try:
        return _parse(p, text, what)
    except RecursionError:
        raise nesting_error(p, text) from None


def _parse(p: Path, text: str, what: str) -> Document:
    lines: dict[tuple[str, ...], int] = {}
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(
                f"not valid JSON: {e.msg} (column {e.colno})", path=p, line=e.lineno
            ) from e
        # Valid JSON that ruamel cannot read: errors just lose their line numbers.
        with contextlib.suppress(YAMLError):
            _collect_lines(_yaml_tree(text, p), (), lines)
    else:
        try:
            tree = _yaml_tree(text, p)
        except MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = e.problem or e.context or "syntax error"
            raise InputError(f"not valid YAML: {problem}", path=p, line=line) from e
        except YAMLError as e:
            raise InputError(f"not valid YAML: {e}", path=p) from e
        _collect_lines(tree, (), lines)
        data = _plain(tree)

    if data is None:
        raise InputError(f"empty {what}", path=p)
    if not isinstance(data, dict):
        raise InputError(
            f"a {what} must be a mapping of keys to values, not {type(data).__name__}",
            path=p,
            line=1,
        )
    return Document(p, data, lines)
