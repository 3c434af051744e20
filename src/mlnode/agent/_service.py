"""The agent as a long-running asyncio service: the control loop, the warm pulls, the
hosted mirror, the HTTP endpoints and the Events, started and stopped as one.

Lifecycle:
- start: the config was validated by the caller; the runtime is opened (an unreachable
  one is not fatal: the agent reports not ready and keeps trying); the state is loaded;
  the HTTP endpoints listen; the mirror (when enabled) starts with the agent as its
  SpaceKeeper; the loop runs a pass every ``interval_seconds`` and at once when woken.
- SIGHUP: the config file is read again; a bad one is logged and the old one kept.
- SIGTERM / SIGINT: no new pull or pass starts; the mirror stops (its fetches checkpoint
  their maps); the state is saved; in-flight CRI pulls are left to containerd (their gRPC
  calls end with the process, which cancels them; the mirror resumes their bytes at the
  next start). Exits within ``stop_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlnode.agent._agent import Agent
from mlnode.agent._config import load_config
from mlnode.errors import MlnodeError, UsageError
from mlnode.ports import ClusterApi

__all__ = ["STATUS_SCHEMA", "AgentService", "EventPoster", "status_json"]

log = logging.getLogger("mlnode.agent")

STATUS_SCHEMA = "mlnode.agent.status/v1"


class EventPoster:
    """Posts Events from a worker thread, so an API that hangs never holds up a pass;
    without an API (or with events off) it only logs. A full queue drops the Event and
    counts it (``errors_total{kind="kube"}``)."""

    def __init__(self, agent_node: str, cluster: ClusterApi | None, on_error: Callable[[], None]):
        self.node = agent_node
        self.cluster = cluster
        self.on_error = on_error
        self.posted = 0
        self._q: queue.Queue[tuple[str, str, bool] | dict[str, str | None] | None]
        self._q = queue.Queue(maxsize=256)
        self._thread: threading.Thread | None = None
        if cluster is not None:
            self._thread = threading.Thread(target=self._run, name="mlnode-events", daemon=True)
            self._thread.start()

    def __call__(self, reason: str, message: str, warning: bool) -> None:
        if self.cluster is None:
            return
        try:
            self._q.put_nowait((reason, message, warning))
        except queue.Full:
            self.on_error()

    def annotate(self, annotations: dict[str, str | None]) -> None:
        """Merge-patch the Node's annotations, off the loop like the Events."""
        if self.cluster is None:
            return
        try:
            self._q.put_nowait(dict(annotations))
        except queue.Full:
            self.on_error()

    def _run(self) -> None:
        assert self.cluster is not None
        while (item := self._q.get()) is not None:
            try:
                if isinstance(item, dict):
                    self.cluster.annotate_node(self.node, item)
                    continue
                reason, message, warning = item
                self.cluster.post_event(self.node, reason=reason, message=message, warning=warning)
                self.posted += 1
            except MlnodeError as e:
                self.on_error()
                log.warning("kubernetes API: %s", e)

    def close(self, timeout_seconds: float = 2.0) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._q.put_nowait(None)
            self._thread.join(timeout_seconds)


def status_json(service: AgentService) -> dict[str, Any]:
    a = service.agent
    fs = a.fs
    return {
        "schema": STATUS_SCHEMA,
        "node": a.cfg.node_name,
        "ready": a.ready_reason is None,
        "not_ready_reason": a.ready_reason,
        "config": str(a.cfg.source) if a.cfg.source else None,
        "labels": {"source": a.labels_source, "labels": dict(a.labels)},
        "image_fs": {
            "path": str(a.image_fs),
            "capacity_bytes": fs.capacity_bytes if fs else None,
            "available_bytes": fs.available_bytes if fs else None,
            "used_bytes": fs.used_bytes if fs else None,
        },
        "headroom": {
            "target_bytes": a.target[0],
            "why": a.target[1],
            "incoming_bytes": a.incoming_bytes,
        },
        "gc": {"runs": a.gc_runs, "last": a.last_gc.to_json() if a.last_gc else None},
        "warm": [_with_mirror_bytes(w, service.mirror) for w in a.warm_status()],
        "pulls_in_flight": [{"ref": r, "bytes": n} for r, n in sorted(a.in_flight.items())],
        "mirror": {"enabled": service.mirror is not None, "url": service.mirror_url},
        "kubernetes": {
            "connected": a.cluster is not None,
            "last_error": a.kube_error,
            "events_posted": service.events.posted,
        },
        "last_pass_unix": service.last_pass_unix,
    }


