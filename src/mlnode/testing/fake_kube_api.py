"""A Kubernetes API server, faked over real HTTPS on 127.0.0.1, for mlnode.kube's tests.

No kube-apiserver, kind or envtest can be installed where mlnode is tested, so this is what
:class:`mlnode.kube.KubeClient` is tested against. It is a small part of the real API:

- ``GET /api``, ``GET /api/v1``: discovery, shaped as the real answers;
- ``GET|PATCH /api/v1/nodes/{name}``; ``POST /api/v1/namespaces/{ns}/events``,
  ``GET|PATCH /api/v1/namespaces/{ns}/events/{name}``;
  ``GET /api/v1/namespaces/{ns}/configmaps/{name}``;
- the doctor's reads: ``GET /api/v1/nodes`` (NodeList), ``GET /api/v1/events`` and
  ``GET /api/v1/namespaces/{ns}/events`` (EventList), each paged by ``limit``/``continue``
  with ``resourceVersion`` and ``remainingItemCount`` (:mod:`._kube_reads`); and the node
  proxy ``GET /api/v1/nodes/{n}/proxy/{path}``, answered from the documents given to
  :meth:`FakeKubeApiServer.set_kubelet` (``configz``, ``stats/summary``), after its delay;
  a node without them answers as the API server does when the kubelet cannot be dialled
  (503 ServiceUnavailable ``error trying to reach service: dial tcp ...: connect:
  connection refused``); an unknown path, the kubelet's ``404 page not found``;
- every error is a real ``Status`` (kind Status, status Failure, message, reason, code);
- every object a POST or PATCH would store, and every Node and Event added
  (:meth:`~FakeKubeApiServer.add_node`, :meth:`~FakeKubeApiServer.add_event`), is checked
  once against the official OpenAPI schema, strict (kubernetes-validate's
  ``local-strict`` schemas, unknown fields refused) and refused (422 ``Invalid``, or
  ValueError for an add) as the API server does; plus the one rule of
  pkg/apis/core/validation/events.go a core/v1 Event meets (its namespace). Answers to
  GETs are never validated again, and the kubelet documents are encoded once;
- authentication: a bearer token, and/or a client certificate signed by the CA the server
  makes (``cryptography``); none or a wrong token is a 401 ``Status``;
- RBAC: :meth:`~FakeKubeApiServer.forbid` (a 403 for one verb on one resource, e.g.
  ``forbid("get", "nodes/proxy")``), :meth:`~FakeKubeApiServer.use_roles` (allow exactly
  what these ClusterRoles grant, refuse the rest), with the real 403 message (``nodes
  "n1" is forbidden: User "..." cannot get resource "nodes/proxy" in API group "" at the
  cluster scope``);
- faults: :meth:`~FakeKubeApiServer.down` (connections refused, open ones cut),
  :meth:`~FakeKubeApiServer.fail_with` (answer a status); :attr:`~FakeKubeApiServer.
  requests` keeps the last ``requests_kept`` requests (method, path, query, body, auth
  kind, status answered) and :attr:`~FakeKubeApiServer.request_count` counts them all.

One divergence of TLS: a client certificate from another CA fails the handshake here
(Python cannot request a certificate without verifying it), where the real API server
completes it and answers 401.

Known simplifications: a strategic-merge patch is applied as a JSON merge patch (the same
for the map-only patches the agent sends; lists would differ); JSON Patch answers 415; no
resourceVersion preconditions, watches or selectors; a later list page reads the objects
as they are then, not at the first page's revision.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime
import json
import socket
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed

from mlnode.testing import _kube_files as files
from mlnode.testing import _kube_reads as reads
from mlnode.testing import _kube_shapes as shapes
from mlnode.testing import _kube_writes as writes
from mlnode.testing import _kubelet_shapes as kubelet_shapes
from mlnode.testing._kube_http import Answer, HttpServer, RecordedRequest
from mlnode.testing._kube_tls import ThrowawayCa

__all__ = ["DEFAULT_SCHEMA_VERSION", "FakeKubeApiServer", "RecordedRequest"]

#: One of the newest schemas kubernetes-validate ships (1.37 with kubernetes-validate 1.37).
DEFAULT_SCHEMA_VERSION = kubernetes_validate.latest_version()


class FakeKubeApiServer:
    """See the module docstring. A context manager: ``with FakeKubeApiServer() as api``.

    ``token``: the bearer token accepted (None: none is); ``accept_client_certs``: client
    certificates signed by :attr:`ca_pem` are accepted (user = the certificate's CN);
    ``user``: who the RBAC messages name; ``requests_kept``: how many requests
    :attr:`requests` keeps (the oldest drop off; :attr:`request_count` counts all).

    Doctor-side state: :meth:`add_node` (a full Node from
    :func:`mlnode.testing._kubelet_shapes.node_object` when given its keywords),
    :meth:`add_event`, :meth:`set_kubelet`, :meth:`use_roles`."""

    def __init__(
        self,
        *,
        token: str | None = "mlnode-test-token",
        accept_client_certs: bool = True,
        schema_version: str = DEFAULT_SCHEMA_VERSION,
        workdir: Path | None = None,
        user: str = shapes.SERVICE_ACCOUNT_USER,
        requests_kept: int = 10_000,
    ) -> None:
        self.token = token
        self.user = user
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
        self._requests: collections.deque[RecordedRequest] = collections.deque(maxlen=requests_kept)
        #: every request answered since the start
        self.request_count = 0
        #: every connection accepted (TLS handshake done) since the start
        self.connection_count = 0
        #: requests being answered now (e.g. waiting out a kubelet's delay)
        self.in_flight = 0
        self._schemas = reads.SchemaCache(schema_version)
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._revision = 0
        self._fail: tuple[int, int | None] | None = None
        self._forbidden: set[tuple[str, str]] = set()
        self._granted: set[tuple[str, str]] | None = None
        self._kubelets: dict[str, reads.Kubelet] = {}
        self._release = threading.Event()  # cuts kubelet delays short (down, release)
        self._port = 0
        self._httpd: HttpServer | None = None
        self._thread: threading.Thread | None = None

    # ── lifecycle ─────────────────────────────────────────────────────────────────────

    def start(self) -> FakeKubeApiServer:
        self._release.clear()
        self._httpd = HttpServer(("127.0.0.1", self._port), self)
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
        self._release.set()
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
    def requests(self) -> list[RecordedRequest]:
        """The last ``requests_kept`` requests, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def forget_requests(self) -> None:
        with self._lock:
            self._requests.clear()

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
        obj: Mapping[str, Any] | None = None,
        validate: bool = True,
        **status: Any,
    ) -> dict[str, Any]:
        """Store a Node. ``obj``: this Node as given; else with ``status`` keywords
        (``kubelet_version``, ``runtime_version``, ``images``, ``conditions``,
        ``ephemeral_capacity_bytes``, ...) the full Node of
        :func:`~mlnode.testing._kubelet_shapes.node_object`; else the agent tests' small
        Node. Checked strictly against the schema (ValueError) unless ``validate=False``
        (a Node from node_object, which its tests validate, for a 1,000-node bench)."""
        if obj is not None:
            node = copy.deepcopy(dict(obj))
        elif status:
            node = kubelet_shapes.node_object(
                name, labels=labels, annotations=annotations, **status
            )
        else:
            node = shapes.node(name, labels=labels, annotations=annotations)
        if validate:
            self._refuse_invalid(node)
        return self._store("nodes", "", name, node)

    def add_event(self, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store a core/v1 Event in ``namespace`` as the API server would accept it
        (ValueError with the 422 message otherwise); uid and resourceVersion are set."""
        event = copy.deepcopy(dict(obj))
        meta = event.setdefault("metadata", {})
        if meta.get("namespace", namespace) != namespace:
            raise ValueError(f"metadata.namespace is not {namespace!r}")
        meta["namespace"] = namespace
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("an Event needs metadata.name")
        self._refuse_invalid(event)
        if ("events", namespace, name) in self._objects:  # the API server's 409 AlreadyExists
            raise ValueError(f'events "{name}" already exists in {namespace}')
        return self._store("events", namespace, name, event, new=True)

    def set_kubelet(
        self,
        name: str,
        *,
        configz: Mapping[str, Any] | None = None,
        summary: Mapping[str, Any] | None = None,
        delay_seconds: float = 0.0,
        status: int | None = None,
    ) -> None:
        """What node ``name``'s kubelet answers through the proxy: ``configz`` (served at
        ``configz``), ``summary`` (at ``stats/summary``), after ``delay_seconds``; or
        ``status`` (its status text as a plain body) instead. Before a call, and after
        :meth:`unset_kubelet`, the kubelet cannot be reached (503)."""
        documents = {}
        if configz is not None:
            documents["configz"] = json.dumps(configz).encode()
        if summary is not None:
            documents["stats/summary"] = json.dumps(summary).encode()
        with self._lock:
            self._kubelets[name] = reads.Kubelet(documents, delay_seconds, status)

    def release_delayed(self, *, again: bool = True) -> None:
        """Answer every request now waiting out a kubelet's delay at once; ``again``:
        later requests wait their delays again."""
        self._release.set()
        if again:
            self._release.clear()

    def unset_kubelet(self, name: str) -> None:
        with self._lock:
            self._kubelets.pop(name, None)

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

    def use_roles(self, roles: Iterable[Mapping[str, Any]] | None) -> None:
        """RBAC: allow exactly what these ClusterRoles' core-group rules grant (verb,
        resource; ``*`` as RBAC reads it), refuse everything else with 403. None: allow
        all again. Discovery stays open (system:discovery grants it to everyone)."""
        with self._lock:
            self._granted = None if roles is None else reads.granted_by(roles)

    # ── kubeconfig and service account files for clients ─────────────────────────────

    def kubeconfig(
        self,
        path: Path,
        *,
        auth: files.AuthKind = "token",
        inline: bool = False,
        exec_api_version: str = files.EXEC_V1,
        exec_fails: str | None = None,
    ) -> Path:
        """Write a kubeconfig for this server at ``path``: a bearer token; a client
        certificate (``client.crt``/``client.key`` beside it) signed by the server's CA;
        or an ``exec`` plugin (``exec-plugin.sh`` beside it, named relatively, printing
        an ExecCredential of ``exec_api_version`` with the server's token; with
        ``exec_fails`` it prints that and exits 1). ``inline``: the ``*-data`` (base64)
        keys instead of file paths."""
        return files.write_kubeconfig(
            path,
            server_url=self.url,
            ca_pem=self._ca.pem,
            ca_path=self.ca_path,
            token=self.token,
            issue_client_cert=lambda: self._ca.issue("mlnode-agent", server=False),
            auth=auth,
            inline=inline,
            exec_api_version=exec_api_version,
            exec_fails=exec_fails,
        )

    def service_account(self, root: Path, *, namespace: str = "mlnode-system") -> dict[str, str]:
        """The files the kubelet mounts in a pod, under ``root``, and the environment a
        pod gets: for ``connect(in_cluster_root=root, env=...)``."""
        return files.write_service_account(
            root, token=self.token, ca_pem=self._ca.pem, port=self.port, namespace=namespace
        )

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

    def _bad_body(self) -> Answer:
        return Answer.of(*shapes.status(400, "BadRequest", "the request body is not JSON"))

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: Any,
        content_type: str,
        auth: str | None,
    ) -> Answer:
        """The answer to one request; the routing and every rule of the module doc."""
        if auth is None:
            return Answer.of(*shapes.status(401, "Unauthorized", "Unauthorized"))
        with self._lock:
            if self._fail is not None:
                code, times = self._fail
                if times is not None:
                    self._fail = (code, times - 1) if times > 1 else None
                return Answer.of(*shapes.status_for_code(code))
        route = shapes.route(method, path)
        if route is None:
            message = "the server could not find the requested resource"
            return Answer.of(*shapes.status(404, "NotFound", message))
        if isinstance(route, dict):  # discovery
            return Answer.of(200, shapes.discovery(route["doc"], self.url))
        verb, resource, namespace, name, rest = route
        with self._lock:
            refused = (verb, resource) in self._forbidden or (
                self._granted is not None and not reads.allowed(self._granted, verb, resource)
            )
        if refused:
            return Answer.of(*shapes.forbidden(verb, resource, namespace, name, user=self.user))
        if verb == "list":
            return self._list(resource, namespace, query)
        if resource == "nodes/proxy":
            return self._proxy(name, rest)
        if verb == "get":
            obj = self._get(resource, namespace, name)
            if obj is None:
                return Answer.of(*shapes.not_found(resource, name))
            return Answer.of(200, obj)
        if verb == "create":
            return Answer.of(*writes.create(self, resource, namespace, body))
        return Answer.of(*writes.patch(self, resource, namespace, name, body, content_type))

    def _list(self, resource: str, namespace: str, query: str) -> Answer:
        # stored objects are replaced, never changed in place: encoding them outside
        # the lock is safe
        with self._lock:
            revision = self._revision
            items = sorted(
                (f"{ns}/{name}" if ns else name, obj)
                for (res, ns, name), obj in self._objects.items()
                if res == resource and (not namespace or ns == namespace)
            )
        list_kind = {"nodes": "NodeList", "events": "EventList"}[resource]
        return reads.list_page(items, list_kind=list_kind, query=query, revision=revision)

    def _proxy(self, name: str, rest: str) -> Answer:
        with self._lock:
            node = self._objects.get(("nodes", "", name))
            kubelet = self._kubelets.get(name)
        if node is None:
            return Answer.of(*shapes.not_found("nodes", name))
        if kubelet is not None and kubelet.delay_seconds > 0:
            self._release.wait(kubelet.delay_seconds)
        return reads.proxy_answer(kubelet, rest, node_address=reads.internal_ip(node))

    def _problems(self, obj: dict[str, Any]) -> list[tuple[str, str]]:
        """(field, message) the API server would refuse the object for; empty if none."""
        return self._schemas.problems(obj) or shapes.event_rules(obj)

    def _refuse_invalid(self, obj: dict[str, Any]) -> None:
        problems = self._problems(obj)
        if problems:
            name = str((obj.get("metadata") or {}).get("name") or "")
            _, doc = shapes.invalid(obj, str(obj.get("kind")), name, problems)
            raise ValueError(doc["message"])

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
            self._requests.append(request)
            self.request_count += 1
