"""The HTTPS plumbing of :mod:`mlnode.testing.fake_kube_api`: a threaded ``http.server``
with TLS per connection (in the connection's own thread, so a stalled handshake blocks no
one else), keep-alive (HTTP/1.1), the open connections tracked so the fake can cut them,
and the record of requests.

``http.server`` (threaded) rather than aiohttp: the clients under test are synchronous, a
thread per connection needs no event loop beside the test, and the stdlib ``ssl`` module
requests and verifies client certificates directly.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mlnode.testing.fake_kube_api import FakeKubeApiServer

__all__ = ["Answer", "HttpServer", "RecordedRequest"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    #: the parsed JSON body, or None
    body: Any
    content_type: str
    #: ``token``, ``cert`` or None (no accepted credentials)
    auth: str | None
    #: the status code answered
    status: int


@dataclass(frozen=True)
class Answer:
    """What to send: a status, a body already encoded, its content type."""

    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def of(cls, status: int, doc: Any) -> Answer:
        return cls(status, json.dumps(doc).encode())


class HttpServer(ThreadingHTTPServer):
    """See the module docstring."""

    daemon_threads = False
    block_on_close = True
    # the doctor opens 32 connections at once; the default backlog (5) would make some wait
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], fake: FakeKubeApiServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        fake = self.fake
        # as Go's net package does for every TCP connection (so the real API server): no
        # Nagle. Without it the body written after the headers waits for the client's
        # delayed ACK, 40 ms a request on Linux.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = fake._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            fake._handshake_failures.append(str(e))
            return
        with fake._lock:
            fake._open.add(tls)
            fake.connection_count += 1
        try:
            _Handler(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            with fake._lock:
                fake._open.discard(tls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection cut by down() is expected, not a traceback on stderr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects
    server: HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        body: Any = None
        parse_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                parse_error = True
        auth = fake._authenticate(self)
        with fake._lock:
            fake.in_flight += 1
        try:
            if parse_error and auth is not None:
                answer = fake._bad_body()
            else:
                answer = fake._answer(self.command, url.path, url.query, body, content_type, auth)
        finally:
            with fake._lock:
                fake.in_flight -= 1
        fake._record(
            RecordedRequest(
                self.command, url.path, url.query, body, content_type, auth, answer.status
            )
        )
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)  # exactly, as the API server
        self.send_header("Content-Length", str(len(answer.body)))
        if answer.status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_PUT = _serve
    do_DELETE = _serve
