"""Where a node keeps its kubelet and runtime settings, and which of those files exist.

:data:`NODE_PATHS` is the table of standard locations (absolute paths on the node);
:func:`discover_node_files` looks for them under a ``root`` (``/`` on the node, a temp tree
in tests) and works out the kubelet's ``--config`` and ``--config-dir`` the way systemd and
the kubelet would: the unit file that wins (``/etc`` over ``/run`` over ``/usr/lib`` over
``/lib``), its drop-ins (``kubelet.service.d/*.conf`` from all those directories, a name
in a higher directory masking the same name below, applied in file-name order), their
``Environment=`` and ``EnvironmentFile=`` (files override ``Environment=``; later files
override earlier ones), and the last ``ExecStart=`` with ``$VAR`` expanded. The kubelet
takes the last ``--config``/``--config-dir`` on its command line (pflag).
"""

from __future__ import annotations

import enum
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlnode.errors import InputError
from mlnode.versions import RuntimeKind

__all__ = [
    "NODE_PATHS",
    "RUNTIME_DATA_DIRS",
    "NodeFileRole",
    "NodeFiles",
    "NodePath",
    "discover_node_files",
    "node_path",
    "runtime_data_dir",
]


class NodeFileRole(enum.StrEnum):
    KUBELET_ENV = "kubelet-env"  # EnvironmentFile= files with KUBELET_* variables
    KUBELET_CONFIG = "kubelet-config"  # the --config file
    KUBELET_CONFIG_DIR = "kubelet-config-dir"  # a --config-dir directory
    KUBELET_DROPIN = "kubelet-dropin"  # *.conf inside the --config-dir
    KUBELET_UNIT = "kubelet-unit"  # kubelet.service
    KUBELET_UNIT_DROPIN = "kubelet-unit-dropin"  # kubelet.service.d/*.conf
    CONTAINERD_CONFIG = "containerd-config"
    CONTAINERD_DROPIN = "containerd-dropin"  # files config.toml imports (conf.d/*.toml if it does)
    CRIO_CONFIG = "crio-config"
    CRIO_DROPIN = "crio-dropin"


@dataclass(frozen=True)
class NodePath:
    """A standard location; ``path`` is absolute on the node and may hold one ``*``."""

    path: str
    role: NodeFileRole
    note: str


# systemd's unit search path for system units, highest priority first (systemd.unit(5)).
_UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)

NODE_PATHS: tuple[NodePath, ...] = (
    NodePath("/etc/default/kubelet", NodeFileRole.KUBELET_ENV, "KUBELET_EXTRA_ARGS (DEB)"),
    NodePath("/etc/sysconfig/kubelet", NodeFileRole.KUBELET_ENV, "KUBELET_EXTRA_ARGS (RPM)"),
    NodePath(
        "/var/lib/kubelet/kubeadm-flags.env",
        NodeFileRole.KUBELET_ENV,
        "KUBELET_KUBEADM_ARGS, written by kubeadm init/join",
    ),
    NodePath("/etc/kubernetes/kubelet.env", NodeFileRole.KUBELET_ENV, "kubespray KUBELET_ARGS"),
    NodePath(
        "/var/lib/kubelet/config.yaml",
        NodeFileRole.KUBELET_CONFIG,
        "kubeadm's --config (overwritten by kubeadm upgrade)",
    ),
    NodePath(
        "/etc/kubernetes/kubelet-config.yaml", NodeFileRole.KUBELET_CONFIG, "kubespray's --config"
    ),
    NodePath(
        "/etc/kubernetes/kubelet.conf.d",
        NodeFileRole.KUBELET_CONFIG_DIR,
        "conventional --config-dir (the kubelet has no default; it reads *.conf only)",
    ),
    *(
        NodePath(f"{d}/kubelet.service", NodeFileRole.KUBELET_UNIT, "the kubelet unit")
        for d in _UNIT_DIRS
    ),
    *(
        NodePath(
            f"{d}/kubelet.service.d/*.conf",
            NodeFileRole.KUBELET_UNIT_DROPIN,
            "unit drop-ins (10-kubeadm.conf: /usr/lib with current packages, /etc with older)",
        )
        for d in _UNIT_DIRS
    ),
    NodePath("/etc/containerd/config.toml", NodeFileRole.CONTAINERD_CONFIG, "containerd config"),
    NodePath(
        "/etc/containerd/conf.d/*.toml",
        NodeFileRole.CONTAINERD_DROPIN,
        "read only when config.toml imports it (containerd config default does since 2.2)",
    ),
    NodePath("/etc/crio/crio.conf", NodeFileRole.CRIO_CONFIG, "CRI-O main config"),
    NodePath(
        "/etc/crio/crio.conf.d/*",
        NodeFileRole.CRIO_DROPIN,
        "every file, recursively, in lexical order; the last wins",
    ),
)


