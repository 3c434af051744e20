"""A ranged blob GET whose body goes from the socket into the cache file without passing
through Python: ``splice(2)`` socket → pipe → file.

Why: the mirror's CPU per GiB was dominated by copies — aiohttp's read (kernel → bytes,
~0.8 s/GiB here) and ``pwrite`` (bytes → page cache, ~0.6 s/GiB) — on top of the sha256
that must be computed anyway (~0.9 s/GiB on this CPU, OpenSSL with SHA-NI). Splicing leaves
one kernel copy. Only for the plain-HTTP, 206 case, the common one on a node (a loopback or
in-cluster registry or cache): anything else — TLS, a redirect to blob storage, an error
status, chunked encoding — raises :class:`SpliceUnavailable` before a body byte is taken,
and the caller uses the aiohttp path for that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from mlnode.mirror._upstream import UpstreamFailure

__all__ = ["SPLICE_SUPPORTED", "SpliceUnavailable", "spliced_range"]

SPLICE_SUPPORTED = hasattr(os, "splice")
_PIPE_BYTES = 256 * 1024  # what a kill -9 can lose in a pipe, per connection
_HEADER_LIMIT = 64 * 1024
# the socket wakes the loop with at least this much (or the rest, or EOF); what a kill -9
# can strand in the kernel, per connection, so kept small
_LOWAT_BYTES = 64 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class SpliceUnavailable(Exception):
    """Not a response this path handles; nothing of the body was consumed."""


async def _readable(sock: socket.socket, timeout: float) -> None:
    """Wait until ``sock`` is readable; TimeoutError after ``timeout``. (A timer handle, not
    ``asyncio.wait_for``: that makes a task per wait, which at thousands of waits a second
    was most of the mirror's CPU behind a shaped link.)"""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    def expire() -> None:
        if not fut.done():
            fut.set_exception(TimeoutError())

    fd = sock.fileno()
    loop.add_reader(fd, ready)
    timer = loop.call_later(timeout, expire)
    try:
        await fut
    finally:
        timer.cancel()
        loop.remove_reader(fd)


async def _connect(url: str, timeout: float) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SpliceUnavailable("not plain http")
    port = parts.port or 80
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
            return sock, parts.netloc
        except (OSError, TimeoutError) as e:
            sock.close()
            last = e if isinstance(e, OSError) else OSError(str(e))
    raise UpstreamFailure(502, f"cannot connect to {parts.netloc}: {last}")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        raise SpliceUnavailable("not an HTTP response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


async def _head(sock: socket.socket, stall_seconds: float) -> tuple[int, dict[str, str], bytes]:
    loop = asyncio.get_running_loop()
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _HEADER_LIMIT:
            raise SpliceUnavailable("response headers too long")
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), stall_seconds)
        except TimeoutError:
            raise UpstreamFailure(504, f"upstream sent no byte for {stall_seconds:g}s") from None
        if not chunk:
            raise UpstreamFailure(502, "upstream closed the connection before answering")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status, headers = _parse_head(head)
    return status, headers, rest


async def spliced_range(
    url: str,
    headers: Mapping[str, str],
    a: int,
    b: int,
    fd: int,
    *,
    stall_seconds: float,
    on_data: Callable[[int, int], None],
) -> tuple[int, UpstreamFailure | None]:
    """GET ``url`` for ``[a, b)`` into ``fd`` at its offsets; ``on_data(offset, n)`` after
    each piece lands. Returns (bytes written from ``a``, why it stopped short or None).
    Raises :class:`SpliceUnavailable` (nothing consumed) for responses it does not handle."""
    sock, netloc = await _connect(url, 10.0)
    try:
        path = url[url.index(netloc) + len(netloc) :] or "/"
        lines = [f"GET {path} HTTP/1.1", f"Host: {netloc}", f"Range: bytes={a}-{b - 1}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "range")]
        lines += ["Connection: close", "", ""]
        await asyncio.get_running_loop().sock_sendall(sock, "\r\n".join(lines).encode("latin-1"))
        status, head, rest = await _head(sock, stall_seconds)
        if status != 206 or "chunked" in head.get("transfer-encoding", "").lower():
            raise SpliceUnavailable(f"status {status}")
        first, _, _ = head.get("content-range", "").removeprefix("bytes ").partition("-")
        if not first.isdigit() or int(first) != a:
            raise SpliceUnavailable("not the range asked for")
        return await _body(sock, rest, a, b, fd, stall_seconds, on_data)
    finally:
        sock.close()


async def _body(
    sock: socket.socket,
    rest: bytes,
    a: int,
    b: int,
    fd: int,
    stall_seconds: float,
    on_data: Callable[[int, int], None],
) -> tuple[int, UpstreamFailure | None]:
    pos = a
    if rest:
        rest = rest[: b - a]
        os.pwrite(fd, rest, pos)
        on_data(pos, len(rest))
        pos += len(rest)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_BYTES)
    try:
        lowat = 0
        while pos < b:
            # wake only when 64 KiB are there (or the rest, or EOF): behind a shaped
            # link the socket would otherwise be readable every 64 KiB
            want = min(_LOWAT_BYTES, b - pos)
            if want != lowat:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, want)
                lowat = want
            try:
                n = os.splice(
                    sock.fileno(),
                    w,
                    min(_PIPE_BYTES, b - pos),
                    flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK,
                )
            except BlockingIOError:
                try:
                    await _readable(sock, stall_seconds)
                except TimeoutError:
                    return pos - a, UpstreamFailure(
                        504, f"upstream sent no byte for {stall_seconds:g}s"
                    )
                continue
            except OSError as e:
                return pos - a, UpstreamFailure(502, f"upstream connection lost: {e.strerror}")
            if n == 0:
                return pos - a, UpstreamFailure(502, f"upstream closed the connection at {pos}")
            left = n
            while left:
                m = os.splice(r, fd, left, offset_dst=pos, flags=os.SPLICE_F_MOVE)
                on_data(pos, m)
                pos += m
                left -= m
        return pos - a, None
    finally:
        os.close(r)
        os.close(w)
