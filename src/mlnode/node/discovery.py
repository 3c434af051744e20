"""How systemd and the kubelet find their files on a node: one reading, two modes.

Everything is read under a root through :mod:`mlnode.rootpath` (symlinks resolved as if
the root were ``/``). The unit's files are found the way systemd does (systemd.unit(5)):
the first ``<unit>.service`` in
:data:`~mlnode.formats.node_paths.UNIT_DIRS` (highest precedence first), then every
``<unit>.service.d/*.conf`` drop-in from all of them — a name in a higher directory masks
the same name below — applied in file-name order. ``Environment=`` then every
``EnvironmentFile=`` (files override ``Environment=``; later files override earlier ones)
give the environment; the last ``ExecStart=`` with ``$VAR`` expanded is the command line,
whose flags the kubelet parses like pflag (the last ``--config``/``--config-dir`` wins).

``strict`` (``mlnode apply``): a missing unit, a missing ``ExecStart=``, a missing required
``EnvironmentFile=`` or an unreadable file is an :class:`~mlnode.errors.InputError`.
Lenient (``mlnode lint --root``): each of those is a note and discovery goes on. Both
modes keep every file's text in ``files`` (node path → text, None when absent).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlnode.errors import InputError
from mlnode.formats.envfile import read_env
from mlnode.formats.facts import ContainerdFacts, SystemdUnitFacts
from mlnode.formats.kubelet_argv import expand_exec_start, last_flag
from mlnode.formats.node_paths import UNIT_DIRS
from mlnode.formats.systemd_unit import read_systemd_unit
from mlnode.rootpath import node_path_of, read_path, read_text
from mlnode.versions import Version

__all__ = [
    "BIN_DIRS",
    "CONTAINERD_CONFIG",
    "CRIO_CONFIG",
    "CRIO_DIR",
    "Binary",
    "UnitCommand",
    "containerd_config_files",
    "containerd_hosts_files",
    "crio_config_files",
    "find_binary",
    "kubelet_dropins",
    "read_kubelet_command",
    "read_unit_command",
    "unit_binary",
    "unit_files",
]

# Where binaries are looked for after the unit's own ExecStart= path: the default PATH's order.
BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/usr/local/sbin")
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CRIO_CONFIG = "/etc/crio/crio.conf"
CRIO_DIR = "/etc/crio/crio.conf.d"


def unit_files(root: Path, unit: str, notes: list[str]) -> tuple[str | None, list[str]]:
    """``<unit>.service`` (node path, None if absent) and its drop-ins in systemd's order.

    A drop-in directory reached twice (``/lib -> usr/lib`` on merged-/usr systems) counts
    once; a drop-in masked by a same-named one higher up is noted.
    """
    main = next(
        (
            f"{d}/{unit}.service"
            for d in UNIT_DIRS
            if read_path(root, f"{d}/{unit}.service").is_file()
        ),
        None,
    )
    dropins: dict[str, str] = {}
    seen: set[Path] = set()
    for d in UNIT_DIRS:
        ddir = read_path(root, f"{d}/{unit}.service.d")
        if not ddir.is_dir() or ddir in seen:
            continue
        seen.add(ddir)
        for name in sorted(os.listdir(ddir)):
            if not name.endswith(".conf") or not (ddir / name).is_file():
                continue
            node = f"{d}/{unit}.service.d/{name}"
            if name not in dropins:
                dropins[name] = node
            else:
                notes.append(
                    f"{read_path(root, node)} is masked by {read_path(root, dropins[name])} "
                    "(same name)"
                )
    return main, [dropins[n] for n in sorted(dropins)]


@dataclass(frozen=True)
class UnitCommand:
    """What systemd would run for a unit (the kubelet), and every file that went into it."""

    unit_files: tuple[str, ...] = ()  # <unit>.service then its drop-ins, node paths
    env_files: tuple[str, ...] = ()  # absolute EnvironmentFile= paths in order, existing or not
    environment: Mapping[str, str] = field(default_factory=dict)
    exec_argv: tuple[str, ...] = ()  # the last ExecStart= as written (argv[0] included)
    argv: tuple[str, ...] = ()  # after $VAR expansion (argv[0] included)
    files: Mapping[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """The value of ``--name`` as the kubelet parses it (the last occurrence wins)."""
        return last_flag(self.argv[1:], name)

    @property
    def binary(self) -> str | None:
        """ExecStart='s program when it is an absolute path."""
        return self.argv[0] if self.argv and self.argv[0].startswith("/") else None

    @property
    def env_files_read(self) -> tuple[str, ...]:
        return tuple(p for p in self.env_files if self.files.get(p) is not None)