def node_path(root: Path, path: str) -> Path:
    """The real location of the node path ``path`` under ``root``."""
    return root / path.lstrip("/")


# Where each runtime keeps its images when its config does not say.
RUNTIME_DATA_DIRS: dict[RuntimeKind, PurePosixPath] = {
    RuntimeKind.CONTAINERD: PurePosixPath("/var/lib/containerd"),
    RuntimeKind.CRIO: PurePosixPath("/var/lib/containers/storage"),
    RuntimeKind.CRI_DOCKERD: PurePosixPath("/var/lib/docker"),
    RuntimeKind.DOCKER: PurePosixPath("/var/lib/docker"),
}


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
        candidates = [("/etc/containerd/config.toml", ("root",))]
    elif kind is RuntimeKind.CRIO:
        dropins = node_path(root, "/etc/crio/crio.conf.d")
        confs = ["/etc/crio/crio.conf"] + (
            ["/" + str(p.relative_to(root)) for p in sorted(dropins.glob("*.conf"))]
            if dropins.is_dir()
            else []
        )
        # Later CRI-O files win, so look at them first; storage.conf is the fallback.
        candidates = [(c, ("crio", "root")) for c in reversed(confs)]
        candidates.append(("/etc/containers/storage.conf", ("storage", "graphroot")))
    for conf, keys in candidates:
        found = _toml_str(node_path(root, conf), *keys)
        if found:
            return PurePosixPath(found), conf
    return RUNTIME_DATA_DIRS[kind], "default"


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
        kubelet config and its drop-ins, containerd's config and its imports, CRI-O's."""
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
            NodeFileRole.CRIO_CONFIG,
            NodeFileRole.CRIO_DROPIN,
        ):
            ordered += self.files(role)
        return tuple(p for p in dict.fromkeys(ordered) if p.is_file())


def _expand(root: Path, pattern: str) -> list[Path]:
    real = node_path(root, pattern)
    if "*" not in real.name:
        return [real] if real.exists() else []
    parent = real.parent
    if not parent.is_dir():
        return []
    suffix = real.name.split("*", 1)[1]
    prefix = real.name.split("*", 1)[0]
    out = []
    for name in sorted(os.listdir(parent)):
        p = parent / name
        if name.startswith(prefix) and name.endswith(suffix) and (p.is_file() or p.is_dir()):
            out.append(p)
    return out


def _unit_and_dropins(root: Path, notes: list[str]) -> tuple[Path | None, list[Path]]:
    unit: Path | None = None
    seen_real: set[str] = set()
    for d in _UNIT_DIRS:
        p = node_path(root, f"{d}/kubelet.service")
        if p.is_file():
            unit = p
            break
    dropins: dict[str, Path] = {}
    for d in _UNIT_DIRS:
        ddir = node_path(root, f"{d}/kubelet.service.d")
        if not ddir.is_dir():
            continue
        real = os.path.realpath(ddir)
        if real in seen_real:  # /lib -> /usr/lib on merged-/usr systems
            continue
        seen_real.add(real)
        for name in sorted(os.listdir(ddir)):
            if name.endswith(".conf") and name not in dropins:
                dropins[name] = ddir / name
            elif name.endswith(".conf"):
                notes.append(f"{ddir / name} is masked by {dropins[name]} (same name)")
    return unit, [dropins[n] for n in sorted(dropins)]


def _read_text(p: Path) -> str | None:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _last_flag(argv: list[str], name: str) -> str | None:
    value: str | None = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith(f"--{name}="):
            value = a.split("=", 1)[1]
        elif a == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
            i += 1
        i += 1
    return value


def _kubelet_command(
    root: Path, unit_files: list[Path], notes: list[str]
) -> tuple[list[str], list[Path]]:
    """The kubelet's argv (after expansion) and the env files read, from the unit files."""
    try:
        from mlnode.formats.envfile import expand_exec_start, read_env, read_systemd_unit
    except ImportError:  # pragma: no cover - the env-file reader ships with mlnode
        notes.append("no systemd unit reader available; --config not taken from the unit")
        return [], []
    environment: dict[str, str] = {}
    env_files: list[str] = []
    exec_argv: list[str] = []
    for p in unit_files:
        text = _read_text(p)
        if text is None:
            notes.append(f"cannot read {p}")
            continue
        try:
            doc = read_systemd_unit(str(p), text)
        except InputError as e:
            notes.append(str(e))
            continue
        f = doc.facts
        if f.get("environment_files_reset"):
            env_files = []
        env_files.extend(f.get("environment_files") or [])
        environment.update(f.get("environment") or {})
        if f.get("exec_start_reset"):
            exec_argv = []
        if f.get("exec_start"):
            exec_argv = list(f.get("exec_start_argv") or [])
    read_files: list[Path] = []
    for entry in env_files:
        optional = entry.startswith("-")
        real = node_path(root, entry.lstrip("-"))
        text = _read_text(real)
        if text is None:
            if not optional:
                notes.append(f"EnvironmentFile={entry} is missing: systemd will not start the unit")
            continue
        try:
            env_doc = read_env(str(real), text)
        except InputError as e:
            notes.append(str(e))
            continue
        read_files.append(real)
        environment.update({a.name: a.value for a in env_doc.env})
    if not exec_argv:
        return [], read_files
    return expand_exec_start(exec_argv, environment)[1:], read_files


