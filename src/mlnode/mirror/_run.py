"""Running the mirror: build the pieces from a config, listen, reap, stop cleanly.

SIGTERM/SIGINT stop accepting, cancel the fetches (each checkpoints what arrived, so a
restart resumes it) and exit. A ``kill -9`` loses at most the bytes since the last
checkpoint (about 25 ms of bytes): the maps on disk never claim more than the data holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from mlnode.blobcache import BlobCache
from mlnode.errors import InputError, UsageError
from mlnode.mirror._config import MirrorConfig
from mlnode.mirror._engine import Engine
from mlnode.mirror._metrics import MirrorMetrics
from mlnode.mirror._server import Mirror, make_app
from mlnode.mirror._upstream import Upstream

if TYPE_CHECKING:
    from mlnode.ports import SpaceKeeper

__all__ = ["MirrorService", "run_mirror"]

log = logging.getLogger("mlnode.mirror")


class MirrorService:
    """The mirror as an object a host process (the CLI, the agent) starts and stops."""

    def __init__(
        self,
        cfg: MirrorConfig,
        *,
        space: SpaceKeeper | None = None,
        committed: Callable[[str], bool] | None = None,
        access_log: bool = False,
    ) -> None:
        self.cfg = cfg
        self.access_log = access_log
        self.cache = BlobCache(cfg.cache_dir, max_bytes=cfg.cache_max_bytes)
        self.metrics = MirrorMetrics()
        self.upstreams = {
            name: Upstream(up, stall_seconds=cfg.stall_seconds)
            for name, up in cfg.upstreams.items()
        }
        self.engine = Engine(
            cfg, self.cache, self.upstreams, metrics=self.metrics, space=space, committed=committed
        )
        self.mirror = Mirror(cfg, self.engine, self.upstreams)
        self.reap_seconds = cfg.reap_seconds
        self._runner: web.AppRunner | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self.cache.ensure()
        except OSError as e:
            raise InputError(
                f"cannot create the cache: {e.strerror}", path=self.cfg.cache_dir
            ) from None
        # a client waiting on a stalled upstream would hold a graceful stop for aiohttp's
        # default 60 s: cut open requests after a moment (containerd retries elsewhere)
        self._runner = web.AppRunner(
            make_app(self.mirror, access_log=self.access_log),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.cfg.listen_host, self.cfg.listen_port, reuse_address=True
        )
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise UsageError(
                f"cannot listen on {self.cfg.listen}: {e.strerror}", option="--listen"
            ) from None
        marker = self.cfg.cache_dir / "mirror.json"
        marker.write_text(json.dumps({"pid": os.getpid(), "url": self.cfg.url}) + "\n")
        self._reaper = asyncio.create_task(self.engine.reap_loop(self.reap_seconds))
        log.info(
            "mirror listening on %s for %s; cache %s (bound %d bytes)",
            self.cfg.url,
            ", ".join(sorted(self.upstreams)),
            self.cfg.cache_dir,
            self.cfg.cache_max_bytes,
        )

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._runner is not None:
            await self._runner.cleanup()
        await self.engine.close()
        for up in self.upstreams.values():
            await up.close()
        with contextlib.suppress(OSError):
            (self.cfg.cache_dir / "mirror.json").unlink()
        log.info("mirror stopped")


async def _serve(service: MirrorService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


def run_mirror(
    cfg: MirrorConfig,
    *,
    space: SpaceKeeper | None = None,
    committed: Callable[[str], bool] | None = None,
    access_log: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT."""
    service = MirrorService(cfg, space=space, committed=committed, access_log=access_log)
    asyncio.run(_serve(service))
