"""The files that point a runtime at the node mirror, for ``mlnode render``: which
registries get an entry, and the text of each file. Pure.

containerd: one ``<config_path>/<registry>/hosts.toml`` per registry named, else one
``_default/hosts.toml`` where the containerd version reads it (1.6.17+, 1.7+), else the
registries must be named. CRI-O: one registries.conf.d drop-in naming each registry.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mlnode.errors import UsageError
from mlnode.formats.containerd._hosts import (
    DEFAULT_HOSTS_DIR,
    DEFAULT_NAMESPACE,
    MirrorUrl,
    render_hosts_toml,
)
from mlnode.formats.crio_mirror import CRIO_MIRROR_DROPIN, render_crio_mirror
from mlnode.knowledge.table import hosts_config_path, hosts_default_dir
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = ["MirrorFile", "MirrorFormat", "mirror_files", "mirror_namespaces"]


class MirrorFormat(enum.StrEnum):
    CONTAINERD_HOSTS = "containerd-hosts"
    CRIO_MIRROR = "crio-mirror"


@dataclass(frozen=True)
class MirrorFile:
    path: str  # where it goes on the node
    content: str


def mirror_namespaces(registries: Sequence[str], version: Version) -> list[str]:
    """The hosts directories to write: the registries given, else ``_default`` where this
    containerd reads it; a :class:`UsageError` (``--mirror-registry``) otherwise."""
    if registries:
        return list(dict.fromkeys(registries))
    support = hosts_default_dir(version)
    if not support.supported:
        raise UsageError(
            f"containerd {version} reads no _default hosts directory ({support.source}):"
            " pass --mirror-registry HOST for each registry to wire",
            option="--mirror-registry",
        )
    return [DEFAULT_NAMESPACE]


def mirror_files(
    fmt: MirrorFormat, runtime: RuntimeSpec, mirror: MirrorUrl, registries: Sequence[str]
) -> tuple[list[MirrorFile], list[str]]:
    """The files of ``fmt`` and notes on what else the node needs (config_path, restart)."""
    if fmt is MirrorFormat.CRIO_MIRROR:
        if not registries:
            raise UsageError(
                "CRI-O has no default registry entry: pass --mirror-registry HOST for each"
                " registry to wire",
                option="--mirror-registry",
            )
        notes = ["CRI-O reads registries.conf.d at start and on SIGHUP: systemctl reload crio"]
        return [MirrorFile(CRIO_MIRROR_DROPIN, render_crio_mirror(registries, mirror))], notes
    if runtime.kind is not RuntimeKind.CONTAINERD or runtime.version is None:
        raise UsageError(
            f"containerd-hosts needs a containerd version, not {runtime}", option="--runtime"
        )
    version = runtime.version
    files = [
        MirrorFile(f"{DEFAULT_HOSTS_DIR}/{ns}/hosts.toml", render_hosts_toml(ns, mirror, version))
        for ns in mirror_namespaces(registries, version)
    ]
    row = hosts_config_path(version)
    table = ".".join(f'"{t}"' if "." in t else t for t in row.table)
    notes = []
    if row.default:
        notes.append(
            f"containerd {version} reads {row.default} when config_path is unset: these files"
            " need no config change"
        )
    else:
        notes.append(
            f"containerd {version} reads hosts.toml files only with config_path set: put"
            f' config_path = "{DEFAULT_HOSTS_DIR}" under [{table}] in its config and restart'
            " containerd (it reads config_path only at start; `mlnode apply --mirror` does both)"
        )
    notes.append("containerd reads hosts.toml again on every pull: changing them needs no restart")
    return files, notes
