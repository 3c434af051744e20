"""Measure what the local machine can tell about itself, under an injectable root.

What it reads:

- the image filesystem: ``statvfs`` of the runtime's data directory (containerd's ``root``
  from ``/etc/containerd/config.toml``, default ``/var/lib/containerd``; CRI-O's
  ``graphroot`` from ``/etc/containers/storage.conf``, default
  ``/var/lib/containers/storage``), or of its nearest existing parent when the directory
  does not exist yet; and whether that filesystem is the root filesystem;
- versions from ``kubelet --version`` ("Kubernetes v1.30.2"), ``containerd --version``
  ("containerd containerd.io 1.7.13 <sha>", "containerd github.com/containerd/containerd
  v1.7.13 <sha>", Debian's "containerd github.com/containerd/containerd 1.6.20~ds1
  1.6.20~ds1-1+deb12u3") and ``crio --version`` ("crio version 1.30.0", older releases
  print a table with "Version:  1.20.0").

Every path is resolved under ``root`` (tests pass a temp dir; ``--root`` lets an operator
inspect a mounted node image). Binaries are looked up under ``root``'s ``usr/local/bin``,
``usr/bin``, ``bin``, ``usr/sbin``, and on ``PATH`` only when ``root`` is ``/``. The
command runner and ``statvfs`` are injectable. Anything missing or unparseable is recorded
as unknown with a note, never raised.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from mlnode.errors import MlnodeError
from mlnode.formats.node_paths import runtime_data_dir
from mlnode.planning.profile import ProfileInput
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = [
    "Inspection",
    "Runner",
    "inspect_node",
    "parse_containerd_version",
    "parse_crio_version",
    "parse_kubelet_version",
    "run_command",
]

# A runner takes argv and returns the command's combined output, or None when it could
# not be run (missing, not executable, timed out, non-zero exit).
Runner = Callable[[Sequence[str]], str | None]


class _StatVfs(Protocol):
    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...


StatVfs = Callable[[str], _StatVfs]

_BIN_DIRS = ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "usr/local/sbin")
_TRIPLE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def run_command(argv: Sequence[str]) -> str | None:
    """Run ``argv`` with a 10 s timeout; its stdout+stderr, or None if it did not succeed."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return (done.stdout or "") + (done.stderr or "")


def _triple(token: str) -> Version | None:
    m = _TRIPLE.match(token)
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_kubelet_version(output: str) -> Version | None:
    """``Kubernetes v1.30.2`` → 1.30.2 (None when the text is not that)."""
    m = re.search(r"\bKubernetes\s+(v?\d+\.\d+\.\d+)", output)
    return _triple(m.group(1)) if m else None


def parse_containerd_version(output: str) -> Version | None:
    """The version in ``containerd <package> <version> <revision>``.

    Handles upstream (``v1.7.13``), Docker's containerd.io (``1.7.13``) and Debian
    (``1.6.20~ds1``) builds: the third word, minus a leading ``v`` and any distro suffix.
    """
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "containerd":
            return _triple(words[2])
    return None


def parse_crio_version(output: str) -> Version | None:
    """``crio version 1.30.0`` (current) or a ``Version:  1.20.0`` table row (older)."""
    m = re.search(r"\bcrio version\s+(v?\d+\.\d+\.\d+)", output)
    if not m:
        m = re.search(r"^\s*Version:\s+(v?\d+\.\d+\.\d+)", output, re.MULTILINE)
    return _triple(m.group(1)) if m else None


@dataclass(frozen=True)
class Inspection:
    """What the local machine told us; None = unknown, and ``notes`` says why."""

    root: Path
    image_dir: PurePosixPath | None  # the runtime data directory, as the node names it
    measured_dir: Path | None  # the directory statvfs was called on (under root)
    capacity_bytes: int | None
    available_bytes: int | None
    shared_with_os: bool | None
    kubelet_version: Version | None
    runtime: RuntimeSpec | None
    notes: Mapping[str, str] = field(default_factory=dict)

    def as_profile_input(self) -> ProfileInput:
        sources: dict[str, str] = {}
        if self.capacity_bytes is not None:
            sources["image_disk_capacity_bytes"] = f"inspection: {self.notes['image_disk']}"
        if self.shared_with_os is not None:
            sources["shared_with_os"] = f"inspection: {self.notes['shared_with_os']}"
        if self.kubelet_version is not None:
            sources["kubernetes_version"] = f"inspection: {self.notes['kubelet']}"
        if self.runtime is not None:
            sources["runtime"] = f"inspection: {self.notes['runtime']}"
        return ProfileInput(
            image_disk_capacity_bytes=self.capacity_bytes,
            shared_with_os=self.shared_with_os,
            kubernetes_version=self.kubelet_version,
            runtime=self.runtime,
            sources=sources,
        )


def _under(root: Path, path: PurePosixPath | str) -> Path:
    return root / str(path).lstrip("/")


def _find_binary(name: str, root: Path, path_env: str | None) -> Path | None:
    dirs = [_under(root, d) for d in _BIN_DIRS]
    if path_env:
        dirs += [Path(d) for d in path_env.split(os.pathsep) if d]
    for d in dirs:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _nearest_existing(path: Path, root: Path) -> Path:
    p = path
    while not p.exists() and p != root and p.parent != p:
        p = p.parent
    return p


