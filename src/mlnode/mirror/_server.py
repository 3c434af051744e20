"""The mirror's HTTP side (aiohttp): the OCI distribution API's pull half, health, metrics
and status.

Which upstream a request is for comes from containerd's ``?ns=<registry>``; a registry that
is not configured gets 404 (containerd then falls through to its next host) and a log line:
the mirror is not an open proxy. Manifests are passed through (small; the client's
``Authorization`` and ``Accept`` go upstream, the upstream's status and challenge come
back). Blobs go through the engine; every client Range — ``bytes=a-b``, open-ended
``bytes=a-`` and suffix ``bytes=-n`` — is answered 206 with ``Content-Range``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import Any

from aiohttp import web

from mlnode.mirror._config import MirrorConfig
from mlnode.mirror._engine import Answer, Engine, Through
from mlnode.mirror._fetch import BlobFetch
from mlnode.mirror._upstream import FORWARDED_REQUEST_HEADERS, Upstream, UpstreamFailure

__all__ = ["STATUS_SCHEMA", "Mirror", "make_app"]

log = logging.getLogger("mlnode.mirror")

STATUS_SCHEMA = "mlnode.mirror.status/v1"
_MANIFEST_LIMIT_BYTES = 16 * 1024 * 1024
_MANIFEST_HEADERS = ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate", "ETag")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_API_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


class Mirror:
    def __init__(self, cfg: MirrorConfig, engine: Engine, upstreams: dict[str, Upstream]) -> None:
        self.cfg = cfg
        self.engine = engine
        self.upstreams = upstreams
        self.metrics = engine.metrics

    # -- helpers ---------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[Upstream | None, str]:
        """The upstream and repository of a request: ``?ns=`` (containerd), else a first
        path segment naming a configured registry (CRI-O's mirror location
        ``<mirror>/<registry>``, ``:`` written ``_``), else the default registry."""
        name = request.match_info["name"]
        if "ns" not in request.query:
            first, sep, rest = name.partition("/")
            for registry in self.upstreams:
                if sep and first == registry.replace(":", "_"):
                    return self.upstreams[registry], rest
        return self._upstream(request), name

    def _upstream(self, request: web.Request) -> Upstream | None:
        ns = request.query.get("ns")
        up = self.cfg.upstream_for(ns)
        if up is None:
            log.warning(
                "refused %s %s: ?ns=%s is not a configured upstream",
                request.method,
                request.path,
                ns,
            )
            return None
        return self.upstreams[up.registry]

    def _count(self, kind: str, request: web.Request, status: int) -> None:
        self.metrics.requests.labels(kind, request.method, str(status)).inc()

    @staticmethod
    def _forwarded(request: web.Request) -> dict[str, str]:
        return {h: v for h in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(h))}

    def _reply(self, kind: str, request: web.Request, a: Answer) -> web.Response:
        self._count(kind, request, a.status)
        body = b"" if request.method == "HEAD" else a.body
        return web.Response(status=a.status, headers={**_API_HEADERS, **a.headers}, body=body)

    def _not_ours(self, kind: str, request: web.Request) -> web.Response:
        msg = f"mlnode mirror: registry {request.query.get('ns')!r} is not configured\n"
        return self._reply(kind, request, Answer(404, {}, msg.encode()))

    # -- routes ----------------------------------------------------------------------------

    async def base(self, request: web.Request) -> web.Response:
        self._count("other", request, 200)
        return web.json_response({}, headers=_API_HEADERS)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def metrics_(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status_doc())

    def status_doc(self) -> dict[str, Any]:
        blobs = [_blob_status(f) for f in self.engine.fetches.values()]
        return {
            "schema": STATUS_SCHEMA,
            "pid": os.getpid(),
            "listen": self.cfg.listen,
            "cache": {
                "dir": str(self.cfg.cache_dir),
                "disk_bytes": self.engine.cache.total_disk_bytes(),
                "max_bytes": self.cfg.cache_max_bytes,
            },
            "upstreams": sorted(self.upstreams),
            "blobs": blobs,
        }

    async def manifest(self, request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        up, name = self._route(request)
        if up is None:
            return self._not_ours("manifest", request)
        if not _NAME_RE.match(name):
            return self._reply("manifest", request, Answer(400, {}, b"bad repository name\n"))
        path = f"/v2/{name}/manifests/{ref}"
        try:
            resp = await up.request(request.method, path, headers=self._forwarded(request))
        except UpstreamFailure as e:
            self.metrics.errors.labels(up.registry, str(e.status)).inc()
            return self._reply("manifest", request, Answer(e.status, {}, f"{e.reason}\n".encode()))
        try:
            body = (
                await resp.content.read(_MANIFEST_LIMIT_BYTES) if request.method == "GET" else b""
            )
        finally:
            resp.release()
        headers = {h: v for h in _MANIFEST_HEADERS if (v := resp.headers.get(h))}
        if resp.status == 200:
            self._remember_image(up.registry, name, ref, headers.get("Docker-Content-Digest"), body)
        elif resp.status != 401:
            self.metrics.errors.labels(up.registry, str(resp.status)).inc()
        self._count("manifest", request, resp.status)
        out = web.Response(status=resp.status, headers={**_API_HEADERS, **headers}, body=body)
        if request.method == "HEAD" and resp.headers.get("Content-Length"):
            out.headers["Content-Length"] = resp.headers["Content-Length"]
        return out

    def _remember_image(
        self, registry: str, name: str, ref: str, digest: str | None, body: bytes
    ) -> None:
        """digest → image reference, so the status can say which image a blob is for."""
        images = self.engine.images
        if _DIGEST_RE.match(ref):
            image = images.get(ref, f"{registry}/{name}@{ref}")
        else:
            image = f"{registry}/{name}:{ref}"
        if digest:
            images.setdefault(digest, image)
        if not body:
            return
        try:
            doc = json.loads(body)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        children = [
            doc.get("config"),
            *list(doc.get("layers") or []),
            *list(doc.get("manifests") or []),
        ]
        for child in children:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                images[child["digest"]] = image
                if isinstance(child.get("mediaType"), str):
                    self.engine.media_types[child["digest"]] = child["mediaType"]
                live = self.engine.fetches.get(child["digest"])
                if live is not None and live.image is None:
                    live.image = image
        for table in (images, self.engine.media_types):
            if len(table) > 100_000:  # bounded: forget the oldest half
                for k in list(table)[: len(table) // 2]:
                    del table[k]

    async def blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        up, name = self._route(request)
        if up is None:
            return self._not_ours("blob", request)
        if not _NAME_RE.match(name) or not _DIGEST_RE.match(digest):
            return self._reply("blob", request, Answer(400, {}, b"bad repository or digest\n"))
        auth = self._forwarded(request)
        result = await self.engine.blob(up, name, digest, auth)
        if isinstance(result, Answer):
            return self._reply("blob", request, result)
        if isinstance(result, Through):
            return await self._through(request, up, name, digest, auth, result.reason)
        return await self._send(request, up.registry, result)

    async def _send(
        self, request: web.Request, registry: str, fetch: BlobFetch
    ) -> web.StreamResponse:
        size = fetch.size_bytes
        span = _parse_range(request.headers.get("Range"), size)
        if span is None:
            headers = {**_API_HEADERS, "Content-Range": f"bytes */{size}"}
            self._count("blob", request, 416)
            return web.Response(status=416, headers=headers)
        start, end, partial = span
        headers = {
            **_API_HEADERS,
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": fetch.digest,
            "Accept-Ranges": "bytes",
        }
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        fetch.clients += 1
        try:
            if request.method == "HEAD":
                # a StreamResponse: a Response would not take a Content-Length without a body
                resp = web.StreamResponse(status=206 if partial else 200, headers=headers)
                resp.content_length = end - start
                self._count("blob", request, resp.status)
                return resp
            source = "cache" if fetch.state == "complete" else "fetch"
            if start < end:
                try:
                    await fetch.wait_for(start)
                except UpstreamFailure as e:
                    return self._reply(
                        "blob", request, Answer(e.status, {}, f"{e.reason}\n".encode())
                    )
            stream = web.StreamResponse(status=206 if partial else 200, headers=headers)
            stream.content_length = end - start
            self._count("blob", request, stream.status)
            await stream.prepare(request)
            served = self.metrics.served_bytes.labels(registry, source)
            try:
                await _stream_file(request, stream, fetch, start, end, served.inc)
            except UpstreamFailure as e:
                log.warning("blob %s: client cut at an upstream failure: %s", fetch.digest[:19], e)
                if request.transport is not None:
                    request.transport.close()  # short body: the client sees the failure now
                return stream
            except (ConnectionError, asyncio.CancelledError):
                return stream  # the client went away; the fetch carries on without it
            await stream.write_eof()
            return stream
        finally:
            fetch.clients -= 1

    async def _through(
        self,
        request: web.Request,
        up: Upstream,
        name: str,
        digest: str,
        auth: dict[str, str],
        reason: str,
    ) -> web.StreamResponse:
        log.info("blob %s streamed uncached: %s", digest[:19], reason)
        headers = dict(auth)
        if request.headers.get("Range"):
            headers["Range"] = request.headers["Range"]
        try:
            resp = await up.request(request.method, f"/v2/{name}/blobs/{digest}", headers=headers)
        except UpstreamFailure as e:
            return self._reply("blob", request, Answer(e.status, {}, f"{e.reason}\n".encode()))
        try:
            keep = (
                "Content-Type",
                "Content-Length",
                "Content-Range",
                "Docker-Content-Digest",
                "WWW-Authenticate",
            )
            out = web.StreamResponse(
                status=resp.status,
                headers={**_API_HEADERS, **{h: v for h in keep if (v := resp.headers.get(h))}},
            )
            self._count("blob", request, resp.status)
            await out.prepare(request)
            served = self.metrics.served_bytes.labels(up.registry, "through")
            async for chunk in resp.content.iter_chunked(1024 * 1024):
                await out.write(chunk)
                served.inc(len(chunk))
            await out.write_eof()
            return out
        except (TimeoutError, ConnectionError, OSError):
            if request.transport is not None:
                request.transport.close()
            return web.StreamResponse(status=502)
        finally:
            resp.release()


async def _stream_file(
    request: web.Request,
    stream: web.StreamResponse,
    fetch: BlobFetch,
    start: int,
    end: int,
    count: Any,
) -> None:
    """Send ``[start, end)`` of the blob's cache file as it becomes servable: ``sendfile``
    where the transport allows (plain TCP), else reads and writes."""
    loop = asyncio.get_running_loop()
    pos = start
    with open(fetch.file.data_path, "rb") as f:
        while pos < end:
            avail = await fetch.wait_for(pos)
            n = min(avail, end) - pos
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("client gone")
            try:
                sent = await loop.sendfile(transport, f, pos, n, fallback=False)
            except NotImplementedError:
                data = await asyncio.to_thread(os.pread, f.fileno(), n, pos)
                await stream.write(data)
                sent = len(data)
            pos += sent
            fetch.served_bytes += sent
            count(sent)


def _parse_range(value: str | None, size: int) -> tuple[int, int, bool] | None:
    """``(start, end, partial)`` for a Range header; None when unsatisfiable (416).

    No header, or one we do not understand (several ranges, another unit): the whole blob,
    200. ``bytes=a-b`` (inclusive b, clamped), ``bytes=a-``, ``bytes=-n`` (the last n)."""
    if not value:
        return 0, size, False
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if m is None or (not m.group(1) and not m.group(2)):
        return 0, size, False
    a, b = m.group(1), m.group(2)
    if not a:
        n = int(b)
        if n == 0:
            return None
        return max(0, size - n), size, True
    start = int(a)
    end = size if not b else min(size, int(b) + 1)
    if start >= size or (b and int(b) < start):
        return None
    return start, end, True


def _blob_status(f: BlobFetch) -> dict[str, Any]:
    rate = f.rate_bytes_per_second()
    left = f.size_bytes - f.contiguous_bytes
    eta = left / rate if rate > 0 and f.state == "fetching" else None
    return {
        "digest": f.digest,
        "registry": f.registry,
        "repository": f.repository,
        "image": f.image,
        "state": f.state,
        "size_bytes": f.size_bytes,
        "upstream_bytes": f.upstream_bytes,
        "contiguous_bytes": f.contiguous_bytes,
        "served_bytes": f.served_bytes,
        "clients": f.clients,
        "connections": f.connections(),
        "rate_bytes_per_second": round(rate, 1),
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "started_monotonic": round(f.started_monotonic, 3),
        "error": str(f.error) if f.error is not None else None,
    }


def _auth_kind(value: str | None) -> str:
    """What kind of credentials a request carried, never the credentials themselves."""
    if not value:
        return "none"
    return value.split(" ", 1)[0].lower()


def _access_log() -> Any:
    access = logging.getLogger("mlnode.mirror.access")

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        resp: web.StreamResponse = await handler(request)
        if request.path.startswith("/v2"):
            access.info(
                "%s %s ns=%s auth=%s range=%s -> %d",
                request.method,
                request.path,
                request.query.get("ns", "-"),
                _auth_kind(request.headers.get("Authorization")),
                request.headers.get("Range", "-"),
                resp.status,
            )
        return resp

    return middleware


def make_app(mirror: Mirror, *, access_log: bool = False) -> web.Application:
    app = web.Application(
        client_max_size=1024 * 1024, middlewares=[_access_log()] if access_log else []
    )
    app.router.add_get("/v2/", mirror.base)
    app.router.add_get("/v2", mirror.base)
    app.router.add_route("GET", "/v2/{name:.+}/manifests/{ref}", mirror.manifest)
    app.router.add_route("HEAD", "/v2/{name:.+}/manifests/{ref}", mirror.manifest)
    app.router.add_route("GET", "/v2/{name:.+}/blobs/{digest}", mirror.blob)
    app.router.add_route("HEAD", "/v2/{name:.+}/blobs/{digest}", mirror.blob)
    app.router.add_get("/healthz", mirror.healthz)
    app.router.add_get("/metrics", mirror.metrics_)
    app.router.add_get("/mlnode/v1/status", mirror.status)
    return app
