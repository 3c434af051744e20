"""Reading what deploy/ ships: the Kubernetes objects, the ConfigMap's files, the unit, the
Containerfile (plain parsers: the tests check the files as they are written)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE_DIR = REPO / "deploy/kubernetes"
CONTAINERFILE = REPO / "deploy/container/Containerfile"
UNIT = REPO / "deploy/systemd/mlnode-agent.service"
NAMESPACE = "mlnode-system"
SERVICE_ACCOUNT = "mlnode-agent"


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBE_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def the(kind: str, name: str) -> dict[str, Any]:
    found = [o for _, o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def daemonset() -> dict[str, Any]:
    return the("DaemonSet", "mlnode-agent")


def agent_container() -> dict[str, Any]:
    containers = daemonset()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def configmap_file(key: str) -> str:
    data: dict[str, str] = the("ConfigMap", "mlnode-agent")["data"]
    return data[key]


# --- systemd unit: sections of (key, value) pairs; a key may repeat -------------------------
def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


# --- Containerfile: stages with their instructions ------------------------------------------
@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[tuple[str, str], ...]  # (INSTRUCTION, arguments)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def containerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in CONTAINERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "dangling continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[tuple[str, str]] | None = None
    base = name = None
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = re.sub(r"\s+", " ", rest.strip())
        if instruction == "FROM":
            if current is not None and base is not None:
                stages.append(Stage(base, name, tuple(current)))
            m = re.fullmatch(r"(\S+)(?: AS (\S+))?", rest, flags=re.IGNORECASE)
            assert m, rest
            base, name = m.group(1), m.group(2)
            base = re.sub(r"\$\{(\w+)\}", lambda g: global_args[g.group(1)], base)
            current = []
        elif current is None:
            assert instruction == "ARG", f"{instruction} before the first FROM"
            k, _, v = rest.partition("=")
            global_args[k] = v
        else:
            current.append((instruction, rest))
    if current is not None and base is not None:
        stages.append(Stage(base, name, tuple(current)))
    return global_args, stages
