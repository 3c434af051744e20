"""Where a node keeps its kubelet and runtime settings: pure tables, no file access.

:data:`NODE_PATHS` is the table of standard locations (absolute paths on the node) and
:data:`RUNTIME_DATA_DIRS` where each runtime keeps its images by default. Looking for them
under a root is :func:`mlnode.node.discover_node_files` (and
:func:`mlnode.node.runtime_data_dir`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import PurePosixPath

from mlnode.versions import RuntimeKind

__all__ = ["NODE_PATHS", "RUNTIME_DATA_DIRS", "UNIT_DIRS", "NodeFileRole", "NodePath"]


class NodeFileRole(enum.StrEnum):
    KUBELET_ENV = "kubelet-env"  # EnvironmentFile= files with KUBELET_* variables
    KUBELET_CONFIG = "kubelet-config"  # the --config file
    KUBELET_CONFIG_DIR = "kubelet-config-dir"  # a --config-dir directory
    KUBELET_DROPIN = "kubelet-dropin"  # *.conf inside the --config-dir
    KUBELET_UNIT = "kubelet-unit"  # kubelet.service
    KUBELET_UNIT_DROPIN = "kubelet-unit-dropin"  # kubelet.service.d/*.conf
    CONTAINERD_CONFIG = "containerd-config"
    CONTAINERD_DROPIN = "containerd-dropin"  # files config.toml imports (conf.d/*.toml if it does)
    CONTAINERD_HOSTS = "containerd-hosts"  # <config_path>/<registry>/hosts.toml
    CRIO_CONFIG = "crio-config"
    CRIO_DROPIN = "crio-dropin"


@dataclass(frozen=True)
class NodePath:
    """A standard location; ``path`` is absolute on the node and may hold one ``*``."""

    path: str
    role: NodeFileRole
    note: str


# systemd's unit search path for system units, highest priority first (systemd.unit(5)).
UNIT_DIRS = (
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
        for d in UNIT_DIRS
    ),
    *(
        NodePath(
            f"{d}/kubelet.service.d/*.conf",
            NodeFileRole.KUBELET_UNIT_DROPIN,
            "unit drop-ins (10-kubeadm.conf: /usr/lib with current packages, /etc with older)",
        )
        for d in UNIT_DIRS
    ),
    NodePath("/etc/containerd/config.toml", NodeFileRole.CONTAINERD_CONFIG, "containerd config"),
    NodePath(
        "/etc/containerd/conf.d/*.toml",
        NodeFileRole.CONTAINERD_DROPIN,
        "read only when config.toml imports it (containerd config default does since 2.2)",
    ),
    NodePath(
        "/etc/containerd/certs.d/*/hosts.toml",
        NodeFileRole.CONTAINERD_HOSTS,
        "registry hosts files: read only from config_path's directories (also"
        " /etc/docker/certs.d by default since 2.2); discovery looks in both and in config_path",
    ),
    NodePath("/etc/crio/crio.conf", NodeFileRole.CRIO_CONFIG, "CRI-O main config"),
    NodePath(
        "/etc/crio/crio.conf.d/*",
        NodeFileRole.CRIO_DROPIN,
        "every file, recursively, in lexical order; the last wins",
    ),
)


# Where each runtime keeps its images when its config does not say.
RUNTIME_DATA_DIRS: dict[RuntimeKind, PurePosixPath] = {
    RuntimeKind.CONTAINERD: PurePosixPath("/var/lib/containerd"),
    RuntimeKind.CRIO: PurePosixPath("/var/lib/containers/storage"),
    RuntimeKind.CRI_DOCKERD: PurePosixPath("/var/lib/docker"),
    RuntimeKind.DOCKER: PurePosixPath("/var/lib/docker"),
}