def _unit_facts(
    root: Path, paths: Sequence[str], files: dict[str, str | None], notes: list[str], strict: bool
) -> tuple[list[str], dict[str, str], list[str]]:
    env_files: list[str] = []
    environment: dict[str, str] = {}
    exec_argv: list[str] = []
    for uf in paths:
        text = read_text(root, uf, strict=strict)
        files[uf] = text
        if text is None:
            notes.append(f"cannot read {read_path(root, uf)}")
            continue
        try:
            doc = read_systemd_unit(str(read_path(root, uf)), text)
        except InputError as e:
            if strict:
                raise
            notes.append(str(e))
            continue
        facts = doc.facts_as(SystemdUnitFacts)
        if facts.environment_files_reset:
            env_files = []
        env_files.extend(facts.environment_files)
        environment.update(facts.environment)
        if facts.exec_start_reset:
            exec_argv = []
        if facts.exec_start_argv:
            exec_argv = list(facts.exec_start_argv)
    return env_files, environment, exec_argv


def read_kubelet_command(root: Path, *, strict: bool) -> UnitCommand:
    """The kubelet unit, its EnvironmentFiles and its expanded command line under ``root``."""
    return read_unit_command(root, "kubelet", strict=strict)


def read_unit_command(root: Path, unit: str, *, strict: bool) -> UnitCommand:
    """``<unit>.service``, its EnvironmentFiles and its expanded ExecStart= under ``root``."""
    notes: list[str] = []
    files: dict[str, str | None] = {}
    main, dropins = unit_files(root, unit, notes)
    if main is None:
        if strict:
            raise InputError(
                f"no {unit}.service under {root} (looked in {', '.join(UNIT_DIRS)})", path=root
            )
        return UnitCommand(notes=tuple(notes))
    paths = [main, *dropins]
    raw_env, environment, exec_argv = _unit_facts(root, paths, files, notes, strict)
    if not exec_argv and strict:
        raise InputError(f"the {unit} unit has no ExecStart=", path=read_path(root, main))
    env_paths: list[str] = []
    for raw in raw_env:
        path = raw.lstrip("-")
        if not path.startswith("/"):
            continue
        env_paths.append(path)
        text = read_text(root, path, strict=strict)
        files[path] = text
        if text is None:
            if not raw.startswith("-"):
                if strict:
                    raise InputError(
                        f"the {unit} unit requires this EnvironmentFile, which is missing",
                        path=read_path(root, path),
                    )
                notes.append(f"EnvironmentFile={raw} is missing: systemd will not start the unit")
            continue
        try:
            assignments = read_env(str(read_path(root, path)), text).env
        except InputError as e:
            if strict:
                raise
            notes.append(str(e))
            files[path] = None
            continue
        environment.update({a.name: a.value for a in assignments})
    return UnitCommand(
        unit_files=tuple(paths),
        env_files=tuple(env_paths),
        environment=environment,
        exec_argv=tuple(exec_argv),
        argv=tuple(expand_exec_start(exec_argv, environment)) if exec_argv else (),
        files=files,
        notes=tuple(notes),
    )


def kubelet_dropins(root: Path, config_dir: str) -> list[str]:
    """The ``*.conf`` files under ``--config-dir`` (node paths), in the kubelet's order:
    it walks the directory recursively, in lexical order."""
    d = read_path(root, config_dir)
    if not d.is_dir():
        return []
    found = sorted(p.relative_to(d).as_posix() for p in d.rglob("*.conf") if p.is_file())
    return [f"{config_dir.rstrip('/')}/{rel}" for rel in found]


