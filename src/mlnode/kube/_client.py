"""mlnode's Kubernetes API client on a synchronous lightkube ``Client``: the agent's four
calls (:class:`mlnode.ports.ClusterApi`) and the doctor's three reads
(:class:`mlnode.ports.ClusterReader`), with every failure translated in one place
(:meth:`KubeClient._translated`):

    failure                                         raised
    ──────────────────────────────────────────────  ─────────────────────────────────
    connect/TLS/read timeout, connection dropped    KubeUnavailable (retryable)
    5xx, 429 (any body)                             KubeUnavailable (retryable)
    other 4xx with a Status                         KubeError: Status message, code
    404 on config_map                               None (the ConfigMap is optional)
    a body that is not JSON (or not an object)      KubeError "unusable answer"
    an exec credential plugin that fails            InputError naming the kubeconfig

Which layer does what: the lists go through lightkube's public ``Client.list`` (it follows
``limit``/``continue`` pages) on two unregistered generic resources, so each item stays the
API's JSON (a dict; lightkube's models would drop fields they do not know). The node proxy
(``/api/v1/nodes/{n}/proxy/...``) is not a resource lightkube can name (its ``Client`` has
no raw-request call), so it is a plain ``httpx.Client`` on the *same* transport (one pool,
one TLS context, the same credentials). That transport is built here, not by lightkube,
for two reasons: its pool must hold the doctor's 32 concurrent requests, and an ``exec``
credential plugin is run by :mod:`mlnode.kube._exec` (lightkube's refuses ExecCredential
v1), which presents its token at the transport.

That KubeClient satisfies the ports is checked by mypy in :mod:`mlnode.testing._cluster`:
mlnode.kube sits below mlnode.ports in the layers, so it may not import the ports here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from lightkube import ALL_NS, ApiError, Client
from lightkube.config.client_adapter import user_auth, verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import User
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_api_info,
)
from lightkube.resources.core_v1 import ConfigMap, Event, Node
from lightkube.types import PatchType

from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube._config import ResolvedConfig, resolve
from mlnode.kube._events import (
    EVENT_NAMESPACE,
    EventCorrelator,
    bump_patch,
    event_body,
    event_key,
    event_name,
)
from mlnode.kube._exec import CredentialTransport, ExecPlugin

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "LIST_PAGE_SIZE",
    "POOL_CONNECTIONS",
    "READ_TIMEOUT_SECONDS",
    "KubeClient",
    "connect",
]

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
#: ``limit`` of each list page (the value kubectl and client-go's pager use).
LIST_PAGE_SIZE = 500
#: Connections the pool opens and keeps: above the doctor's 32 worker threads. httpx's
#: default keeps only 20 idle, so each 32-wide burst would close 12 and handshake again.
POOL_CONNECTIONS = 64
_FIELD_MANAGER = "mlnode-agent"


# Generic resources, never registered in lightkube's process-wide registry (its
# create_global_resource would register v1/Node there, and every later lightkube load of a
# Node would become a dict): their items are the API's JSON, untouched.
class _NodeJson(GenericGlobalResource):
    _api_info = create_api_info("", "v1", "Node", "nodes", verbs=["list"])


class _EventJson(GenericNamespacedResource):
    _api_info = create_api_info("", "v1", "Event", "events", verbs=["list", "global_list"])


def connect(
    *,
    kubeconfig: Path | None = None,
    in_cluster_root: Path = Path("/"),
    env: Mapping[str, str] = os.environ,
    discover_home: bool = False,
    context: str | None = None,
) -> KubeClient | None:
    """A client for the API the settings point at, or None when there are none (the agent
    then works without the API). Order: ``kubeconfig``; the in-cluster service account
    under ``in_cluster_root``; with ``discover_home``, ``$KUBECONFIG`` or ``~/.kube/config``.

    Raises :class:`~mlnode.errors.InputError` (one line, the file) for a kubeconfig that is
    missing, does not parse, or names a certificate that cannot be loaded. No request is
    made here: an unreachable API shows on the first call (KubeUnavailable)."""
    resolved = resolve(
        kubeconfig=kubeconfig,
        in_cluster_root=in_cluster_root,
        env=env,
        discover_home=discover_home,
        context=context,
    )
    return KubeClient(resolved) if resolved is not None else None


class KubeClient:
    """:class:`mlnode.ports.ClusterApi` and :class:`mlnode.ports.ClusterReader` over
    lightkube. Thread-safe (httpx's pool is; the event correlator and the exec plugin have
    their own locks). ``monotonic``/``time_ns`` are injectable so tests can step past the
    aggregation window; ``transport`` replaces the HTTPS transport (tests)."""

    def __init__(
        self,
        resolved: ResolvedConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        time_ns: Callable[[], int] = time.time_ns,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.source = resolved.source
        self.server = resolved.server
        self.auth_kind = resolved.auth_kind
        self._monotonic = monotonic
        self._time_ns = time_ns
        config, plugin = _without_exec(resolved)
        self.exec_plugin = plugin
        if transport is None:
            transport = _https_transport(config)
        if plugin is not None:
            transport = CredentialTransport(transport, plugin)
        transport = _SharedTransport(transport)
        timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        self._client = Client(
            config,
            timeout=timeout,
            field_manager=_FIELD_MANAGER,
            # no proxy or SSL_* variables from this process's environment: the settings
            # are the kubeconfig's or the service account's, nothing else
            trust_env=False,
            transport=transport,
        )
        # the node proxy's client: same transport (pool, TLS), the credentials lightkube
        # would present (token, token file re-read on 401, basic; exec is the transport's)
        self._raw = httpx.Client(
            base_url=self.server,
            transport=transport,
            auth=user_auth(config.user),
            timeout=timeout,
            trust_env=False,
        )
        self._events = EventCorrelator()
        self._lock = threading.Lock()
        self._node_uids: dict[str, str] = {}

    # ── the four calls ────────────────────────────────────────────────────────────────

    def node_labels(self, node_name: str) -> Mapping[str, str]:
        with self._translated(f"/api/v1/nodes/{node_name}"):
            node = self._client.get(Node, node_name)
        self._remember_uid(node)
        labels = node.metadata.labels if node.metadata is not None else None
        return dict(labels or {})

    def post_event(
        self, node_name: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        key = event_key(node_name, reason, message, warning=warning)
        now = self._monotonic()
        with self._lock:
            seen = self._events.lookup(key, now)
        if seen is not None:
            count = seen.count + 1
            path = f"/api/v1/namespaces/{EVENT_NAMESPACE}/events/{seen.name}"
            try:
                with self._translated(path):
                    self._client.patch(
                        Event,
                        seen.name,
                        bump_patch(count, self._time_ns()),
                        namespace=EVENT_NAMESPACE,
                        patch_type=PatchType.STRATEGIC,
                    )
            except KubeError as e:
                if e.status != 404:
                    raise
                # the API server dropped the Event (its TTL, 1 h by default): a new one
            else:
                with self._lock:
                    self._events.record(key, seen.name, count, now)
                return
        with self._lock:
            stamp_ns = self._events.name_stamp(self._time_ns())
        name = event_name(node_name, stamp_ns)
        body = event_body(
            key, name=name, node_uid=self._node_uids.get(node_name), unix_nanoseconds=stamp_ns
        )
        with self._translated(f"/api/v1/namespaces/{EVENT_NAMESPACE}/events"):
            event = Event.from_dict(body)  # type: ignore[no-untyped-call]  # lightkube's mixin
            self._client.create(event, namespace=EVENT_NAMESPACE)
        with self._lock:
            self._events.record(key, name, 1, now)

    def annotate_node(self, node_name: str, annotations: Mapping[str, str | None]) -> None:
        patch = {"metadata": {"annotations": dict(annotations)}}
        with self._translated(f"/api/v1/nodes/{node_name}"):
            node = self._client.patch(Node, node_name, patch, patch_type=PatchType.MERGE)
        self._remember_uid(node)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        try:
            with self._translated(f"/api/v1/namespaces/{namespace}/configmaps/{name}"):
                cm = self._client.get(ConfigMap, name, namespace=namespace)
        except KubeError as e:
            if e.status == 404 and not isinstance(e, KubeUnavailable):
                return None
            raise
        return dict(cm.data or {})

    # ── the doctor's reads (ClusterReader) ────────────────────────────────────────────

    def list_nodes(self) -> list[Mapping[str, Any]]:
        return self._list(_NodeJson, "/api/v1/nodes", None)

    def list_events(self) -> list[Mapping[str, Any]]:
        return self._list(_EventJson, "/api/v1/events", ALL_NS)

    def node_proxy(self, node_name: str, path: str, *, timeout_seconds: float) -> Mapping[str, Any]:
        where = f"/api/v1/nodes/{quote(node_name, safe='')}/proxy/{path.lstrip('/')}"
        with self._translated(where):
            # every phase (connect, TLS, pool wait, each read) bounded by the caller's
            # timeout: a kubelet that never answers costs timeout_seconds, no more
            response = self._raw.get(where, timeout=httpx.Timeout(timeout_seconds))
        return _json_object(f"{self.server}{where}", response)

    def close(self) -> None:
        self._client.close()
        self._raw.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ── internals ─────────────────────────────────────────────────────────────────────

    def _list(
        self, resource: type[_NodeJson] | type[_EventJson], where: str, namespace: str | None
    ) -> list[Mapping[str, Any]]:
        with self._translated(where):
            try:
                if namespace is None:
                    pages = self._client.list(resource, chunk_size=LIST_PAGE_SIZE)
                else:
                    pages = self._client.list(
                        resource,  # type: ignore[arg-type]
                        namespace=namespace,
                        chunk_size=LIST_PAGE_SIZE,
                    )
                return [dict(item) for item in pages]
            except (KeyError, TypeError, AttributeError) as e:  # a 200 that is not a List
                text = f"unusable answer: not a list ({_describe(e)})"
                raise KubeError(text, url=f"{self.server}{where}") from None

    def _remember_uid(self, node: Node) -> None:
        meta = node.metadata
        if meta is not None and meta.name and meta.uid:
            self._node_uids[meta.name] = meta.uid

    @contextmanager
    def _translated(self, path: str) -> Iterator[None]:
        """The one place a failure becomes KubeUnavailable or KubeError (module table)."""
        url = f"{self.server}{path}"
        try:
            yield
        except ApiError as e:
            raise _status_error(url, e.response.status_code, _status_fields(e)) from None
        except httpx.HTTPStatusError as e:  # an error without a JSON Status (a proxy's page)
            raise _status_error(url, e.response.status_code, _text_fields(e.response)) from None
        except httpx.TimeoutException as e:
            raise KubeUnavailable(f"no answer in time ({_describe(e)})", url=url) from None
        except httpx.TransportError as e:
            raise KubeUnavailable(f"cannot connect: {_describe(e)}", url=url) from None
        except httpx.HTTPError as e:  # the rest: an undecodable body, too many redirects
            raise KubeError(f"unusable answer: {_describe(e)}", url=url) from None
        except (ConfigError, OSError) as e:  # the token file vanished between rotations
            raise KubeUnavailable(f"credentials: {_describe(e)}", url=url) from None
        except ValueError as e:  # a body that is not the JSON it says it is
            context = e.__context__  # lightkube raises it while reading an error's Status
            if isinstance(context, httpx.HTTPStatusError):
                response = context.response
                raise _status_error(url, response.status_code, _text_fields(response)) from None
            raise KubeError(f"unusable answer: {_describe(e)}", url=url) from None


def _without_exec(resolved: ResolvedConfig) -> tuple[SingleConfig, ExecPlugin | None]:
    """The config lightkube gets, and the exec plugin mlnode runs instead (module doc).
    A token or token file wins over exec, as in lightkube and client-go."""
    config = resolved.config
    user = config.user if config.user is not None else User()
    spec = user.exec
    if spec is None or user.token is not None or user.token_file is not None:
        return config, None
    plugin = ExecPlugin(
        api_version=spec.apiVersion,
        command=spec.command,
        args=spec.args or (),
        env={v.name: v.value for v in spec.env or ()},
        kubeconfig=resolved.path,
    )
    return config._replace(user=dataclasses.replace(user, exec=None)), plugin


class _SharedTransport(httpx.BaseTransport):
    """The one transport both clients use. lightkube's ConnectionParams passes its fields
    through ``dataclasses.asdict``, which deep-copies them: an SSLContext cannot be copied,
    and a copy would be a second pool. This wrapper is its own copy."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedTransport:
        return self


