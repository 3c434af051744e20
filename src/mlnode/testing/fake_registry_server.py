"""A fake upstream registry over real HTTP (aiohttp), for testing the mirror in-process.

It serves the pull side of the OCI distribution API for images held in memory, honours
``Range`` (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``: 206 with ``Content-Range``) and can
be told, per blob, to misbehave the ways real upstreams do::

    up = FakeRegistryServer()
    digest = up.add_blob("team/app", data)
    up.stall(digest, at_byte=1000, seconds=5)        # silence before byte 1000
    up.cut(digest, at_byte=4096, times=3)            # close the connection there, 3 times
    up.corrupt(digest)                               # one byte flipped, same length
    up.fail(digest, 503, times=2)                    # answer 503 twice, then serve
    up.require_auth("Basic dTpw", digest=digest)     # 401 + WWW-Authenticate otherwise
    up.ignore_range = True                           # 200 from byte 0, whatever was asked
    async with up.running() as url: ...

It counts the blob bytes it wrote per digest (:attr:`bytes_served`) and records every
request (:attr:`requests`: method, path, Range, Authorization). Stalls end early when the
client goes away, so a test's teardown never waits them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["FakeRegistryServer", "RecordedRequest", "UpstreamImage", "sha256_digest"]

_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_PIECE_BYTES = 64 * 1024
_POLL_SECONDS = 0.02
DEFAULT_CHALLENGE = 'Basic realm="fake-registry"'


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    range: str | None
    authorization: str | None
    monotonic: float


@dataclass(frozen=True)
class UpstreamImage:
    repository: str
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]


@dataclass
class _Faults:
    stall_at_byte: int | None = None
    stall_seconds: float = 0.0
    stall_times: float = 0
    cut_at_byte: int | None = None
    cut_times: float = 0
    corrupt: bool = False
    status: int | None = None
    status_times: float = 0


@dataclass
class _Auth:
    authorization: str
    challenge: str


@dataclass
class FakeRegistryServer:
    """See the module docstring. Not thread-safe: use it from the event loop it runs on."""

    ignore_range: bool = False
    blobs: dict[str, bytes] = field(default_factory=dict)
    bytes_served: dict[str, int] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _repos: dict[str, set[str]] = field(default_factory=dict)
    _manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    _faults: dict[str, _Faults] = field(default_factory=dict)
    _auth: dict[str, _Auth] = field(default_factory=dict)

    # -- content --------------------------------------------------------------------------

    def add_blob(self, repository: str, data: bytes) -> str:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        self._repos.setdefault(repository, set()).add(digest)
        return digest

    def add_image(self, repository: str, tag: str, layers: Sequence[bytes]) -> UpstreamImage:
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        config_digest = self.add_blob(repository, config)
        layer_digests = tuple(self.add_blob(repository, b) for b in layers)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": _MANIFEST,
                "config": {"mediaType": _CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {"mediaType": _LAYER, "digest": d, "size": len(b)}
                    for d, b in zip(layer_digests, layers, strict=True)
                ],
            }
        ).encode()
        manifest_digest = sha256_digest(manifest)
        self._manifests[(repository, tag)] = (manifest_digest, manifest)
        self._manifests[(repository, manifest_digest)] = (manifest_digest, manifest)
        return UpstreamImage(repository, tag, manifest_digest, config_digest, layer_digests)

    # -- faults ---------------------------------------------------------------------------

    def _f(self, digest: str) -> _Faults:
        return self._faults.setdefault(digest, _Faults())

    def stall(
        self, digest: str, *, at_byte: int, seconds: float = math.inf, times: float = 1
    ) -> None:
        """Send nothing for ``seconds`` before blob byte ``at_byte`` (``times`` responses)."""
        f = self._f(digest)
        f.stall_at_byte, f.stall_seconds, f.stall_times = at_byte, seconds, times

    def cut(self, digest: str, *, at_byte: int, times: float = 1) -> None:
        """Close the connection just before blob byte ``at_byte`` (``times`` responses;
        ``math.inf``: always)."""
        f = self._f(digest)
        f.cut_at_byte, f.cut_times = at_byte, times

    def corrupt(self, digest: str, corrupt: bool = True) -> None:
        """Serve the blob with its middle byte flipped (same length, wrong sha256)."""
        self._f(digest).corrupt = corrupt

    def fail(self, digest: str, status: int, *, times: float = math.inf) -> None:
        """Answer ``status`` (404, 500, 503, …) to the next ``times`` GET/HEADs of the blob."""
        f = self._f(digest)
        f.status, f.status_times = status, times

    def require_auth(
        self,
        authorization: str,
        *,
        digest: str | None = None,
        repository: str | None = None,
        challenge: str = DEFAULT_CHALLENGE,
    ) -> None:
        """401 with ``WWW-Authenticate: challenge`` for the blob (or every manifest and blob
        of the repository) unless the request carries exactly ``authorization``."""
        key = digest if digest is not None else f"repo:{repository}"
        self._auth[key] = _Auth(authorization, challenge)

    def blob_requests(self, digest: str, method: str = "GET") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(digest)]

    # -- serving --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self._base)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        return app

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        """Serve on a free loopback port; yields the base URL (``http://127.0.0.1:N``)."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()

    def _record(self, request: web.Request) -> None:
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                request.headers.get("Range"),
                request.headers.get("Authorization"),
                time.monotonic(),
            )
        )

    def _denied(self, request: web.Request, *keys: str) -> web.Response | None:
        for key in keys:
            rule = self._auth.get(key)
            if rule is not None and request.headers.get("Authorization") != rule.authorization:
                return web.Response(
                    status=401,
                    headers={"WWW-Authenticate": rule.challenge},
                    text='{"errors":[{"code":"UNAUTHORIZED"}]}',
                )
        return None

    async def _base(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        self._record(request)
        name, ref = request.match_info["name"], request.match_info["ref"]
        denied = self._denied(request, f"repo:{name}")
        if denied is not None:
            return denied
        found = self._manifests.get((name, ref))
        if found is None:
            return web.Response(status=404, text='{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        digest, body = found
        headers = {"Content-Type": _MANIFEST, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(headers=headers)
        return web.Response(body=body, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        name, digest = request.match_info["name"], request.match_info["digest"]
        denied = self._denied(request, f"repo:{name}", digest)
        if denied is not None:
            return denied
        data = self.blobs.get(digest)
        if data is None or digest not in self._repos.get(name, set()):
            return web.Response(status=404, text='{"errors":[{"code":"BLOB_UNKNOWN"}]}')
        f = self._f(digest)
        if f.status is not None and f.status_times > 0:
            f.status_times -= 1
            return web.Response(status=f.status, text=f"fake: told to answer {f.status}\n")
        if f.corrupt:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        span = None if self.ignore_range else _parse_range(request.headers.get("Range"), len(data))
        if span == _UNSATISFIABLE:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        start, end = (0, len(data)) if span is None else span
        resp = web.StreamResponse(status=200 if span is None else 206)
        resp.headers["Content-Type"] = "application/octet-stream"
        resp.headers["Docker-Content-Digest"] = digest
        if span is not None:
            resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        resp.content_length = end - start
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        await resp.prepare(request)
        await self._send(request, resp, digest, data, start, end, f)
        return resp

    async def _send(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        digest: str,
        data: bytes,
        start: int,
        end: int,
        f: _Faults,
    ) -> None:
        pos = start
        stall = f.stall_at_byte if f.stall_times > 0 else None
        cut = f.cut_at_byte if f.cut_times > 0 else None
        while pos < end:
            stop = end
            for mark in (stall, cut):
                if mark is not None and pos <= mark < stop:
                    stop = mark
            stop = min(stop, pos + _PIECE_BYTES)
            if stop > pos:
                if not await self._write(request, resp, data[pos:stop]):
                    return
                self.bytes_served[digest] = self.bytes_served.get(digest, 0) + stop - pos
                pos = stop
            if cut is not None and pos == cut:
                f.cut_times -= 1
                if request.transport is not None:
                    request.transport.close()  # what was written is flushed first
                return
            if stall is not None and pos == stall:
                f.stall_times -= 1
                stall = None
                if not await _quiet(request, f.stall_seconds):
                    return
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()

    @staticmethod
    async def _write(request: web.Request, resp: web.StreamResponse, piece: bytes) -> bool:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        try:
            await resp.write(piece)
        except ConnectionError:
            return False
        return True


async def _quiet(request: web.Request, seconds: float) -> bool:
    """Send nothing for ``seconds``; False when the client went away meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return True


_UNSATISFIABLE = (-1, -1)


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` half-open; None for no (or an unparsed) Range; _UNSATISFIABLE."""
    if not value:
        return None
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if m is None or not (m.group(1) or m.group(2)):
        return None
    a, b = m.group(1), m.group(2)
    if not a:
        n = int(b)
        return (max(0, size - n), size) if n > 0 else _UNSATISFIABLE
    start = int(a)
    end = min(size, int(b) + 1) if b else size
    if start >= size or end <= start:
        return _UNSATISFIABLE
    return start, end
