"""Node Events as the kubelet writes them, and the correlator that turns a repeat into a
``count`` bump: pure (no I/O), shared by :class:`~mlnode.kube.KubeClient` and the
in-memory fake so both aggregate alike.

The shape follows the kubelet's recorder (client-go ``tools/record``): a core/v1 Event in
namespace ``default`` (a Node has no namespace; pkg/apis/core/validation/events.go accepts
``default`` for a cluster-scoped object), ``metadata.name`` ``<node>.<hex unix nanoseconds>``,
``count`` 1, ``firstTimestamp`` = ``lastTimestamp``. The same reason and message again
within :data:`AGGREGATE_WINDOW_SECONDS` of the last one patches that Event's ``count`` and
``lastTimestamp`` instead of making a new object.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGGREGATE_WINDOW_SECONDS",
    "COMPONENT",
    "EVENT_NAMESPACE",
    "MESSAGE_LIMIT_CHARS",
    "EventCorrelator",
    "EventKey",
    "SeenEvent",
    "event_body",
    "event_key",
    "event_name",
    "rfc3339",
]

COMPONENT = "mlnode-agent"
EVENT_NAMESPACE = "default"
#: the events API's note limit (pkg/apis/core/validation/events.go NoteLengthLimit)
MESSAGE_LIMIT_CHARS = 1024
AGGREGATE_WINDOW_SECONDS = 600.0
_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class EventKey:
    node_name: str
    reason: str
    message: str
    event_type: str


@dataclass(frozen=True)
class SeenEvent:
    """The Event a key last went to: its name, count so far, and when (monotonic)."""

    name: str
    count: int
    last_seen_seconds: float


def event_key(node_name: str, reason: str, message: str, *, warning: bool) -> EventKey:
    return EventKey(node_name, reason, truncate(message), "Warning" if warning else "Normal")


def truncate(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT_CHARS:
        return message
    return message[: MESSAGE_LIMIT_CHARS - 3] + "..."


def event_name(node_name: str, unix_nanoseconds: int) -> str:
    """The kubelet's Event name: the object's name, a dot, the time in hex nanoseconds."""
    return f"{node_name}.{unix_nanoseconds:x}"


def rfc3339(unix_nanoseconds: int) -> str:
    """``metav1.Time`` as the API serialises it: UTC, whole seconds, ``Z``."""
    t = datetime.datetime.fromtimestamp(unix_nanoseconds // 1_000_000_000, datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    key: EventKey, *, name: str, node_uid: str | None, unix_nanoseconds: int
) -> dict[str, Any]:
    """A new core/v1 Event (count 1) for ``key``, as JSON."""
    stamp = rfc3339(unix_nanoseconds)
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "name": key.node_name}
    if node_uid:
        involved["uid"] = node_uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": EVENT_NAMESPACE},
        "involvedObject": involved,
        "reason": key.reason,
        "message": key.message,
        "type": key.event_type,
        "source": {"component": COMPONENT, "host": key.node_name},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": COMPONENT,
        "reportingInstance": key.node_name,
    }


def bump_patch(count: int, unix_nanoseconds: int) -> dict[str, Any]:
    """The patch for a repeat: the new count and lastTimestamp (a merge patch, which is
    also a valid strategic-merge patch: no lists)."""
    return {"count": count, "lastTimestamp": rfc3339(unix_nanoseconds)}


class EventCorrelator:
    """A small LRU of the Events posted lately, by (node, reason, message, type).

    Not thread-safe on its own: the client holds its lock around lookup and record.
    """

    def __init__(
        self,
        *,
        window_seconds: float = AGGREGATE_WINDOW_SECONDS,
        max_entries: int = _CACHE_ENTRIES,
    ) -> None:
        self.window_seconds = window_seconds
        self._max_entries = max_entries
        self._seen: OrderedDict[EventKey, SeenEvent] = OrderedDict()
        self._last_stamp_ns = 0

    def name_stamp(self, unix_nanoseconds: int) -> int:
        """``unix_nanoseconds``, or one past the last stamp handed out if that is not
        later: two Events posted within one clock tick get different names (the
        kubelet's ``<node>.<hex ns>`` would collide, 409 AlreadyExists)."""
        self._last_stamp_ns = max(unix_nanoseconds, self._last_stamp_ns + 1)
        return self._last_stamp_ns

    def lookup(self, key: EventKey, now_seconds: float) -> SeenEvent | None:
        """The Event to bump for ``key``, or None when a new one is due (never seen, or
        last seen longer than the window ago)."""
        seen = self._seen.get(key)
        if seen is None:
            return None
        if now_seconds - seen.last_seen_seconds > self.window_seconds:
            del self._seen[key]
            return None
        self._seen.move_to_end(key)
        return seen

    def record(self, key: EventKey, name: str, count: int, now_seconds: float) -> None:
        self._seen[key] = SeenEvent(name, count, now_seconds)
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)