def _with_mirror_bytes(warm: dict[str, Any], mirror: Any) -> dict[str, Any]:
    """A warm image's bytes so far and in all, from the hosted mirror's fetches that a
    manifest of that image named (null without a mirror: containerd's ingests carry no
    image name)."""
    fetched = total = None
    if mirror is not None:
        fetches = [f for f in mirror.engine.fetches.values() if f.image == warm["image"]]
        fetched = sum(f.contiguous_bytes for f in fetches)
        total = sum(f.size_bytes for f in fetches)
    return {**warm, "mirror_bytes": fetched, "mirror_size_bytes": total}


class AgentService:
    def __init__(
        self,
        agent: Agent,
        *,
        events: EventPoster,
        mirror: Any = None,
        mirror_url: str | None = None,
        stop_seconds: float = 10.0,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.agent = agent
        self.events = events
        self.mirror = mirror
        self.mirror_url = mirror_url
        self.stop_seconds = stop_seconds
        self.on_stop = on_stop
        self.last_pass_unix: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._pulls: set[asyncio.Task[None]] = set()
        self._aio: asyncio.AbstractEventLoop | None = None

    # --- HTTP ----------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/mlnode/v1/agent/status", self._status)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        reason = self.agent.ready_reason
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.agent.metrics.registry)
        if self.mirror is not None:
            body += generate_latest(self.mirror.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, _: web.Request) -> web.Response:
        return web.json_response(status_json(self))

    # --- the loop ------------------------------------------------------------------------

    def wake(self) -> None:
        """Run a pass now (thread-safe: the mirror calls it from a worker thread)."""
        if self._aio is not None and not self._stopping:
            self._aio.call_soon_threadsafe(self._wake.set)

    async def _loop(self) -> None:
        trigger = "interval"
        while not self._stopping:
            try:
                start = await asyncio.to_thread(self.agent.tick, trigger)
            except Exception:  # a bug must not kill the node's agent: log it, keep going
                log.exception("pass failed")
                self.agent.metrics.errors.labels("runtime").inc()
                start = []
            self.last_pass_unix = time.time()
            for image in start:
                if self._stopping:
                    break
                log.info("warm image %s: pulling", image)
                task = asyncio.create_task(asyncio.to_thread(self.agent.pull_warm, image))
                self._pulls.add(task)
                task.add_done_callback(self._pull_done)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.agent.cfg.interval_seconds)
                trigger = "pull-start"
            except TimeoutError:
                trigger = "interval"

    def _pull_done(self, task: asyncio.Task[None]) -> None:
        self._pulls.discard(task)
        if not self._stopping:
            self._wake.set()  # a pull ended: look again (next warm image, headroom)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._aio = asyncio.get_running_loop()
        self.agent.wake = self.wake
        cfg = self.agent.cfg
        self._runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.listen_host, cfg.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise UsageError(
                f"cannot listen on {cfg.listen}: {e.strerror}", option="listen"
            ) from None
        if self.mirror is not None:
            try:
                await self.mirror.start()
            except BaseException:
                await self._runner.cleanup()
                raise
        self._loop_task = asyncio.create_task(self._loop())
        log.info(
            "agent for node %s listening on %s; mirror %s; %d warm image(s) configured",
            cfg.node_name,
            cfg.url,
            self.mirror_url or "off",
            len(cfg.warm_images),
        )
        self.events("MlnodeAgentStarted", f"mlnode agent started on {cfg.node_name}", False)

    def reload(self) -> None:
        source = self.agent.cfg.source
        if source is None:
            return
        try:
            cfg = load_config(source)
        except MlnodeError as e:
            self.agent.metrics.errors.labels("config").inc()
            log.error("reload: %s (keeping the running config)", e)
            return
        self.agent.reconfigure(cfg)
        log.info("reload: %s read; %d warm image(s)", source, len(cfg.warm_images))
        self.wake()

    async def stop(self) -> None:
        self._stopping = True
        deadline = time.monotonic() + self.stop_seconds
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self.mirror is not None:
            try:
                await asyncio.wait_for(self.mirror.stop(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("mirror did not stop in time")
        self.agent._save_warm_state()
        if self._runner is not None:
            await self._runner.cleanup()
        self.events.close(max(0.1, min(2.0, deadline - time.monotonic())))
        self.on_stop()
        log.info("agent stopped (%d warm pull(s) left to containerd)", len(self._pulls))


async def serve(service: AgentService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()
