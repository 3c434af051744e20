"""Reading operator-given files into parsed documents, with one clear error per bad input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlnode.errors import InputError
from mlnode.formats.base import ParsedDocument

__all__ = ["read_documents", "read_file_text"]


def read_file_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=path) from None
    except PermissionError:
        raise InputError("permission denied", path=path) from None
    except OSError as e:
        raise InputError(e.strerror or str(e), path=path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError("not UTF-8 text", path=path, line=line) from None


def read_documents(paths: Sequence[Path]) -> list[ParsedDocument]:
    """Detect each file's kind from its content and parse it."""
    from mlnode.formats.detect import read_any

    docs: list[ParsedDocument] = []
    for path in paths:
        text = read_file_text(path)
        docs.extend(read_any(str(path), text))
    return docs
