"""An in-memory :class:`mlnode.ports.ClusterApi` for the agent's millisecond tests.

It answers as :class:`mlnode.kube.KubeClient` does against an API server: a node it does
not know is a 404 :class:`~mlnode.errors.KubeError`, a missing ConfigMap is None, Events
are the same JSON objects the real client posts, aggregated by the same correlator
(:class:`mlnode.kube.EventCorrelator`: the same reason and message within the window
bumps ``count``). ``unavailable = True`` makes every call raise
:class:`~mlnode.errors.KubeUnavailable`; :meth:`FakeClusterApi.refuse` makes one call a
4xx (e.g. 403 for ``annotate_node``, which the shipped RBAC does not grant).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube._events import (
    EVENT_NAMESPACE,
    EventCorrelator,
    bump_patch,
    event_body,
    event_key,
    event_name,
)

__all__ = ["FakeClusterApi"]

_URL = "https://fake-cluster.invalid"


class FakeClusterApi:
    """See the module docstring. ``monotonic``/``time_ns``: the clocks the correlator's
    window and the Events' timestamps read (e.g. a FakeClock's ``monotonic``)."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        time_ns: Callable[[], int] | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._time_ns = time_ns or (lambda: int(self._monotonic() * 1e9) + 1_767_225_600 * 10**9)
        self._lock = threading.Lock()
        self._events = EventCorrelator()
        self.unavailable = False
        self.closed = False
        self.labels: dict[str, dict[str, str]] = {}
        self.annotations: dict[str, dict[str, str]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        #: every Event object, as the API server would hold it (namespace default)
        self.event_objects: dict[str, dict[str, Any]] = {}
        #: (call, args) of every call, in order
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._refused: dict[str, int] = {}

    # ── set-up ────────────────────────────────────────────────────────────────────────

    def add_node(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.labels[name] = dict(labels or {})
        self.annotations.setdefault(name, {})

    def add_config_map(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        self.config_maps[(namespace, name)] = dict(data)

    def refuse(self, call: str, status: int = 403) -> None:
        """Make ``call`` (``node_labels``, ``post_event``, ``annotate_node``,
        ``config_map``) answer ``status`` (a 4xx KubeError, a 5xx/429 KubeUnavailable)."""
        self._refused[call] = status

    def events(self, node_name: str | None = None) -> list[dict[str, Any]]:
        """The Events posted (about ``node_name`` if given), oldest first."""
        return [
            copy.deepcopy(e)
            for e in self.event_objects.values()
            if node_name is None or e["involvedObject"]["name"] == node_name
        ]

    # ── ClusterApi ────────────────────────────────────────────────────────────────────

    def node_labels(self, node_name: str) -> Mapping[str, str]:
        self._enter("node_labels", node_name, path=f"/api/v1/nodes/{node_name}")
        if node_name not in self.labels:
            raise _not_found(f"/api/v1/nodes/{node_name}", "nodes", node_name)
        return dict(self.labels[node_name])

    def post_event(
        self, node_name: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        path = f"/api/v1/namespaces/{EVENT_NAMESPACE}/events"
        self._enter("post_event", node_name, reason, message, warning, path=path)
        key = event_key(node_name, reason, message, warning=warning)
        now = self._monotonic()
        with self._lock:
            seen = self._events.lookup(key, now)
            if seen is not None and seen.name in self.event_objects:
                count = seen.count + 1
                self.event_objects[seen.name].update(bump_patch(count, self._time_ns()))
                self._events.record(key, seen.name, count, now)
                return
            stamp_ns = self._events.name_stamp(self._time_ns())
            name = event_name(node_name, stamp_ns)
            if name in self.event_objects:  # as the API server: 409 AlreadyExists
                text = f'events "{name}" already exists (HTTP 409 AlreadyExists)'
                raise KubeError(text, url=_URL + path, status=409)
            uid = f"uid-{node_name}" if node_name in self.labels else None
            self.event_objects[name] = event_body(
                key, name=name, node_uid=uid, unix_nanoseconds=stamp_ns
            )
            self._events.record(key, name, 1, now)

    def annotate_node(self, node_name: str, annotations: Mapping[str, str | None]) -> None:
        path = f"/api/v1/nodes/{node_name}"
        self._enter("annotate_node", node_name, dict(annotations), path=path)
        if node_name not in self.labels:
            raise _not_found(path, "nodes", node_name)
        current = self.annotations.setdefault(node_name, {})
        for k, v in annotations.items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self._enter("config_map", namespace, name, path=path)
        data = self.config_maps.get((namespace, name))
        return dict(data) if data is not None else None

    def close(self) -> None:
        self.closed = True

    # ── internals ─────────────────────────────────────────────────────────────────────

    def _enter(self, call: str, *args: Any, path: str) -> None:
        self.calls.append((call, args))
        url = f"{_URL}{path}"
        if self.unavailable:
            raise KubeUnavailable("cannot connect: [Errno 111] Connection refused", url=url)
        code = self._refused.get(call)
        if code is None:
            return
        text = f"fake refusal (HTTP {code})"
        if code >= 500 or code == 429:
            raise KubeUnavailable(text, url=url, status=code)
        raise KubeError(text, url=url, status=code)


def _not_found(path: str, resource: str, name: str) -> KubeError:
    text = f'{resource} "{name}" not found (HTTP 404 NotFound)'
    return KubeError(text, url=_URL + path, status=404)


if TYPE_CHECKING:  # mypy checks the fake and the real client satisfy the port; never runs
    from mlnode import ports
    from mlnode.kube import KubeClient

    def _fake(c: FakeClusterApi) -> ports.ClusterApi:
        return c

    # here rather than in mlnode.kube: mlnode.kube sits below mlnode.ports in the layers
    def _real(c: KubeClient) -> ports.ClusterApi:
        return c

    # the doctor's reader: the same client
    def _reader(c: KubeClient) -> ports.ClusterReader:
        return c
