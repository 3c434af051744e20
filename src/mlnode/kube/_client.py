"""The agent's Kubernetes API client: four calls (:class:`mlnode.ports.ClusterApi`) on a
synchronous lightkube ``Client``, with every failure translated in one place
(:meth:`KubeClient._translated`):

    failure                                         raised
    ──────────────────────────────────────────────  ─────────────────────────────────
    connect/TLS/read timeout, connection dropped    KubeUnavailable (retryable)
    5xx, 429 (any body)                             KubeUnavailable (retryable)
    other 4xx with a Status                         KubeError: Status message, code
    404 on config_map                               None (the ConfigMap is optional)

That KubeClient satisfies the port is checked by mypy in :mod:`mlnode.testing._cluster`:
mlnode.kube sits below mlnode.ports in the layers, so it may not import the port here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from lightkube import ApiError, Client
from lightkube.core.exceptions import ConfigError
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

__all__ = ["CONNECT_TIMEOUT_SECONDS", "READ_TIMEOUT_SECONDS", "KubeClient", "connect"]

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
_FIELD_MANAGER = "mlnode-agent"


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
    """:class:`mlnode.ports.ClusterApi` over lightkube. Thread-safe (httpx's pool is; the
    event correlator has its own lock). ``monotonic``/``time_ns`` are injectable so tests
    can step past the aggregation window."""

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
        self._client = Client(
            resolved.config,
            timeout=httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            field_manager=_FIELD_MANAGER,
            # no proxy or SSL_* variables from this process's environment: the settings
            # are the kubeconfig's or the service account's, nothing else
            trust_env=False,
            transport=transport,
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

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ── internals ─────────────────────────────────────────────────────────────────────

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
