"""One way to read a node: its files under a root, its kubelet command line, its binaries.

Layering: ``knowledge → formats → node → lint/planning → ops → cli``. This package reads
files (always through :mod:`mlnode.rootpath`) and runs commands only through an injected
:data:`Runner`; ``mlnode apply`` (strict), ``mlnode lint --root`` and ``mlnode plan``'s
inspection (lenient) all discover a node here.
"""

from mlnode.node.commands import (
    VERSION_PARSERS,
    CommandResult,
    Runner,
    VersionProbe,
    parse_containerd_version,
    parse_crio_version,
    parse_kubelet_version,
    probe_version,
    run_command,
)
from mlnode.node.discovery import (
    BIN_DIRS,
    CONTAINERD_CONFIG,
    CRIO_CONFIG,
    CRIO_DIR,
    Binary,
    UnitCommand,
    containerd_config_files,
    containerd_hosts_files,
    crio_config_files,
    find_binary,
    kubelet_dropins,
    read_kubelet_command,
    read_unit_command,
    unit_binary,
    unit_files,
)
from mlnode.node.files import NodeFiles, discover_node_files, runtime_data_dir
from mlnode.rootpath import RootEscape, host_path, node_path_of, read_path, read_text

__all__ = [
    "BIN_DIRS",
    "CONTAINERD_CONFIG",
    "CRIO_CONFIG",
    "CRIO_DIR",
    "VERSION_PARSERS",
    "Binary",
    "CommandResult",
    "NodeFiles",
    "RootEscape",
    "Runner",
    "UnitCommand",
    "VersionProbe",
    "containerd_config_files",
    "containerd_hosts_files",
    "crio_config_files",
    "discover_node_files",
    "find_binary",
    "host_path",
    "kubelet_dropins",
    "node_path_of",
    "parse_containerd_version",
    "parse_crio_version",
    "parse_kubelet_version",
    "probe_version",
    "read_kubelet_command",
    "read_path",
    "read_text",
    "read_unit_command",
    "run_command",
    "runtime_data_dir",
    "unit_binary",
    "unit_files",
]
