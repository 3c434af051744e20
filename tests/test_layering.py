"""Pure planning stays pure: the knowledge, formats, lint, planning and GC-planning modules
import no gRPC, HTTP client, runtime client or CLI code (style guide: layering)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "mlnode"
PURE = [
    *sorted((SRC / "knowledge").glob("*.py")),
    *sorted((SRC / "formats").glob("*.py")),
    *sorted((SRC / "lint").glob("*.py")),
    *sorted((SRC / "planning").glob("*.py")),
    *sorted((SRC / "gc").glob("*.py")),
]
FORBIDDEN = (
    "grpc",
    "httpx",
    "httpcore",
    "mlnode.runtime",
    "mlnode.registry",
    "mlnode.cli",
    "typer",
    "rich",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_module_imports_no_io_layer(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert bad == [], f"{path.relative_to(SRC)} imports {bad}"
