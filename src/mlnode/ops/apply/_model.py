"""What an apply is about: the node's layout, each file edit, and the plan."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import InputError
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement
from mlnode.ops.fileio import sha256_bytes
from mlnode.ops.services import ServiceAction
from mlnode.ops.verify import Expectations
from mlnode.versions import RuntimeSpec, Version

__all__ = [
    "DROPIN_NAME",
    "KUBEADM_CONFIG_DIR",
    "ApplyPlan",
    "ApplyRefused",
    "FileEdit",
    "LayoutKind",
    "NodeLayout",
    "RemovedFlag",
]

DROPIN_NAME = "90-mlnode-images.conf"
KUBEADM_CONFIG_DIR = "/etc/kubernetes/kubelet.conf.d"


class ApplyRefused(InputError):
    """The plan is not applied: the resulting files would be invalid (exit 2, no change)."""


class LayoutKind(enum.StrEnum):
    KUBEADM_DEB = "kubeadm-deb"
    KUBEADM_RPM = "kubeadm-rpm"
    KUBESPRAY = "kubespray"
    SYSTEMD = "systemd"


@dataclass(frozen=True)
class NodeLayout:
    """A node's kubelet and runtime files, read once; ``files`` holds every text planned on."""

    root: Path
    kind: LayoutKind
    kubernetes_version: Version
    runtime: RuntimeSpec
    versions_from: Mapping[str, str]  # "kubelet"/"runtime" -> how the version was found
    unit_files: tuple[str, ...]  # kubelet.service then its drop-ins, in systemd's order
    env_files: tuple[str, ...]  # EnvironmentFile= paths in order (existing or not)
    environment: Mapping[str, str]  # what systemd would give the kubelet
    kubelet_argv: tuple[str, ...]  # ExecStart= after $VAR expansion
    args_file: str | None  # the EnvironmentFile operators own for extra flags
    args_variable: str | None  # its variable: KUBELET_EXTRA_ARGS, KUBELET_ARGS
    config_file: str | None  # --config
    config_dir: str | None  # --config-dir
    dropins: tuple[str, ...]  # *.conf in --config-dir, in the kubelet's order
    kubelet_binary: str | None
    runtime_binary: str | None
    containerd_files: tuple[str, ...] = ()  # config.toml then imports, load order
    crio_files: tuple[str, ...] = ()
    files: Mapping[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def text(self, node_path: str) -> str | None:
        return self.files.get(node_path)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "kubernetes_version": str(self.kubernetes_version),
            "runtime": str(self.runtime),
            "versions_from": dict(self.versions_from),
            "unit_files": list(self.unit_files),
            "env_files": list(self.env_files),
            "args_file": self.args_file,
            "args_variable": self.args_variable,
            "config_file": self.config_file,
            "config_dir": self.config_dir,
            "containerd_files": list(self.containerd_files),
            "crio_files": list(self.crio_files),
        }


@dataclass(frozen=True)
class FileEdit:
    """One file's change: ``old_text`` None means the file is created."""

    path: str  # node path
    old_text: str | None
    new_text: str
    reason: str
    unit: str  # the service that reads it: kubelet | containerd | crio

    @property
    def sha256_before(self) -> str | None:
        return None if self.old_text is None else sha256_bytes(self.old_text.encode())

    @property
    def sha256_after(self) -> str:
        return sha256_bytes(self.new_text.encode())

    def diff(self) -> str:
        old = [] if self.old_text is None else self.old_text.splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        lines = difflib.unified_diff(
            old,
            new,
            fromfile="/dev/null" if self.old_text is None else f"a{self.path}",
            tofile=f"b{self.path}",
        )
        return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n"
                       for x in lines)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": "created" if self.old_text is None else "modified",
            "reason": self.reason,
            "unit": self.unit,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "diff": self.diff(),
        }


@dataclass(frozen=True)
class RemovedFlag:
    path: str
    flag: str  # "--image-pull-progress-deadline=30m" as written
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "flag": self.flag, "reason": self.reason}


@dataclass(frozen=True)
class ApplyPlan:
    layout: NodeLayout
    settings: ImageSettings
    placement: Placement
    edits: tuple[FileEdit, ...]
    actions: tuple[ServiceAction, ...]
    removed_flags: tuple[RemovedFlag, ...]
    expectations: Expectations
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    mirror_url: str | None = None  # apply --mirror: the node mirror being wired

    @property
    def no_changes(self) -> bool:
        return not self.edits

    def new_files(self) -> dict[str, str | None]:
        """Every file of the layout as it will be after the apply."""
        out = dict(self.layout.files)
        for e in self.edits:
            out[e.path] = e.new_text
        return out
