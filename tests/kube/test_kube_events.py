"""The pure parts of Event posting: the kubelet-style name, timestamps, truncation, and the
correlator's window and LRU (shared by KubeClient and FakeClusterApi)."""

from __future__ import annotations

import pytest

from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube import AGGREGATE_WINDOW_SECONDS, MESSAGE_LIMIT_CHARS, EventCorrelator
from mlnode.kube._events import event_key, event_name, rfc3339, truncate
from mlnode.testing import FakeClusterApi


def test_name_and_timestamps() -> None:
    ns = 1_764_590_400_123_456_789  # 2025-12-01T12:00:00.123456789Z
    assert event_name("node-a", ns) == f"node-a.{ns:x}"
    assert rfc3339(ns) == "2025-12-01T12:00:00Z"


def test_truncate() -> None:
    assert truncate("short") == "short"
    exact = "y" * MESSAGE_LIMIT_CHARS
    assert truncate(exact) == exact
    long = truncate("y" * (MESSAGE_LIMIT_CHARS + 1))
    assert len(long) == MESSAGE_LIMIT_CHARS and long.endswith("...")


def test_window_is_from_the_last_occurrence() -> None:
    c = EventCorrelator()
    key = event_key("n", "R", "m", warning=False)
    assert c.lookup(key, 0.0) is None
    c.record(key, "n.1", 1, 0.0)
    seen = c.lookup(key, AGGREGATE_WINDOW_SECONDS - 1)
    assert seen is not None and seen.count == 1
    c.record(key, "n.1", 2, AGGREGATE_WINDOW_SECONDS - 1)
    assert c.lookup(key, 2 * AGGREGATE_WINDOW_SECONDS - 2) is not None  # bumped: window moved
    assert c.lookup(key, 3 * AGGREGATE_WINDOW_SECONDS) is None
    assert len(c) == 0  # an expired entry is dropped


def test_lru_keeps_the_most_recent() -> None:
    c = EventCorrelator(max_entries=2)
    keys = [event_key("n", "R", str(i), warning=False) for i in range(3)]
    c.record(keys[0], "a", 1, 0.0)
    c.record(keys[1], "b", 1, 0.0)
    assert c.lookup(keys[0], 1.0) is not None  # keys[0] now most recently used
    c.record(keys[2], "c", 1, 1.0)
    assert len(c) == 2
    assert c.lookup(keys[1], 1.0) is None
    assert c.lookup(keys[0], 1.0) is not None


def test_name_stamps_never_repeat() -> None:
    c = EventCorrelator()
    assert [c.name_stamp(10), c.name_stamp(10), c.name_stamp(5), c.name_stamp(100)] == [
        10,
        11,
        12,
        100,
    ]


def test_fake_cluster_api_faults_and_log() -> None:
    fake = FakeClusterApi()
    fake.add_node("n", {"a": "b"})
    fake.refuse("node_labels", 403)
    with pytest.raises(KubeError) as e:
        fake.node_labels("n")
    assert e.value.status == 403 and not isinstance(e.value, KubeUnavailable)
    fake.refuse("config_map", 503)
    with pytest.raises(KubeUnavailable):
        fake.config_map("ns", "x")
    fake.post_event("n", reason="R", message="m")
    fake.unavailable = True
    with pytest.raises(KubeUnavailable):
        fake.post_event("n", reason="R", message="m")
    assert [c[0] for c in fake.calls] == ["node_labels", "config_map", "post_event", "post_event"]
    assert [e["count"] for e in fake.events("n")] == [1]  # the failed call changed nothing
    assert fake.events("other") == []
    fake.close()
    assert fake.closed
