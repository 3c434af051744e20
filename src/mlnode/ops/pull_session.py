"""One pull against this node: the running containerd's own config, then the puller.

:func:`open_and_pull` finds the runtime, reads where containerd keeps its images and its
registry hosts config (verbose CRI ``Status``), opens the registry client and runs
:class:`mlnode.ops.pull.Puller` with image GC as the way to free space; or, when the
node is wired to the node mirror for the image's registry (``via`` ``auto`` or
``mirror``), :class:`mlnode.ops.pull.MirrorPuller`, which pulls by CRI ``PullImage``
through the mirror. :func:`choose_path` decides. The events a pull
emits are described in docs/pull.md; :func:`error_event` is the last one of a failed pull.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.errors import MlnodeError, UsageError
from mlnode.ops.gc_runtime import digests_from_ingest_refs
from mlnode.ops.mirror_cache import cache_for_image_fs, reclaimable_bytes
from mlnode.ops.mirror_status import StatusReader, fetch_status, wired_mirror
from mlnode.ops.pull import (
    EventSink,
    MirrorPuller,
    Puller,
    PullOptions,
    PullResult,
    gc_free_space,
)
from mlnode.registry.client import RegistryClient
from mlnode.registry.reference import parse_reference
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.discovery import discover_runtime
from mlnode.runtime.fs import FilesystemUsage, image_filesystem

__all__ = [
    "DEFAULT_HOSTS_DIR",
    "VIA_CHOICES",
    "choose_path",
    "error_event",
    "open_and_pull",
    "registry_config_path",
    "runtime_config",
]

#: Where containerd's registry hosts config lives when the running containerd names none.
DEFAULT_HOSTS_DIR = Path("/etc/containerd/certs.d")
#: ``mlnode pull --via``: auto = the mirror when the node is wired for the registry.
VIA_CHOICES = ("auto", "mirror", "engine")


def registry_config_path(config_json: str | None) -> Path | None:
    """The registry ``config_path`` (hosts.toml tree) in the CRI plugin's config, as
    containerd's verbose CRI ``Status`` reports it under ``info["config"]``; None if absent
    or unreadable."""
    if not config_json:
        return None
    try:
        cfg = json.loads(config_json)
    except ValueError:
        return None
    registry = cfg.get("registry") if isinstance(cfg, dict) else None
    path = registry.get("configPath") if isinstance(registry, dict) else None
    return Path(path) if isinstance(path, str) and path else None


def runtime_config(cri: CriClient) -> tuple[Path | None, Path | None]:
    """(containerd root, registry config_path) as the running containerd reports them."""
    status = cri.status(verbose=True)
    return status.containerd_root_dir(), registry_config_path(status.info.get("config"))


def error_event(e: MlnodeError) -> dict[str, Any]:
    """The ``error`` event that ends a failed pull's JSON lines (docs/pull.md)."""
    return {
        "event": "error",
        "error": type(e).__name__,
        "exit_code": e.exit_code,
        "message": str(e),
    }


def choose_path(
    via: str, registry: str, config_path: Path | None, *, read: StatusReader = fetch_status
) -> tuple[str | None, str]:
    """(the mirror's URL, or None for the engine; one line why) for ``--via``.

    ``mirror`` on a node not wired for ``registry`` is refused (UsageError); ``auto``
    falls back to the engine. ``config_path`` is the running containerd's: what it will
    really use for the CRI pull."""
    if via not in VIA_CHOICES:
        raise UsageError(f"must be one of {', '.join(VIA_CHOICES)}, not {via!r}", option="--via")
    if via == "engine":
        return None, "--via engine"
    status, why = wired_mirror(registry, config_path, read=read)
    if status is not None:
        return status.url, why
    if via == "mirror":
        raise UsageError(f"the node is not wired to a mirror: {why}", option="--via")
    return None, f"not wired: {why}"


def open_and_pull(
    image: str,
    *,
    runtime_endpoint: str | None,
    hosts_dir: Path | None,
    docker_config: Path | None,
    image_fs: Path | None,
    state_file: Path | None,
    options: PullOptions,
    emit: EventSink,
    mirror_cache: Path | None = DEFAULT_CACHE_DIR,
    via: str = "auto",
) -> PullResult:
    """Connect to the runtime and the registry and run one pull (``via``: see
    :func:`choose_path`). ``mirror_cache`` is the node mirror's cache: its reclaimable
    bytes count as freeable, and GC frees it first."""
    registry_host = parse_reference(image).registry
    found = discover_runtime(runtime_endpoint)
    with CriClient(found.socket_path) as cri, ContainerdClient(found.socket_path) as ctrd:
        root, configured_hosts = runtime_config(cri)
        mirror_url, why = choose_path(via, registry_host, configured_hosts)
        emit(
            {
                "event": "path",
                "via": "engine" if mirror_url is None else "mirror",
                "mirror": mirror_url,
                "reason": why,
            }
        )
        fs_path = image_fs or root or found.root_dir
        if fs_path is None:
            raise UsageError(
                "cannot tell which filesystem holds the runtime's images", option="--image-fs"
            )
        hosts = hosts_dir or configured_hosts or DEFAULT_HOSTS_DIR

        def measure() -> FilesystemUsage:
            return image_filesystem(fs_path)

        cache = cache_for_image_fs(mirror_cache, fs_path)

        def reclaimable() -> int:
            in_flight = digests_from_ingest_refs(s.ref for s in ctrd.list_statuses())
            return reclaimable_bytes(cache, in_flight)

        with RegistryClient(
            hosts_dir=hosts,
            docker_config=docker_config,
            read_timeout_seconds=options.stall_timeout_seconds,
            max_connections=max(8, options.connections * 2),
        ) as registry:
            common: dict[str, Any] = {
                "registry": registry,
                "containerd": ctrd,
                "cri": cri,
                "filesystem": measure,
                "options": options,
                "emit": emit,
                "free_space": gc_free_space(
                    cri,
                    ctrd,
                    fs_path,
                    state_file=state_file,
                    emit=emit,
                    measure=measure,
                    cache=cache,
                ),
                "reclaimable": reclaimable if cache is not None else None,
            }
            if mirror_url is None:
                return Puller(**common).pull(image)
            # a connection of its own for the PullImage: closing it cancels a stalled call
            with CriClient(found.socket_path) as pull_service:
                return MirrorPuller(
                    mirror_url=mirror_url,
                    read_status=fetch_status,
                    pull_service=pull_service,
                    **common,
                ).pull(image)
