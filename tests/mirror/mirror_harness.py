"""An in-process mirror (mlnode.mirror.MirrorService on a loopback port, a temp BlobCache)
in front of the fake upstream (mlnode.testing.fake_registry_server), and an aiohttp client.

Tests are plain functions that ``asyncio.run`` a scenario (no pytest plugin needed). Every
client request carries a generous total timeout: a hang fails the test instead of blocking
the suite (it is a guard, never an assertion about speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from mlnode.mirror import MirrorConfig, MirrorService, UpstreamConfig
from mlnode.testing.fake_registry_server import FakeRegistryServer

T = TypeVar("T")
REGISTRY = "registry.test"
REPO = "team/app"
GUARD_SECONDS = 20.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def blob_bytes(size: int, seed: int = 1) -> bytes:
    """Deterministic pseudo-random bytes (a distinct blob per seed)."""
    return random.Random(seed).randbytes(size)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Harness:
    up: FakeRegistryServer
    up_url: str
    service: MirrorService
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.service.cfg.url

    def blob_url(
        self, digest: str, repo: str = REPO, ns: str | None = REGISTRY, query: str = ""
    ) -> str:
        q = f"?ns={ns}" if ns is not None else ""
        return f"{self.url}/v2/{repo}/blobs/{digest}{q}{query}"

    async def get(
        self, url: str, *, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.session.request(method, url, headers=headers or {}) as r:
            body = await r.read()
            return r.status, dict(r.headers), body

    async def blob(
        self,
        digest: str,
        *,
        range_: str | None = None,
        auth: str | None = None,
        method: str = "GET",
        repo: str = REPO,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {}
        if range_ is not None:
            headers["Range"] = range_
        if auth is not None:
            headers["Authorization"] = auth
        return await self.get(self.blob_url(digest, repo), headers=headers, method=method)

    async def settle(self, digest: str) -> None:
        """Wait until the engine's fetch of ``digest`` has finished (complete or failed)."""
        fetch = self.service.engine.fetches[digest]
        await asyncio.wait_for(fetch.done(), GUARD_SECONDS)


def config(tmp_path: Path, up_url: str, **over: Any) -> MirrorConfig:
    cfg = MirrorConfig(
        listen_host="127.0.0.1",
        listen_port=free_port(),
        cache_dir=tmp_path / "cache",
        chunk_bytes=64 * 1024,
        connections=4,
        stall_seconds=0.3,
        retries=3,
        reap_seconds=3600,
        upstreams={REGISTRY: UpstreamConfig(registry=REGISTRY, endpoint=up_url)},
    )
    return replace(cfg, **over)


@contextlib.asynccontextmanager
async def mirror(
    tmp_path: Path,
    up: FakeRegistryServer | None = None,
    *,
    backoff_seconds: float = 0.01,
    space: Any = None,
    committed: Callable[[str], bool] | None = None,
    **over: Any,
) -> AsyncIterator[Harness]:
    """A running mirror in front of ``up`` (served on a loopback port meanwhile)."""
    up = up if up is not None else FakeRegistryServer()
    async with up.running() as up_url:
        cfg = config(tmp_path, up_url, **over)
        service = MirrorService(cfg, space=space, committed=committed)
        service.engine.settings.backoff_seconds = backoff_seconds
        await service.start()
        timeout = aiohttp.ClientTimeout(total=GUARD_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            try:
                yield Harness(up, up_url, service, session)
            finally:
                await service.stop()


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (bounded by the guard; a hang fails the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_SECONDS
    while True:
        got = check()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def read_short(
    h: Harness, url: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, bool]:
    """``(status, bytes received, ended short)``: a body cut before its Content-Length is
    what the client of a failed fetch sees."""
    got = bytearray()
    async with h.session.get(url, headers=headers or {}) as r:
        try:
            async for piece in r.content.iter_any():
                got += piece
        except aiohttp.ClientPayloadError:
            return r.status, bytes(got), True
        return r.status, bytes(got), False


def metric(h: Harness, name: str, **labels: str) -> float:
    """A sample's value from the mirror's own registry (0 when absent)."""
    value = h.service.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
