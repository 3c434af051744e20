"""A Kubernetes API server, faked over real HTTPS on 127.0.0.1, for mlnode.kube's tests.

No kube-apiserver, kind or envtest can be installed where mlnode is tested, so this is what
:class:`mlnode.kube.KubeClient` is tested against. It is a small part of the real API:

- ``GET /api``, ``GET /api/v1``: discovery, shaped as the real answers;
- ``GET|PATCH /api/v1/nodes/{name}``; ``POST /api/v1/namespaces/{ns}/events``,
  ``GET|PATCH /api/v1/namespaces/{ns}/events/{name}``;
  ``GET /api/v1/namespaces/{ns}/configmaps/{name}``;
- every error is a real ``Status`` (kind Status, status Failure, message, reason, code);
- every object a POST or PATCH would store is checked against the official OpenAPI schema
  with ``kubernetes_validate.validate(obj, version, strict=True)`` (unknown fields refused)
  and refused with 422 ``Invalid`` as the API server does; plus the one rule of
  pkg/apis/core/validation/events.go a core/v1 Event about a Node meets (its namespace);
- authentication: a bearer token, and/or a client certificate signed by the CA the server
  makes (``cryptography``); none or a wrong token is a 401 ``Status``;
- faults: :meth:`FakeKubeApiServer.down` (connections refused, open ones cut),
  :meth:`~FakeKubeApiServer.fail_with` (answer a status), :meth:`~FakeKubeApiServer.forbid`
  (an RBAC 403 for one verb on one resource); :attr:`~FakeKubeApiServer.requests` records
  every request (method, path, body, auth kind, status answered).

``http.server`` (threaded) rather than aiohttp: the client under test is synchronous, a
thread per connection needs no event loop beside the test, and the stdlib ``ssl`` module
requests and verifies client certificates directly. One divergence follows: a client
certificate from another CA fails the TLS handshake here (Python cannot request a
certificate without verifying it), where the real API server completes it and answers 401.

Known simplifications: a strategic-merge patch is applied as a JSON merge patch (the same
for the map-only patches the agent sends; lists would differ); JSON Patch answers 415; no
resourceVersion preconditions, watches, lists or field selectors.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import json
import socket
import ssl
import tempfile
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed

from mlnode.testing import _kube_shapes as shapes
from mlnode.testing._kube_tls import ThrowawayCa

__all__ = ["DEFAULT_SCHEMA_VERSION", "FakeKubeApiServer", "RecordedRequest"]

#: One of the newest schemas kubernetes-validate ships (1.37 with kubernetes-validate 1.37).
DEFAULT_SCHEMA_VERSION = kubernetes_validate.latest_version()

_MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


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


class _HttpServer(ThreadingHTTPServer):
    """TLS per connection in the connection's own thread (a stalled handshake blocks no
    one else); open connections tracked so :meth:`FakeKubeApiServer.down` can cut them."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], fake: FakeKubeApiServer) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.fake._tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.fake._handshake_failures.append(str(e))
            return
        with self.fake._lock:
            self.fake._open.add(tls)
        try:
            _Handler(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            with self.fake._lock:
                self.fake._open.discard(tls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection cut by down() is expected, not a traceback on stderr


class FakeKubeApiServer:
    """See the module docstring. A context manager: ``with FakeKubeApiServer() as api``.

    ``token``: the bearer token accepted (None: none is); ``accept_client_certs``: client
    certificates signed by :attr:`ca_pem` are accepted (user = the certificate's CN)."""

    def __init__(
        self,
        *,
        token: str | None = "mlnode-test-token",
        accept_client_certs: bool = True,
        schema_version: str = DEFAULT_SCHEMA_VERSION,
        workdir: Path | None = None,
    ) -> None:
        self.token = token
        self.accept_client_certs = accept_client_certs
        self.schema_version = schema_version
        try:  # an unknown version is the caller's mistake: say so now, not as a 500 later
            kubernetes_validate.validate(shapes.config_map("x", "x", {}), schema_version, True)
        except kubernetes_validate.utils.VersionNotSupportedError:
            raise ValueError(f"kubernetes-validate has no schema {schema_version}") from None
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-kube-api-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self._ca = ThrowawayCa()
        self.ca_path = self.workdir / "ca.crt"
        self.ca_path.write_bytes(self._ca.pem)
        self._tls = self._server_context()
        self._lock = threading.RLock()
        self._open: set[ssl.SSLSocket] = set()
        self._handshake_failures: list[str] = []
        self.requests: list[RecordedRequest] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._revision = 0
        self._fail: tuple[int, int | None] | None = None
        self._forbidden: set[tuple[str, str]] = set()
        self._port = 0
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # ── lifecycle ─────────────────────────────────────────────────────────────────────

    def start(self) -> FakeKubeApiServer:
        self._httpd = _HttpServer(("127.0.0.1", self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening (connections are refused) and cut every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            open_now = list(self._open)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()  # joins the connection threads, now all at EOF
        if self._thread is not None:
            self._thread.join()

    def up(self) -> None:
        """Listen again, on the same port, after :meth:`down`."""
        if self._httpd is None:
            self.start()

    def stop(self) -> None:
        self.down()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def ca_pem(self) -> bytes:
        return self._ca.pem

    @property
    def handshake_failures(self) -> list[str]:
        return list(self._handshake_failures)

    # ── state ─────────────────────────────────────────────────────────────────────────

    def add_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        node = shapes.node(name, labels=labels, annotations=annotations)
        return self._store("nodes", "", name, node)

    def add_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
        cm = shapes.config_map(namespace, name, data)
        return self._store("configmaps", namespace, name, cm)

    def node(self, name: str) -> dict[str, Any] | None:
        return self._get("nodes", "", name)

    def events(self, namespace: str = "default") -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (res, ns, _), obj in self._objects.items()
                if res == "events" and ns == namespace
            ]

    def delete_event(self, namespace: str, name: str) -> None:
        """Drop an Event, as the API server's event TTL does."""
        with self._lock:
            self._objects.pop(("events", namespace, name), None)

    # ── faults ────────────────────────────────────────────────────────────────────────

    def fail_with(self, status: int | None, *, times: int | None = None) -> None:
        """Answer the next ``times`` requests (every one if None) with ``status`` and its
        Status body; ``None`` ends it."""
        with self._lock:
            self._fail = None if status is None else (status, times)

    def forbid(self, verb: str, resource: str) -> None:
        """RBAC: answer 403 for ``verb`` (get, create, patch) on ``resource`` (nodes, ...)."""
        with self._lock:
            self._forbidden.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        with self._lock:
            self._forbidden.discard((verb, resource))

    # ── kubeconfig and service account files for clients ─────────────────────────────

    def kubeconfig(
        self, path: Path, *, auth: Literal["token", "cert"] = "token", inline: bool = False
    ) -> Path:
        """Write a kubeconfig for this server at ``path``: a bearer token, or a client
        certificate (``client.crt``/``client.key`` beside it) signed by the server's CA.
        ``inline``: the ``*-data`` (base64) keys instead of file paths."""
        path.parent.mkdir(parents=True, exist_ok=True)
        cluster: dict[str, Any] = {"server": self.url}
        user: dict[str, Any] = {}
        if inline:
            cluster["certificate-authority-data"] = _b64(self._ca.pem)
        else:
            cluster["certificate-authority"] = str(self.ca_path)
        if auth == "token":
            if self.token is None:
                raise ValueError("this server accepts no token")
            user["token"] = self.token
        else:
            cert, key = self._ca.issue("mlnode-agent", server=False)
            if inline:
                user["client-certificate-data"] = _b64(cert)
                user["client-key-data"] = _b64(key)
            else:
                (path.parent / "client.crt").write_bytes(cert)
                (path.parent / "client.key").write_bytes(key)
                user["client-certificate"] = "client.crt"  # relative to the kubeconfig
                user["client-key"] = "client.key"
        doc = shapes.kubeconfig(cluster, user)
        path.write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML
        return path

    def service_account(self, root: Path, *, namespace: str = "mlnode-system") -> dict[str, str]:
        """The files the kubelet mounts in a pod, under ``root``, and the environment a
        pod gets: for ``connect(in_cluster_root=root, env=...)``."""
        account = root / "var/run/secrets/kubernetes.io/serviceaccount"
        account.mkdir(parents=True, exist_ok=True)
        (account / "token").write_text(self.token or "")
        (account / "ca.crt").write_bytes(self._ca.pem)
        (account / "namespace").write_text(namespace)
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    # ── request handling (called by _Handler, on connection threads) ──────────────────

    def _server_context(self) -> ssl.SSLContext:
        cert, key = self._ca.issue("fake kube-apiserver 127.0.0.1", server=True)
        cert_path, key_path = self.workdir / "apiserver.crt", self.workdir / "apiserver.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_path), str(key_path))
        if self.accept_client_certs:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=self._ca.pem.decode())
        return context

    def _authenticate(self, handler: BaseHTTPRequestHandler) -> str | None:
        header = handler.headers.get("Authorization", "")
        if self.token is not None and header == f"Bearer {self.token}":
            return "token"
        if header:  # a wrong token is refused even with a good certificate, as upstream
            return None
        conn = handler.connection
        if isinstance(conn, ssl.SSLSocket) and conn.getpeercert():
            return "cert"  # verified against our CA during the handshake
        return None

    def _answer(
        self, method: str, path: str, body: Any, content_type: str, auth: str | None
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON) for one request; the routing and every rule of the module doc."""
        if auth is None:
            return shapes.status(401, "Unauthorized", "Unauthorized")
        with self._lock:
            if self._fail is not None:
                code, times = self._fail
                if times is not None:
                    self._fail = (code, times - 1) if times > 1 else None
                return shapes.status_for_code(code)
        route = shapes.route(method, path)
        if route is None:
            message = "the server could not find the requested resource"
            return shapes.status(404, "NotFound", message)
        if isinstance(route, dict):  # discovery
            return 200, shapes.discovery(route["doc"], self.url)
        verb, resource, namespace, name = route
        if (verb, resource) in self._forbidden:
            return shapes.forbidden(verb, resource, namespace, name)
        if verb == "get":
            obj = self._get(resource, namespace, name)
            if obj is None:
                return shapes.not_found(resource, name)
            return 200, obj
        if verb == "create":
            return self._create(resource, namespace, body)
        return self._patch(resource, namespace, name, body, content_type)

    def _create(self, resource: str, namespace: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return shapes.status(400, "BadRequest", "the request body is not a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return shapes.status(400, "BadRequest", "metadata is not an object")
        if meta.get("namespace", namespace) != namespace:
            return shapes.status(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            return shapes.invalid(obj, "Event", "", [("metadata.name", "Required value")])
        meta["namespace"] = namespace
        problems = self._problems(obj)
        if problems:
            return shapes.invalid(obj, "Event", name, problems)
        with self._lock:
            if (resource, namespace, name) in self._objects:
                return shapes.already_exists(resource, name)
            return 201, self._store(resource, namespace, name, obj, new=True)

    def _patch(
        self, resource: str, namespace: str, name: str, patch: Any, content_type: str
    ) -> tuple[int, dict[str, Any]]:
        if content_type.split(";")[0].strip() not in _MERGE_TYPES:
            message = f"the body of the request was in an unknown format: {content_type}"
            return shapes.status(415, "UnsupportedMediaType", message)
        if not isinstance(patch, dict):
            return shapes.status(400, "BadRequest", "the patch is not a JSON object")
        with self._lock:
            current = self._get(resource, namespace, name)
            if current is None:
                return shapes.not_found(resource, name)
            merged = shapes.merge_patch(current, patch)
            for immutable in ("uid", "name", "namespace", "creationTimestamp"):
                if immutable in current["metadata"]:
                    merged.setdefault("metadata", {})[immutable] = current["metadata"][immutable]
            problems = self._problems(merged)
            if problems:
                return shapes.invalid(merged, str(current.get("kind")), name, problems)
            return 200, self._store(resource, namespace, name, merged)

    def _problems(self, obj: dict[str, Any]) -> list[tuple[str, str]]:
        """(field, message) the API server would refuse the object for; empty if none."""
        try:
            kubernetes_validate.validate(obj, self.schema_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.absolute_path) or "<object>"
            return [(where, str(e.message))]
        except (kubernetes_validate.SchemaNotFoundError, KeyError) as e:
            return [("kind", f"no schema: {e}")]
        return shapes.event_rules(obj)

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def _store(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any], *, new: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            self._revision += 1
            meta = obj.setdefault("metadata", {})
            if new or "uid" not in meta:
                meta["uid"] = str(uuid.uuid4())
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                meta.setdefault("creationTimestamp", stamp)
            meta["resourceVersion"] = str(self._revision)
            self._objects[(resource, namespace, name)] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects
    server: _HttpServer

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
        if parse_error and auth is not None:
            code, doc = shapes.status(400, "BadRequest", "the request body is not JSON")
        else:
            code, doc = fake._answer(self.command, url.path, body, content_type, auth)
        fake._record(
            RecordedRequest(self.command, url.path, url.query, body, content_type, auth, code)
        )
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")  # exactly, as the API server
        self.send_header("Content-Length", str(len(data)))
        if code == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_PUT = _serve
    do_DELETE = _serve


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
