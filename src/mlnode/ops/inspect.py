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

Every path is resolved under ``root`` by :mod:`mlnode.node` (tests pass a temp dir;
``--root`` lets an operator inspect a mounted node image). Binaries are the ones ``mlnode
apply`` asks (:func:`mlnode.node.find_binary`: the unit's ExecStart= program, then
``/usr/local/bin``, ``/usr/bin``, ``/bin``, ``/usr/sbin``, ``/usr/local/sbin`` under the
root, then ``PATH`` only when ``root`` is ``/``). The command runner and ``statvfs`` are
injectable. Anything missing or unparseable is recorded
as unknown with a note, never raised.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from mlnode.errors import MlnodeError
from mlnode.node import (
    BIN_DIRS,
    Runner,
    find_binary,
    probe_version,
    read_kubelet_command,
    read_path,
    run_command,
    runtime_data_dir,
    unit_binary,
)
from mlnode.planning.profile import ProfileInput
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = ["Inspection", "inspect_node"]


class _StatVfs(Protocol):
    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...


StatVfs = Callable[[str], _StatVfs]


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


def _nearest_existing(path: Path, root: Path) -> Path:
    p = path
    while not p.exists() and p != root and p.parent != p:
        p = p.parent
    return p


def _version_of(
    name: str, root: Path, path_env: str | None, runner: Runner, exec_start: str | None
) -> tuple[Version | None, str]:
    binary = find_binary(root, name, exec_start=exec_start, path_env=path_env)
    if binary is None:
        dirs = ",".join(d.lstrip("/") for d in BIN_DIRS)
        where = f"{root / ('{' + dirs + '}')}" + (" or PATH" if path_env else "")
        return None, f"unknown: no {name} binary under {where}"
    probe = probe_version(name, binary.host, runner)
    if not probe.ran:
        return None, f"unknown: `{binary.host} --version` did not run"
    if probe.version is None:
        first = probe.first_line()
        return None, f"unknown: cannot read a version in `{binary.host} --version`: {first[:80]!r}"
    return probe.version, f"`{binary.host} --version` → {probe.version}"


def _choose_runtime(
    root: Path,
    found: Mapping[RuntimeKind, tuple[Version | None, str]],
    data_dirs: Mapping[RuntimeKind, tuple[PurePosixPath, str]],
    notes: dict[str, str],
) -> tuple[RuntimeKind | None, RuntimeSpec | None]:
    """Which runtime: the one whose binary answered; if both (or neither), the one whose
    data directory exists; containerd first, as crictl's endpoint order has it."""
    answered = [k for k, (ver, _) in found.items() if ver is not None]
    with_data = [k for k, (d, _) in data_dirs.items() if read_path(root, str(d)).is_dir()]
    kind: RuntimeKind | None
    if len(answered) == 1:
        kind = answered[0]
    elif with_data:
        kind = next((k for k in with_data if k in answered), with_data[0])
    else:
        kind = answered[0] if answered else None
    if kind is None:
        notes["runtime"] = (
            f"unknown: containerd: {found[RuntimeKind.CONTAINERD][1]}; "
            f"crio: {found[RuntimeKind.CRIO][1]}"
        )
        return None, None
    version, how = found[kind]
    if version is None:
        notes["runtime"] = f"unknown: {kind.value} data directory exists; {how}"
        return kind, None
    try:
        runtime = parse_runtime(f"{kind.value}@{version}")
    except MlnodeError as e:
        notes["runtime"] = f"unknown: {how}, but {e}"
        return kind, None
    notes["runtime"] = how
    return kind, runtime


@dataclass(frozen=True)
class _Disk:
    measured: Path | None
    capacity_bytes: int | None = None
    available_bytes: int | None = None
    shared_with_os: bool | None = None


def _measure(
    root: Path,
    image_kind: RuntimeKind,
    data_dir: tuple[PurePosixPath, str],
    statvfs: StatVfs,
    notes: dict[str, str],
) -> _Disk:
    """statvfs of the image directory (or its nearest existing parent), and whether it is
    on the root's filesystem."""
    image_dir, configured_by = data_dir
    target = read_path(root, str(image_dir))
    measured = _nearest_existing(target, root)
    try:
        st = statvfs(str(measured))
        capacity = int(st.f_blocks) * int(st.f_frsize)
        available = int(st.f_bavail) * int(st.f_frsize)
    except OSError as e:
        notes["image_disk"] = f"unknown: statvfs {measured}: {e.strerror or e}"
        return _Disk(None)
    disk = _Disk(measured, capacity, available)
    if capacity <= 0:
        notes["image_disk"] = f"unknown: statvfs {measured} reports capacity 0"
        disk = _Disk(measured)
    else:
        which = "" if configured_by == "default" else f", set in {configured_by}"
        if measured == target:
            notes["image_disk"] = f"statvfs {image_dir} ({image_kind.value}{which})"
        else:
            notes["image_disk"] = (
                f"statvfs {measured} ({image_kind.value}'s {image_dir}{which} does not "
                "exist; measured its nearest existing parent)"
            )
    try:
        shared = measured.stat().st_dev == root.stat().st_dev
        notes["shared_with_os"] = (
            f"{measured} is {'on' if shared else 'not on'} the filesystem of {root}"
        )
    except OSError as e:
        notes["shared_with_os"] = f"unknown: stat: {e.strerror or e}"
        return disk
    return dataclasses.replace(disk, shared_with_os=shared)


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
    notes: dict[str, str] = {}

    # The same binaries `mlnode apply` asks: ExecStart='s program first (mlnode.node).
    kubelet_unit = read_kubelet_command(root, strict=False).binary
    kubelet, notes["kubelet"] = _version_of("kubelet", root, path_env, runner, kubelet_unit)
    found: dict[RuntimeKind, tuple[Version | None, str]] = {
        kind: _version_of(kind.value, root, path_env, runner, unit_binary(root, kind.value))
        for kind in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO)
    }
    data_dirs = {
        kind: runtime_data_dir(kind, root) for kind in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO)
    }
    kind, runtime = _choose_runtime(root, found, data_dirs, notes)

    kubernetes: Version | None = None
    if kubelet is not None:
        try:
            kubernetes = parse_kubernetes_version(str(kubelet), option="kubelet --version")
        except MlnodeError as e:
            notes["kubelet"] = f"unknown: {notes['kubelet']}, but {e}"

    image_kind = kind or RuntimeKind.CONTAINERD
    disk = _measure(root, image_kind, data_dirs[image_kind], statvfs, notes)
    return Inspection(
        root=root,
        image_dir=data_dirs[image_kind][0],
        measured_dir=disk.measured,
        capacity_bytes=disk.capacity_bytes,
        available_bytes=disk.available_bytes,
        shared_with_os=disk.shared_with_os,
        kubelet_version=kubernetes,
        runtime=runtime,
        notes=notes,
    )
