"""Build the agent from a validated config over the live node, and run it.

What is opened, in order (each failure is one error line, nothing started):
1. the runtime (``runtime_endpoint`` or discovered): CRI + containerd's Content service;
2. the image filesystem (``image_fs``, else what containerd reports as its root);
3. the mirror (``mirror.enabled``): its config file validated, its cache dir;
4. the Kubernetes API (``kubernetes.enabled``: auto = in-cluster or the named kubeconfig;
   an API that is configured but does not answer is logged and retried, never fatal).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from mlnode.agent._agent import Agent
from mlnode.agent._config import AgentConfig
from mlnode.agent._metrics import AgentMetrics
from mlnode.agent._pin import containerd_pinner
from mlnode.agent._service import AgentService, EventPoster, serve
from mlnode.errors import InputError, MlnodeError, RuntimeUnavailable
from mlnode.ops.mirror_cache import cache_for_image_fs
from mlnode.ops.pull_session import runtime_config
from mlnode.ports import ClusterApi
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.discovery import discover_runtime
from mlnode.runtime.fs import FilesystemUsage, image_filesystem

__all__ = ["build_service", "open_cluster", "run_agent"]

log = logging.getLogger("mlnode.agent")


def open_cluster(cfg: AgentConfig) -> ClusterApi | None:
    """The Kubernetes API client the config asks for, or None (no API: log only)."""
    k = cfg.kubernetes
    if k.enabled == "false":
        return None
    from mlnode.kube import connect

    client: ClusterApi | None = connect(kubeconfig=k.kubeconfig)
    if client is None and k.enabled == "true":
        raise InputError(
            "kubernetes.enabled is true but there is no kubeconfig and no in-cluster "
            "service account",
            path=cfg.source,
        )
    return client


def _mirror(cfg: AgentConfig, agent: Agent, ctrd: ContainerdClient) -> tuple[Any, str | None]:
    if not cfg.mirror_enabled:
        return None, None
    from mlnode.mirror import MirrorService, check_config, load_config

    mcfg = check_config(load_config(cfg.mirror_config))
    service = MirrorService(mcfg, space=agent, committed=ctrd.has_content)
    return service, mcfg.url


def _image_fs(cfg: AgentConfig, cri: CriClient, found_root: Path | None) -> Path:
    if cfg.image_fs is not None:
        return cfg.image_fs
    try:
        root, _ = runtime_config(cri)
    except MlnodeError:
        root = None
    fs = root or found_root
    if fs is None:
        raise InputError(
            "cannot tell which filesystem holds the images: set image_fs", path=cfg.source
        )
    return fs


def build_service(cfg: AgentConfig) -> AgentService:
    """Open the runtime, the mirror and the API per ``cfg``; nothing runs yet."""
    found = discover_runtime(cfg.runtime_endpoint)
    if not found.socket_path.exists():
        raise RuntimeUnavailable(f"{found.socket_path}: no such socket (runtime_endpoint)")
    cri = CriClient(found.socket_path)
    ctrd = ContainerdClient(found.socket_path)
    fs_path = _image_fs(cfg, cri, found.root_dir)

    def meter() -> FilesystemUsage:
        return image_filesystem(fs_path)

    metrics = AgentMetrics()
    cluster = open_cluster(cfg)
    events = EventPoster(
        cfg.node_name,
        cluster if (cfg.kubernetes.events or cfg.kubernetes.annotate_node) else None,
        lambda: metrics.errors.labels("kube").inc(),
    )
    mirror_dir: Path | None = None
    if cfg.mirror_enabled:
        from mlnode.mirror import load_config as load_mirror

        mirror_dir = load_mirror(cfg.mirror_config).cache_dir
    else:
        from mlnode.blobcache import DEFAULT_CACHE_DIR

        mirror_dir = DEFAULT_CACHE_DIR
    if cfg.mirror_enabled:
        mirror_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    agent = Agent(
        cfg,
        cri=cri,
        containerd=ctrd,
        meter=meter,
        image_fs=fs_path,
        cache=cache_for_image_fs(mirror_dir, fs_path),
        cluster=cluster,
        events=events if cfg.kubernetes.events else None,
        metrics=metrics,
        pin=containerd_pinner(ctrd, cri),
        annotate=events.annotate,
    )
    mirror, url = _mirror(cfg, agent, ctrd)

    def close() -> None:
        cri.close()
        ctrd.close()
        if cluster is not None:
            cluster.close()

    return AgentService(agent, events=events, mirror=mirror, mirror_url=url, on_stop=close)


def run_agent(cfg: AgentConfig) -> None:
    """Run until SIGTERM or SIGINT (SIGHUP reloads the config)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    service = build_service(cfg)
    asyncio.run(serve(service))