def _version_of(
    name: str,
    parse: Callable[[str], Version | None],
    root: Path,
    path_env: str | None,
    runner: Runner,
) -> tuple[Version | None, str]:
    binary = _find_binary(name, root, path_env)
    if binary is None:
        where = f"{_under(root, '{usr/local/bin,usr/bin,bin,usr/sbin}')}" + (
            " or PATH" if path_env else ""
        )
        return None, f"unknown: no {name} binary under {where}"
    output = runner([str(binary), "--version"])
    if output is None:
        return None, f"unknown: `{binary} --version` did not run"
    version = parse(output)
    if version is None:
        first = output.strip().splitlines()[0] if output.strip() else "(no output)"
        return None, f"unknown: cannot read a version in `{binary} --version`: {first[:80]!r}"
    return version, f"`{binary} --version` → {version}"


def inspect_node(
    root: Path | str = Path("/"),
    *,
    runner: Runner = run_command,
    statvfs: StatVfs = os.statvfs,
    path_env: str | None = None,
) -> Inspection:
    """Inspect the machine under ``root``; never raises for anything missing.

    ``path_env`` is the PATH to search for binaries besides ``root``'s bin directories;
    when None it is the process's PATH if ``root`` is ``/`` and nothing otherwise.
    """
    root = Path(root)
    if path_env is None and root.resolve() == Path("/"):
        path_env = os.environ.get("PATH", "")
    notes: dict[str, str] = {}

    kubelet, notes["kubelet"] = _version_of(
        "kubelet", parse_kubelet_version, root, path_env, runner
    )
    found: dict[RuntimeKind, tuple[Version | None, str]] = {
        RuntimeKind.CONTAINERD: _version_of(
            "containerd", parse_containerd_version, root, path_env, runner
        ),
        RuntimeKind.CRIO: _version_of("crio", parse_crio_version, root, path_env, runner),
    }
    data_dirs = {
        kind: runtime_data_dir(kind, root) for kind in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO)
    }

    # Which runtime: the one whose binary answered; if both (or neither), the one whose
    # data directory exists; containerd first, as crictl's endpoint order has it.
    answered = [k for k, (ver, _) in found.items() if ver is not None]
    with_data = [k for k, (d, _) in data_dirs.items() if _under(root, d).is_dir()]
    kind: RuntimeKind | None
    if len(answered) == 1:
        kind = answered[0]
    elif with_data:
        kind = next((k for k in with_data if k in answered), with_data[0])
    else:
        kind = answered[0] if answered else None

    runtime: RuntimeSpec | None = None
    if kind is None:
        notes["runtime"] = (
            f"unknown: containerd: {found[RuntimeKind.CONTAINERD][1]}; "
            f"crio: {found[RuntimeKind.CRIO][1]}"
        )
    else:
        version, how = found[kind]
        if version is None:
            notes["runtime"] = f"unknown: {kind.value} data directory exists; {how}"
        else:
            try:
                runtime = parse_runtime(f"{kind.value}@{version}")
                notes["runtime"] = how
            except MlnodeError as e:
                notes["runtime"] = f"unknown: {how}, but {e}"

    kubernetes: Version | None = None
    if kubelet is not None:
        try:
            kubernetes = parse_kubernetes_version(str(kubelet), option="kubelet --version")
        except MlnodeError as e:
            notes["kubelet"] = f"unknown: {notes['kubelet']}, but {e}"

    image_kind = kind or RuntimeKind.CONTAINERD
    image_dir, configured_by = data_dirs[image_kind]
    target = _under(root, image_dir)
    measured: Path | None = _nearest_existing(target, root)
    capacity = available = None
    shared: bool | None = None
    try:
        assert measured is not None
        st = statvfs(str(measured))
        capacity = int(st.f_blocks) * int(st.f_frsize)
        available = int(st.f_bavail) * int(st.f_frsize)
    except OSError as e:
        notes["image_disk"] = f"unknown: statvfs {measured}: {e.strerror or e}"
        measured = None
    else:
        if capacity <= 0:
            notes["image_disk"] = f"unknown: statvfs {measured} reports capacity 0"
            capacity = available = None
        else:
            which = "" if configured_by == "default" else f", set in {configured_by}"
            if measured == target:
                notes["image_disk"] = f"statvfs {image_dir} ({image_kind.value}{which})"
            else:
                notes["image_disk"] = (
                    f"statvfs {measured} ({image_kind.value}'s {image_dir}{which} does not "
                    "exist; measured its nearest existing parent)"
                )
    if measured is not None:
        try:
            shared = measured.stat().st_dev == root.stat().st_dev
            notes["shared_with_os"] = (
                f"{measured} is {'on' if shared else 'not on'} the filesystem of {root}"
            )
        except OSError as e:
            notes["shared_with_os"] = f"unknown: stat: {e.strerror or e}"

    return Inspection(
        root=root,
        image_dir=image_dir,
        measured_dir=measured,
        capacity_bytes=capacity,
        available_bytes=available,
        shared_with_os=shared,
        kubelet_version=kubernetes,
        runtime=runtime,
        notes=notes,
    )