def _https_transport(config: SingleConfig) -> httpx.HTTPTransport:
    user = config.user if config.user is not None else User()
    context = verify_cluster(config.cluster, user, config.abs_file, trust_env=False)
    limits = httpx.Limits(
        max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS
    )
    return httpx.HTTPTransport(verify=context, limits=limits, trust_env=False)


_NOT_JSON = object()


def _json_object(url: str, response: httpx.Response) -> Mapping[str, Any]:
    """A node proxy answer: the decoded JSON object, or the error it stands for."""
    doc: Any
    try:
        doc = json.loads(response.content)
    except ValueError:
        doc = _NOT_JSON
    if response.status_code >= 400:
        if isinstance(doc, dict) and doc.get("kind") == "Status":
            fields = (str(doc.get("message") or ""), str(doc.get("reason") or ""))
        else:
            fields = _text_fields(response)
        raise _status_error(url, response.status_code, fields)
    if not isinstance(doc, dict):
        what = "not JSON" if doc is _NOT_JSON else f"JSON {type(doc).__name__}, not an object"
        raise KubeError(f"unusable answer: {what}", url=url)
    return doc


def _status_fields(e: ApiError) -> tuple[str, str]:
    status = e.status
    return (status.message or "", status.reason or "")


def _text_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        text = ""
    return (" ".join(text.split())[:200], response.reason_phrase)


def _status_error(url: str, code: int, fields: tuple[str, str]) -> KubeError:
    message, reason = fields
    detail = " ".join(message.split()) or reason or "no message"
    text = f"{detail} (HTTP {code}{' ' + reason if reason else ''})"
    if code >= 500 or code == 429:
        return KubeUnavailable(text, url=url, status=code)
    return KubeError(text, url=url, status=code)


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
