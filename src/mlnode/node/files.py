"""Every kubelet and runtime file of a node, for ``mlnode lint --root`` (lenient discovery).

:func:`discover_node_files` looks for the standard locations of
:data:`mlnode.formats.node_paths.NODE_PATHS` under a root and, through
:func:`mlnode.node.discovery.read_kubelet_command` (the same reading ``mlnode apply`` does,
in lenient mode), works out the kubelet's unit, EnvironmentFiles, ``--config`` and
``--config-dir``. Nothing missing or unreadable raises: it becomes a note.
:func:`runtime_data_dir` says where a runtime keeps its images.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlnode.formats.node_paths import NODE_PATHS, RUNTIME_DATA_DIRS, NodeFileRole
from mlnode.node.discovery import (
    CONTAINERD_CONFIG,
    CRIO_DIR,
    containerd_config_files,
    containerd_hosts_files,
    kubelet_dropins,
    read_kubelet_command,
)
from mlnode.rootpath import read_path
from mlnode.versions import RuntimeKind

__all__ = ["NodeFiles", "discover_node_files", "runtime_data_dir"]


@dataclass(frozen=True)
class NodeFiles:
    """What :func:`discover_node_files` found. Paths are real paths under ``root``."""

    root: Path
    by_role: Mapping[NodeFileRole, tuple[Path, ...]] = field(default_factory=dict)
    kubelet_unit: Path | None = None
    kubelet_unit_dropins: tuple[Path, ...] = ()  # in the order systemd applies them
    kubelet_env_files: tuple[Path, ...] = ()  # EnvironmentFile= of the unit that exist
    kubelet_argv: tuple[str, ...] = ()  # ExecStart= after $VAR expansion, without argv[0]
    kubelet_config: Path | None = None  # --config, else the first standard file present
    kubelet_config_from_flag: bool = False
    kubelet_config_dir: Path | None = None  # --config-dir
    notes: tuple[str, ...] = ()

    def files(self, role: NodeFileRole) -> tuple[Path, ...]:
        return tuple(self.by_role.get(role, ()))

    def all_paths(self) -> tuple[Path, ...]:
        """Every file found (no directories), without duplicates, in this order: the unit
        and its drop-ins, the env files the unit reads, other standard env files, the
        kubelet config and its drop-ins, containerd's config, its imports and its registry
        hosts files, CRI-O's."""
        ordered: list[Path] = []
        if self.kubelet_unit is not None:
            ordered.append(self.kubelet_unit)
        ordered += self.kubelet_unit_dropins
        ordered += self.kubelet_env_files
        ordered += self.files(NodeFileRole.KUBELET_ENV)
        if self.kubelet_config is not None:
            ordered.append(self.kubelet_config)
        for role in (
            NodeFileRole.KUBELET_CONFIG,
            NodeFileRole.KUBELET_DROPIN,
            NodeFileRole.CONTAINERD_CONFIG,
            NodeFileRole.CONTAINERD_DROPIN,
            NodeFileRole.CONTAINERD_HOSTS,
            NodeFileRole.CRIO_CONFIG,
            NodeFileRole.CRIO_DROPIN,
        ):
            ordered += self.files(role)
        return tuple(p for p in dict.fromkeys(ordered) if p.is_file())


def _expand(root: Path, pattern: str) -> list[Path]:
    """The standard location ``pattern`` (one ``*`` in its last component) under ``root``."""
    head, _, name = pattern.rpartition("/")
    if "*" not in name:
        real = read_path(root, pattern)
        return [real] if real.exists() else []
    parent = read_path(root, head or "/")
    if not parent.is_dir():
        return []
    prefix, _, suffix = name.partition("*")
    out = []
    for entry in sorted(os.listdir(parent)):
        p = parent / entry
        if entry.startswith(prefix) and entry.endswith(suffix) and (p.is_file() or p.is_dir()):
            out.append(p)
    return out


def _standard_files(root: Path, notes: list[str]) -> dict[NodeFileRole, list[Path]]:
    by_role: dict[NodeFileRole, list[Path]] = {}
    for np in NODE_PATHS:
        for p in _expand(root, np.path):
            lst = by_role.setdefault(np.role, [])
            if p not in lst:
                lst.append(p)
    crio_dir = read_path(root, CRIO_DIR)
    if crio_dir.is_dir():
        from mlnode.formats.crio import crio_dropin_files

        by_role[NodeFileRole.CRIO_DROPIN] = crio_dropin_files(crio_dir)
    # Only the files config.toml imports are read by containerd (conf.d is not special).
    by_role.pop(NodeFileRole.CONTAINERD_DROPIN, None)
    if read_path(root, CONTAINERD_CONFIG).is_file():
        found, problems = containerd_config_files(root, strict=False)
        notes += problems
        if not problems:
            by_role[NodeFileRole.CONTAINERD_DROPIN] = [read_path(root, p) for p in found[1:]]
        roots = _config_path_roots(root, found if not problems else [CONTAINERD_CONFIG])
    else:
        roots = []
    # Found by containerd_hosts_files (config_path's directories too), not by the pattern.
    by_role.pop(NodeFileRole.CONTAINERD_HOSTS, None)
    hosts = containerd_hosts_files(root, roots)
    if hosts:
        by_role[NodeFileRole.CONTAINERD_HOSTS] = [read_path(root, p) for p in hosts]
    return by_role


