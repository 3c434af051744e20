"""What every reader produces: values with positions, independent of the file format."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlnode.formats.facts import DocumentFacts, NoFacts
from mlnode.knowledge.model import Origin

__all__ = [
    "DocumentKind",
    "EnvAssignment",
    "FieldOccurrence",
    "FlagOccurrence",
    "ParsedDocument",
    "RuntimeValueOccurrence",
    "VarOccurrence",
]


class DocumentKind(enum.StrEnum):
    ENV_FILE = "env"  # systemd EnvironmentFile: KUBELET_EXTRA_ARGS, KUBELET_KUBEADM_ARGS, ...
    KUBELET_CONFIG = "kubelet-config"  # the file given to --config
    KUBELET_DROPIN = "kubelet-dropin"  # a *.conf file in --config-dir
    KUBEADM = "kubeadm"  # kubeadm config documents (Init/Join/ClusterConfiguration, ...)
    KUBESPRAY = "kubespray"  # kubespray group_vars
    CONTAINERD = "containerd"  # /etc/containerd/config.toml and its imports
    CRIO = "crio"  # /etc/crio/crio.conf and crio.conf.d/*.conf
    CONTAINERD_HOSTS = "containerd-hosts"  # <config_path>/<registry>/hosts.toml
    SYSTEMD_UNIT = "systemd-unit"  # kubelet.service and its drop-ins (10-kubeadm.conf)


@dataclass(frozen=True)
class FlagOccurrence:
    """A kubelet command-line flag as written in an env file, unit or kubeadm document."""

    name: str  # without the leading dashes: "image-gc-high-threshold"
    value: str | None  # None for a bare flag ("--serialize-image-pulls")
    origin: Origin  # detail: the variable or key that carried it
    text: str  # as written, e.g. "--image-gc-high-threshold=80"


@dataclass(frozen=True)
class FieldOccurrence:
    """A top-level KubeletConfiguration field."""

    field: str  # camelCase, e.g. "imageGCHighThresholdPercent"
    value: Any  # as decoded from YAML (int, str, bool, dict, list, None)
    origin: Origin


@dataclass(frozen=True)
class RuntimeValueOccurrence:
    """A key in a runtime's TOML config."""

    table: tuple[str, ...]  # e.g. ("plugins", "io.containerd.grpc.v1.cri") or ("crio", "image")
    name: str  # e.g. "image_pull_progress_timeout"
    value: Any  # as decoded from TOML
    origin: Origin


@dataclass(frozen=True)
class VarOccurrence:
    """An Ansible variable in kubespray group_vars."""

    name: str
    value: Any
    origin: Origin


@dataclass(frozen=True)
class EnvAssignment:
    """A variable assignment in an environment file (after systemd's unquoting)."""

    name: str
    value: str
    origin: Origin


_F = TypeVar("_F", bound=DocumentFacts)


@dataclass(frozen=True)
class ParsedDocument:
    """Everything a reader found in one file (or one YAML document of a multi-document file)."""

    kind: DocumentKind
    path: str
    flags: tuple[FlagOccurrence, ...] = ()
    fields: tuple[FieldOccurrence, ...] = ()
    runtime_values: tuple[RuntimeValueOccurrence, ...] = ()
    variables: tuple[VarOccurrence, ...] = ()
    env: tuple[EnvAssignment, ...] = ()
    # What the reader knows beyond the values, one type per kind (mlnode.formats.facts).
    facts: DocumentFacts = field(default_factory=NoFacts)

    def facts_as(self, cls: type[_F]) -> _F:
        """``facts`` as ``cls``, for a consumer that knows which reader made the document.

        A TypeError when they are of another kind: a bug in the caller, not bad input.
        """
        if not isinstance(self.facts, cls):
            raise TypeError(
                f"{self.path}: expected {cls.__name__} for a {self.kind} document,"
                f" got {type(self.facts).__name__}"
            )
        return self.facts
