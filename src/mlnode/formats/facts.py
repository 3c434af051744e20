"""What a reader knows about one document beyond its values: one frozen dataclass per kind.

Each reader in :mod:`mlnode.formats` puts one of these in :attr:`ParsedDocument.facts
<mlnode.formats.base.ParsedDocument.facts>`; consumers narrow with ``isinstance`` where a
document may be of several kinds, or with :meth:`ParsedDocument.facts_as
<mlnode.formats.base.ParsedDocument.facts_as>` where only one kind can be there.

Which reader puts which, by :class:`~mlnode.formats.base.DocumentKind`:

- ``ENV_FILE``: :class:`EnvFileFacts`
- ``SYSTEMD_UNIT``: :class:`SystemdUnitFacts`
- ``KUBELET_CONFIG`` and ``KUBELET_DROPIN``: :class:`KubeletConfigFacts`
- ``KUBEADM``: :class:`KubeadmFacts`, or :class:`KubeletConfigFacts` for a
  KubeletConfiguration document in the file
- ``KUBESPRAY``: :class:`KubesprayFacts`
- ``CONTAINERD``: :class:`ContainerdFacts`
- ``CRIO``: :class:`CrioFacts`
- ``CONTAINERD_HOSTS``: :class:`HostsTomlFacts`
- a document built without a reader: :class:`NoFacts`

Line numbers are 1-based lines of the file the document was read from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ContainerdFacts",
    "CrioFacts",
    "Decoded",
    "DocumentFacts",
    "EnvFileFacts",
    "HostEntry",
    "HostsTomlFacts",
    "IgnoredAssignment",
    "KubeadmFacts",
    "KubeletConfigFacts",
    "KubesprayFacts",
    "NoFacts",
    "OverriddenAssignment",
    "SystemdUnitFacts",
]

# A value as decoded from YAML or TOML that the reader does not check: genuinely arbitrary
# (str, int, float, bool, datetime, list, dict). ``object`` rather than ``Any`` so that a
# consumer has to narrow it before use.
Decoded = object


@dataclass(frozen=True)
class NoFacts:
    """A document built without a reader (the default of ``ParsedDocument.facts``)."""


# --------------------------------------------------------------------------- env files


@dataclass(frozen=True)
class IgnoredAssignment:
    """``KEY=VALUE`` whose key is not a valid name (``export FOO=1``): systemd drops it."""

    name: str
    value: str
    line: int


@dataclass(frozen=True)
class OverriddenAssignment:
    """An assignment a later one of the same name replaces."""

    name: str
    line: int


@dataclass(frozen=True)
class EnvFileFacts:
    """A systemd EnvironmentFile (formats.envfile.read_env; lexer parts from formats._env_lexer).

    Read by tests only today; they pin what systemd does with odd lines.
    """

    # The lexer: lines systemd ignores (a key without ``=``) and comment lines ending in a
    # backslash (before systemd v254 those continued the comment onto the next line).
    ignored_lines: tuple[int, ...] = ()
    comment_continuations: tuple[int, ...] = ()
    # read_env: assignments systemd drops or a later one replaces, and per kubelet-args
    # variable the positional arguments in its value (they make the kubelet exit).
    ignored_assignments: tuple[IgnoredAssignment, ...] = ()
    overridden: tuple[OverriddenAssignment, ...] = ()
    positional_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# --------------------------------------------------------------------------- systemd units


@dataclass(frozen=True)
class SystemdUnitFacts:
    """kubelet.service or a drop-in (formats.systemd_unit.read_systemd_unit).

    The ``[Service]`` settings after systemd's rule that an empty assignment resets the list.
    node.discovery folds them over the unit and its drop-ins (environment_files and its reset,
    environment, exec_start_argv and its reset); lint's config-dir rule reads environment.
    """

    # EnvironmentFile= paths as written (a leading ``-`` means optional); reset is True when
    # an empty ``EnvironmentFile=`` cleared the list inherited from earlier files.
    environment_files: tuple[str, ...] = ()
    environment_files_reset: bool = False
    # Environment= variables (later ones win).
    environment: Mapping[str, str] = field(default_factory=dict)
    # The last ExecStart= as written and its line (None when there is none or it was reset);
    # reset is True when an empty ``ExecStart=`` cleared the inherited command.
    exec_start: str | None = None
    exec_start_line: int | None = None
    exec_start_reset: bool = False
    # ExecStart= split into words (argv[0] without its ``@-:+!`` prefixes), the ``$VAR``
    # words (split at whitespace when expanded), the ``${VAR}`` references (one word each)
    # and the positional arguments written literally after the flags.
    exec_start_argv: tuple[str, ...] = ()
    env_references: tuple[str, ...] = ()
    env_references_inline: tuple[str, ...] = ()
    positional_args: tuple[str, ...] = ()


# --------------------------------------------------------------------------- kubelet config


@dataclass(frozen=True)
class KubeletConfigFacts:
    """A KubeletConfiguration: the --config file, a --config-dir drop-in, or a document of a
    kubeadm file (formats.kubelet_config; formats.kubeadm for the last).

    lint's config-dir rule reads api_version and kind (a drop-in needs both); the rest is
    read by tests.
    """

    # TypeMeta; None when absent (the reader refuses any other value than the kubelet's).
    api_version: str | None = None
    kind: str | None = None
    # Keys written more than once, with the line of each occurrence (the last one wins).
    duplicate_key_lines: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # The featureGates mapping as written; its values are arbitrary YAML (lint checks them).
    feature_gates: Mapping[str, Decoded] = field(default_factory=dict)
    # Fields written as ``0s`` (the v1beta1 defaulting treats them as unset).
    zero_durations: tuple[str, ...] = ()
    # Keys in Go-marshalled (alphabetical) order plus kubeadm's zero-valued marker durations.
    kubeadm_shape: bool = False
    # In a kubeadm file: the line where this YAML document starts; None for a standalone file.
    document_line: int | None = None
    # In a kubeadm file read only by `kubeadm join` (which takes the kubelet's config from the
    # cluster's kubelet-config ConfigMap): "kubeadm join"; lint does not credit the document.
    kubeadm_ignored_by: str | None = None


# --------------------------------------------------------------------------- kubeadm


@dataclass(frozen=True)
class KubeadmFacts:
    """A kubeadm document other than KubeletConfiguration (formats.kubeadm.read_kubeadm).

    Read by tests; ``document_line`` and ``kubeadm_api_span`` are for messages about the
    document and read by no one yet.
    """

    api_version: str
    kind: str
    # The line where this YAML document starts in its file.
    document_line: int
    # For kubeadm.k8s.io/* documents, the Kubernetes versions that read this API version
    # (Span.describe(), e.g. "since 1.31.0") or "unknown"; None for other API groups.
    kubeadm_api_span: str | None = None
    # ClusterConfiguration's kubernetesVersion as written (arbitrary YAML); None when absent.
    kubernetes_version: Decoded | None = None


# --------------------------------------------------------------------------- kubespray


@dataclass(frozen=True)
class KubesprayFacts:
    """A kubespray group_vars file (formats.kubespray.read_kubespray).

    lint's kubespray-duplicates rule (W212) reads extra_args_duplicating_template; the rest
    is read by tests.
    """

    # Variables written more than once, with the line of each occurrence (the last one wins).
    duplicate_key_lines: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # Variables mlnode knows whose value is a Jinja template: not evaluated, not used.
    templated: tuple[str, ...] = ()
    # The kubelet feature gates the variables set (kubelet_feature_gates wins).
    feature_gates: Mapping[str, bool] = field(default_factory=dict)
    # Flag-list variables given as one string instead of a list.
    flags_given_as_string: tuple[str, ...] = ()
    # Fields in kubelet_config_extra_args that kubespray's template writes too, sorted.
    extra_args_duplicating_template: tuple[str, ...] = ()


# --------------------------------------------------------------------------- runtimes


@dataclass(frozen=True)
class ContainerdFacts:
    """One containerd config file (formats.containerd.read_containerd).

    lint (effective values, runtime rules) reads config_version; read_containerd_with_imports
    reads imports and sets node_path, node.discovery reads node_path;
    effective_containerd_values reads plugin_tables. The rest is read by tests.
    """

    # ``version`` (1 when absent or 0, as containerd reads it) and whether the file has it.
    config_version: int
    config_version_explicit: bool
    # ``imports`` as written.
    imports: tuple[str, ...] = ()
    # Top-level ``root`` and ``state``, and the gRPC socket (version 4's
    # io.containerd.server.v1.grpc plugin address, else ``[grpc] address``), as decoded
    # from TOML and not checked; None when absent.
    root: Decoded | None = None
    state: Decoded | None = None
    grpc_address: Decoded | None = None
    # The CRI plugin tables the file has (e.g. 'plugins."io.containerd.grpc.v1.cri"') and the
    # ids of every [plugins."<id>"] table.
    cri_tables: tuple[str, ...] = ()
    plugin_tables: tuple[str, ...] = ()
    # Set by read_containerd_with_imports: the file's path on the node (the document's path
    # is where it was read, under the root).
    node_path: str | None = None


@dataclass(frozen=True)
class CrioFacts:
    """One CRI-O config file, crio.conf or a drop-in (formats.crio.read_crio).

    Read by tests only today.
    """

    # Storage, image and API settings as decoded from TOML, not checked; None when the file
    # does not set them.
    root: Decoded | None = None
    runroot: Decoded | None = None
    storage_driver: Decoded | None = None
    imagestore: Decoded | None = None
    pause_image: Decoded | None = None
    pinned_images: Decoded | None = None
    pull_progress_timeout: Decoded | None = None
    big_files_temporary_dir: Decoded | None = None
    listen: Decoded | None = None
    # ``<table>.<key>`` of *_timeout keys given as an integer where CRI-O expects a duration
    # string (BurntSushi/toml reads those as nanoseconds).
    integer_durations: tuple[str, ...] = ()
    # The [crio.*] tables the file has.
    tables: tuple[str, ...] = ()
    # Set by read_crio_dir: a drop-in whose name does not end in ``.conf`` (CRI-O applies
    # it all the same).
    not_dot_conf: bool = False


@dataclass(frozen=True)
class HostEntry:
    """One ``[host."URL"]`` table of a hosts.toml, in file order."""

    url: str  # as written
    line: int | None
    capabilities: tuple[str, ...] | None = None  # None: not written (containerd: all)


@dataclass(frozen=True)
class HostsTomlFacts:
    """A containerd registry hosts file, ``<config_path>/<namespace>/hosts.toml``
    (formats.containerd.read_hosts_toml).

    lint reads all of it: E113 the parse error, E114 the namespace directory, W215 the
    order of the hosts.
    """

    # The directory's name: a registry host (``host_port_`` spelled back as ``host:port``)
    # or ``_default``.
    namespace: str
    hosts: tuple[HostEntry, ...] = ()
    server: Decoded | None = None
    # Why containerd cannot decode the file (it logs it and bypasses every host in it),
    # with the line; None when it decodes.
    error: str | None = None
    error_line: int | None = None


DocumentFacts = (
    NoFacts
    | EnvFileFacts
    | SystemdUnitFacts
    | KubeletConfigFacts
    | KubeadmFacts
    | KubesprayFacts
    | ContainerdFacts
    | CrioFacts
    | HostsTomlFacts
)