def _config_path_roots(root: Path, files: list[str]) -> list[str]:
    """Every root of every CRI ``registry.config_path`` in containerd's files (lenient: a
    file that does not parse gives none; lint reports it)."""
    from mlnode.formats.containerd import config_path_roots

    out: list[str] = []
    for node in files:
        try:
            data = tomllib.loads(read_path(root, node).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
            continue
        plugins = data.get("plugins")
        if not isinstance(plugins, dict):
            continue
        for plugin in ("cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"):
            table = plugins.get(plugin)
            registry = table.get("registry") if isinstance(table, dict) else None
            if isinstance(registry, dict):
                out += config_path_roots(registry.get("config_path"))
    return out


def discover_node_files(root: Path) -> NodeFiles:
    """Find the standard files under ``root`` and the kubelet's --config/--config-dir."""
    notes: list[str] = []
    by_role = _standard_files(root, notes)
    command = read_kubelet_command(root, strict=False)
    notes += command.notes
    units = [read_path(root, p) for p in command.unit_files]

    config: Path | None = None
    from_flag = False
    flag_config = command.flag("config")
    if flag_config:
        config = read_path(root, flag_config)
        from_flag = True
        if not config.is_file():
            notes.append(f"--config={flag_config} does not exist on the node")
    else:
        standard = by_role.get(NodeFileRole.KUBELET_CONFIG, [])
        config = standard[0] if standard else None
    config_dir: Path | None = None
    flag_dir = command.flag("config-dir")
    if flag_dir:
        config_dir = read_path(root, flag_dir)
        if config_dir.is_dir():
            by_role[NodeFileRole.KUBELET_DROPIN] = [
                read_path(root, p) for p in kubelet_dropins(root, flag_dir)
            ]
        else:
            notes.append(f"--config-dir={flag_dir} does not exist on the node")
    return NodeFiles(
        root=root,
        by_role={k: tuple(v) for k, v in by_role.items()},
        kubelet_unit=units[0] if units else None,
        kubelet_unit_dropins=tuple(units[1:]),
        kubelet_env_files=tuple(read_path(root, p) for p in command.env_files_read),
        kubelet_argv=command.argv[1:],
        kubelet_config=config,
        kubelet_config_from_flag=from_flag,
        kubelet_config_dir=config_dir,
        notes=tuple(notes),
    )


def _toml_str(path: Path, *keys: str) -> str | None:
    try:
        node: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        # A config we cannot read is not this function's business: the default applies.
        return None
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) and node else None


def runtime_data_dir(kind: RuntimeKind, root: Path) -> tuple[PurePosixPath, str]:
    """Where ``kind`` keeps images (a node path) and where that was read ("default" if not).

    containerd: ``root`` in ``/etc/containerd/config.toml``. CRI-O: ``[crio] root`` in
    ``/etc/crio/crio.conf`` and its ``crio.conf.d/*.conf`` drop-ins (later files win), else
    ``[storage] graphroot`` in ``/etc/containers/storage.conf``. Docker's ``data-root`` is
    JSON and not read: the default is returned.
    """
    candidates: list[tuple[str, tuple[str, ...]]] = []
    if kind is RuntimeKind.CONTAINERD:
        candidates = [(CONTAINERD_CONFIG, ("root",))]
    elif kind is RuntimeKind.CRIO:
        dropins = read_path(root, CRIO_DIR)
        confs = ["/etc/crio/crio.conf"] + (
            [f"{CRIO_DIR}/{p.name}" for p in sorted(dropins.glob("*.conf"))]
            if dropins.is_dir()
            else []
        )
        # Later CRI-O files win, so look at them first; storage.conf is the fallback.
        candidates = [(c, ("crio", "root")) for c in reversed(confs)]
        candidates.append(("/etc/containers/storage.conf", ("storage", "graphroot")))
    for conf, keys in candidates:
        found = _toml_str(read_path(root, conf), *keys)
        if found:
            return PurePosixPath(found), conf
    return RUNTIME_DATA_DIRS[kind], "default"
