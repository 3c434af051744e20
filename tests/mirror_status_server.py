"""A stand-in for the node mirror's status endpoint: a local HTTP server in the test
process serving ``GET /mlnode/v1/status`` with whatever body the test sets (valid
``mlnode.mirror.status/v1`` fixtures, or malformed ones). Shared by tests/ops and
tests/cli."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def blob(digest: str = DIGEST_A, **overrides: Any) -> dict[str, Any]:
    """One entry of the status's ``blobs``, as SPEC9 writes it."""
    doc: dict[str, Any] = {
        "digest": digest,
        "registry": "127.0.0.1:5000",
        "repository": "team/trainer",
        "image": "127.0.0.1:5000/team/trainer:v1",
        "state": "fetching",
        "size_bytes": 8 * 1024 * 1024,
        "upstream_bytes": 6 * 1024 * 1024,
        "contiguous_bytes": 5 * 1024 * 1024,
        "served_bytes": 4 * 1024 * 1024,
        "clients": 1,
        "connections": 4,
        "rate_bytes_per_second": 2 * 1024 * 1024,
        "eta_seconds": 1.0,
        "started_monotonic": 100.0,
        "error": None,
    }
    doc.update(overrides)
    return doc


def status(*blobs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A whole status document (SPEC9's schema)."""
    doc: dict[str, Any] = {
        "schema": "mlnode.mirror.status/v1",
        "pid": 4242,
        "listen": "127.0.0.1:6055",
        "cache": {"dir": "/var/lib/mlnode/mirror", "disk_bytes": 1024, "max_bytes": 1 << 30},
        "upstreams": ["127.0.0.1:5000", "docker.io"],
        "blobs": list(blobs),
    }
    doc.update(overrides)
    return doc


class StatusServer:
    """``url`` answers ``/mlnode/v1/status`` with :attr:`body` (bytes) and :attr:`code`."""

    def __init__(self) -> None:
        self.body: bytes = json.dumps(status()).encode()
        self.code = 200
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.path != "/mlnode/v1/status":
                    self.send_error(404)
                    return
                self.send_response(outer.code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(self, doc: Any) -> None:
        """Answer with ``doc`` as JSON (a deep copy, so the test may keep editing it)."""
        self.body = json.dumps(copy.deepcopy(doc)).encode()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def status_server() -> Iterator[StatusServer]:
    server = StatusServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then closed)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
