"""How containerd (and CRI-O) find a registry mirror: the facts ``mlnode apply --mirror``,
``mlnode render --format containerd-hosts`` and lint's E113/E114/W215 look up.

Read from containerd's git history (github.com/containerd/containerd, tags named in each
row's ``source``) and containers/image's man pages. Read through
:mod:`mlnode.knowledge.table`, which holds the lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlnode.knowledge.spans import Span, v

__all__ = [
    "CRIO_REGISTRIES_DROPIN_DIR",
    "HOSTS_CONFIG_PATHS",
    "HOSTS_DEFAULT_DIRS",
    "HOSTS_DIAL_TIMEOUT",
    "ConfigPathRow",
    "HostsFeature",
]


@dataclass(frozen=True)
class HostsFeature:
    """Whether containerd versions ``span`` have a hosts.toml feature."""

    span: Span
    supported: bool
    source: str


@dataclass(frozen=True)
class ConfigPathRow:
    """Where containerd versions ``span`` read ``config_path`` (the hosts directory root),
    and what they use when it is not set."""

    span: Span
    # the CRI registry table holding config_path, for a file of the native config version
    table: tuple[str, ...]
    config_version: int  # the file version that table belongs to
    # what an unset (or empty) config_path means: "" = no hosts directory at all
    default: str
    source: str


# `_default`: a `<config_path>/_default/hosts.toml` used for every registry without a
# directory of its own. hostPaths (remotes/docker/config/config_unix.go) gained it in
# commit f0bf9e7f8 "Support default hosts.toml configuration" (PR #7607), first released in
# v1.7.0; cherry-picked to release/1.6 as 1436641b8, first in v1.6.17 (v1.6.16's
# config_unix.go has no `_default`, v1.6.17's has).
HOSTS_DEFAULT_DIRS: tuple[HostsFeature, ...] = (
    HostsFeature(
        span=Span(until=v("1.6.17", "1.7.0")),
        supported=False,
        source="containerd v1.6.0-v1.6.16 remotes/docker/config/config_unix.go hostPaths:"
        " only <host_port_> and <host>",
    ),
    HostsFeature(
        span=Span(since=v("1.6.17", "1.7.0")),
        supported=True,
        source="containerd v1.6.17 (1436641b8) and v1.7.0 (f0bf9e7f8, PR #7607)"
        " remotes/docker/config/config_unix.go hostPaths: <host_port_>, <host>, _default;"
        " core/remotes/docker/config/config_unix.go from v2.0.0",
    ),
)

# `dial_timeout` in a [host."..."] table: hostFileConfig gained `DialTimeout string
# toml:"dial_timeout"` in c4982bffc "Add dial timeout field to hosts toml configuration"
# (PR #11106), first released in v2.1.0; backported to release/2.0 as b50cbbc98 (PR #12136),
# first in v2.0.7. Earlier versions decode hosts.toml leniently: the key is ignored and
# the dial timeout stays 30 s (the default transport's net.Dialer).
HOSTS_DIAL_TIMEOUT: tuple[HostsFeature, ...] = (
    HostsFeature(
        span=Span(until=v("2.0.7", "2.1.0")),
        supported=False,
        source="containerd v1.6.x-v2.0.6 remotes/docker/config/hosts.go hostFileConfig has no"
        " dial_timeout (dials time out after 30 s)",
    ),
    HostsFeature(
        span=Span(since=v("2.0.7", "2.1.0")),
        supported=True,
        source="containerd v2.1.0 (c4982bffc, PR #11106) and v2.0.7 (b50cbbc98, PR #12136)"
        " core/remotes/docker/config/hosts.go hostFileConfig.DialTimeout",
    ),
)

_CRI_V2_REGISTRY = ("plugins", "io.containerd.grpc.v1.cri", "registry")
_CRI_V3_REGISTRY = ("plugins", "io.containerd.cri.v1.images", "registry")

# config_path is a list of roots (filepath.SplitList, ':'-separated on Linux), each searched
# with hostPaths for the registry's directory; the first root that has one wins
# (hostDirFromRoots in pkg/cri/server/image_pull.go, internal/cri/server/images in 2.x).
# Setting it while [registry.mirrors] (or configs.*.tls) is set stops the CRI plugin:
# "`mirrors` cannot be set when `config_path` is provided" (ValidatePluginConfig).
HOSTS_CONFIG_PATHS: tuple[ConfigPathRow, ...] = (
    ConfigPathRow(
        span=Span(until=v("2.0.0")),
        table=_CRI_V2_REGISTRY,
        config_version=2,
        default="",
        source="containerd v1.6.20 pkg/cri/config/config.go Registry.ConfigPath (no default);"
        " pkg/cri/server/image_pull.go:318-336 hostDirFromRoots, registryHosts",
    ),
    ConfigPathRow(
        span=Span(since=v("2.0.0"), until=v("2.2.0")),
        table=_CRI_V3_REGISTRY,
        config_version=3,
        default="",
        source="containerd v2.0.0-v2.1.x internal/cri/config/config_unix.go DefaultImageConfig"
        " (no Registry); plugins/cri/images migrates the version 2 registry table",
    ),
    ConfigPathRow(
        span=Span(since=v("2.2.0")),
        table=_CRI_V3_REGISTRY,
        config_version=3,
        default="/etc/containerd/certs.d:/etc/docker/certs.d",
        source="containerd v2.2.0 internal/cri/config/config_unix.go:36 DefaultImageConfig"
        " (5386802f8 'Default config_path if legacy registry options are not set');"
        " plugins/cri/images/plugin.go fills it in for migrated files too",
    ),
)

# CRI-O (containers/image): /etc/containers/registries.conf, then every *.conf in
# registries.conf.d in alpha-numerical order; a [[registry]] with the same prefix as an
# earlier one replaces it; [[registry.mirror]] entries are tried in order, then the
# location; `insecure = true` allows plain HTTP (docs/containers-registries.conf.5.md,
# docs/containers-registries.conf.d.5.md). CRI-O re-reads it on SIGHUP (crio.conf(5)).
CRIO_REGISTRIES_DROPIN_DIR = "/etc/containers/registries.conf.d"