def discover_node_files(root: Path) -> NodeFiles:
    """Find the standard files under ``root`` and the kubelet's --config/--config-dir."""
    notes: list[str] = []
    by_role: dict[NodeFileRole, list[Path]] = {}
    for np in NODE_PATHS:
        for p in _expand(root, np.path):
            lst = by_role.setdefault(np.role, [])
            if p not in lst:
                lst.append(p)
    crio_dir = node_path(root, "/etc/crio/crio.conf.d")
    if crio_dir.is_dir():
        from mlnode.formats.crio import crio_dropin_files

        by_role[NodeFileRole.CRIO_DROPIN] = crio_dropin_files(crio_dir)

    containerd_main = node_path(root, "/etc/containerd/config.toml")
    if containerd_main.is_file():
        # Only the files config.toml imports are read by containerd (conf.d is not special).
        from mlnode.formats.containerd import read_containerd_with_imports

        try:
            docs = read_containerd_with_imports("/etc/containerd/config.toml", root)
        except InputError as e:
            notes.append(str(e))
        else:
            by_role[NodeFileRole.CONTAINERD_DROPIN] = [Path(d.path) for d in docs[1:]]
    else:
        by_role.pop(NodeFileRole.CONTAINERD_DROPIN, None)

    unit, dropins = _unit_and_dropins(root, notes)
    argv, env_files = _kubelet_command(root, ([unit] if unit else []) + dropins, notes)

    config: Path | None = None
    from_flag = False
    flag_config = _last_flag(argv, "config")
    if flag_config:
        config = node_path(root, flag_config)
        from_flag = True
        if not config.is_file():
            notes.append(f"--config={flag_config} does not exist on the node")
    else:
        standard = by_role.get(NodeFileRole.KUBELET_CONFIG, [])
        config = standard[0] if standard else None
    config_dir: Path | None = None
    flag_dir = _last_flag(argv, "config-dir")
    if flag_dir:
        config_dir = node_path(root, flag_dir)
        if config_dir.is_dir():
            by_role[NodeFileRole.KUBELET_DROPIN] = sorted(
                p for p in config_dir.iterdir() if p.name.endswith(".conf")
            )
        else:
            notes.append(f"--config-dir={flag_dir} does not exist on the node")
    return NodeFiles(
        root=root,
        by_role={k: tuple(v) for k, v in by_role.items()},
        kubelet_unit=unit,
        kubelet_unit_dropins=tuple(dropins),
        kubelet_env_files=tuple(env_files),
        kubelet_argv=tuple(argv),
        kubelet_config=config,
        kubelet_config_from_flag=from_flag,
        kubelet_config_dir=config_dir,
        notes=tuple(notes),
    )