@dataclass(frozen=True)
class Binary:
    """A program found for the node: ``path`` is its node path (a host path when it was
    found on ``PATH`` outside the root), ``host`` where it is on this machine."""

    path: str
    host: Path


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def find_binary(
    root: Path, name: str, *, exec_start: str | None = None, path_env: str | None = None
) -> Binary | None:
    """The ``name`` binary the node runs, in ONE order:

    1. ``exec_start`` — the unit's ExecStart= program — when it is an absolute path to an
       executable file under the root (that is what systemd starts);
    2. :data:`BIN_DIRS` under the root, in that order;
    3. the directories of ``path_env`` (host paths). When ``path_env`` is None it is the
       process's ``PATH`` if the root is this machine's ``/``, and nothing otherwise.
    """
    if exec_start and exec_start.startswith("/"):
        p = read_path(root, exec_start)
        if _executable(p):
            return Binary(exec_start, p)
    for d in BIN_DIRS:
        p = read_path(root, f"{d}/{name}")
        if _executable(p):
            return Binary(f"{d}/{name}", p)
    if path_env is None and os.path.realpath(root) == "/":
        path_env = os.environ.get("PATH", "")
    for d in (path_env or "").split(os.pathsep):
        if d and _executable(Path(d) / name):
            return Binary(str(Path(d) / name), Path(d) / name)
    return None


def unit_binary(root: Path, unit: str) -> str | None:
    """The program of ``unit``'s last ExecStart= (lenient), when it is an absolute path."""
    command = read_unit_command(root, unit, strict=False)
    prog = command.exec_argv[0] if command.exec_argv else None
    return prog if prog and prog.startswith("/") else None


def containerd_config_files(
    root: Path, *, runtime_version: Version | None = None, strict: bool
) -> tuple[list[str], list[str]]:
    """containerd's config.toml then the files it imports, in load order (node paths), and
    notes. Absent config.toml: ``[config.toml]`` (where a new one goes) in strict mode,
    nothing in lenient mode."""
    from mlnode.formats.containerd import read_containerd_with_imports

    if not read_path(root, CONTAINERD_CONFIG).is_file():
        return ([CONTAINERD_CONFIG] if strict else []), []
    try:
        docs = read_containerd_with_imports(
            CONTAINERD_CONFIG, root, runtime_version=runtime_version
        )
    except InputError as e:
        if strict:
            raise
        return [CONTAINERD_CONFIG], [str(e)]
    return [str(doc.facts_as(ContainerdFacts).node_path) for doc in docs], []


def crio_config_files(root: Path) -> list[str]:
    """crio.conf (when present) then every drop-in, in CRI-O's order (node paths)."""
    from mlnode.formats.crio import crio_dropin_files

    out = [CRIO_CONFIG] if read_path(root, CRIO_CONFIG).is_file() else []
    return out + [node_path_of(root, p) for p in crio_dropin_files(read_path(root, CRIO_DIR))]


# Where hosts.toml files are looked for besides config_path: the directory containerd's
# docs use, and the Docker one containerd 2.2+ reads by default.
HOSTS_DIR_CANDIDATES = ("/etc/containerd/certs.d", "/etc/docker/certs.d")


def containerd_hosts_files(root: Path, config_path_roots: list[str]) -> list[str]:
    """Every ``<dir>/<namespace>/hosts.toml`` (node paths) under the ``config_path`` roots
    given and :data:`HOSTS_DIR_CANDIDATES`, each directory once, in that order; the
    namespace directories in name order. Read inside ``root`` (mlnode.rootpath)."""
    out: list[str] = []
    seen: set[Path] = set()
    for d in dict.fromkeys([*config_path_roots, *HOSTS_DIR_CANDIDATES]):
        if not d.startswith("/"):
            continue
        real = read_path(root, d)
        if not real.is_dir() or real in seen:
            continue
        seen.add(real)
        for name in sorted(os.listdir(real)):
            node = f"{d.rstrip('/')}/{name}/hosts.toml"
            if read_path(root, node).is_file():
                out.append(node)
    return out
