"""Events as the API answers them: recorded objects validate, parse, and feed the node
findings (GC, capacity, back-off, evictions)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlnode.doctor._classify import node_event_findings as from_classify
from mlnode.doctor._events import (
    KubeEvent,
    events_by_node,
    gc_numbers,
    node_event_findings,
    parse_event,
    parse_kube_time,
    runtime_from_node_info,
)
from mlnode.testing import _kube_events as ke
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
NODE = "gpu-node-7"
IMAGE = "registry.example.com/ml/train:v3"
SCHEMAS = sorted(
    {v for v in kubernetes_validate.utils.all_versions()},
    key=lambda v: tuple(map(int, v.split("."))),
)


def schema_for(minor: int) -> str:
    """kubernetes-validate ships no 1.24 schema; core/v1 Event is the same in 1.25."""
    return f"1.{max(minor, 25)}.0"


def one(obj: dict[str, Any]) -> KubeEvent:
    e = parse_event(obj)
    assert e is not None
    return e


def story() -> list[dict[str, Any]]:
    return ke.pull_story(
        node=NODE,
        namespace="ml",
        pod="train-0",
        container="trainer",
        image=IMAGE,
        error=ke.ERRORS["containerd-progress-timeout"][0],
        t0=T0,
        fail_after_seconds=300.0,
    )


def node_story() -> list[dict[str, Any]]:
    gc = ke.KUBELET_MESSAGES[8].format.replace("%d", "{}").format(13148397568, 373573457)
    return [
        ke.node_event(
            NODE, "FreeDiskSpaceFailed", gc, T0, last=T0 + timedelta(minutes=50), count=11
        ),
        ke.node_event(NODE, "ImageGCFailed", gc, T0 + timedelta(minutes=5), count=10),
        ke.node_event(NODE, "InvalidDiskCapacity", "invalid capacity 0 on image filesystem", T0),
        ke.node_event(NODE, "Starting", "Starting kubelet.", T0, type_="Normal"),
        ke.pod_event(
            "ml",
            "data-3",
            "loader",
            NODE,
            "Evicted",
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi,"
            " available: 9Gi. Container loader was using 40Gi, request is 0, has larger"
            " consumption of ephemeral-storage. ",
            T0 + timedelta(minutes=7),
            type_="Warning",
        ),
        ke.pod_event(
            "ml",
            "etl-1",
            "etl",
            NODE,
            "Evicted",
            'Container etl exceeded its local ephemeral storage limit "2Gi". ',
            T0 + timedelta(minutes=8),
            type_="Warning",
        ),
        ke.pod_event(
            "ml",
            "web-1",
            "web",
            NODE,
            "Evicted",
            "The node was low on resource: memory. ",
            T0,
            type_="Warning",
        ),
    ]


@pytest.mark.parametrize("minor", range(24, 36))
def test_recorded_events_pass_strict_validation(minor: int) -> None:
    version = schema_for(minor)
    assert version in SCHEMAS
    for obj in story() + node_story():
        kubernetes_validate.validate(obj, version, strict=True)


def test_validation_would_catch_a_wrong_field() -> None:
    obj = story()[0]
    obj["involvedObject"]["fieldpath"] = obj["involvedObject"].pop("fieldPath")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, SCHEMAS[-1], strict=True)


def test_pulling_event_parses() -> None:
    e = one(story()[0])
    assert (e.reason, e.type, e.kind, e.object_name, e.object_namespace) == (
        "Pulling",
        "Normal",
        "Pod",
        "train-0",
        "ml",
    )
    assert e.message == f'Pulling image "{IMAGE}"'
    assert e.node == NODE and e.component == "kubelet"
    assert e.container == "trainer" and e.field_path == "spec.containers{trainer}"
    assert e.first_seen == T0 and e.last_seen == T0 and e.count == 1


def test_list_items_without_kind_parse_and_other_kinds_do_not() -> None:
    obj = story()[1]
    del obj["kind"], obj["apiVersion"]
    assert one(obj).reason == "Failed"
    assert parse_event({"kind": "Pod", "metadata": {"name": "x"}}) is None
    assert parse_event({"metadata": {"name": "x"}}) is None


def test_node_event_names_its_node_from_the_object_when_source_is_empty() -> None:
    obj = ke.node_event(NODE, "InvalidDiskCapacity", "invalid capacity 0 on image filesystem", T0)
    obj["source"] = {}
    del obj["reportingInstance"]
    e = one(obj)
    assert e.node == NODE and e.kind == "Node"


def test_events_k8s_io_v1_shape() -> None:
    obj = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "train-0.1", "namespace": "ml"},
        "eventTime": "2026-11-30T10:00:00.123456Z",
        "series": {"count": 4, "lastObservedTime": "2026-11-30T10:20:00.000000Z"},
        "reportingController": "kubelet",
        "reportingInstance": NODE,
        "action": "Pulling",
        "reason": "Pulling",
        "regarding": {"kind": "Pod", "namespace": "ml", "name": "train-0"},
        "note": f'Pulling image "{IMAGE}"',
        "type": "Normal",
    }
    e = one(obj)
    assert e.count == 4 and e.node == NODE and e.component == "kubelet"
    assert e.first_seen == T0 + timedelta(microseconds=123456)
    assert e.last_seen == T0 + timedelta(minutes=20)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-11-30T10:00:00Z", T0),
        ("2026-11-30T10:00:00.5Z", T0 + timedelta(milliseconds=500)),
        ("2026-11-30T11:00:00+01:00", T0),
        ("2026-11-30T10:00:00+0000", T0),
        ("2026-13-30T10:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_times(text: str | None, want: datetime | None) -> None:
    assert parse_kube_time(text) == want


def test_events_by_node_groups_in_time_order() -> None:
    events = [one(o) for o in reversed(story() + node_story())]
    grouped = events_by_node(events)
    assert list(grouped) == [NODE]
    times = [e.first_seen for e in grouped[NODE]]
    assert times == sorted(t for t in times if t is not None)


def test_gc_numbers_both_wordings() -> None:
    assert gc_numbers(
        "Failed to garbage collect required amount of images. Attempted to free 13148397568"
        " bytes, but only found 373573457 bytes eligible to free."
    ) == (13148397568, 373573457)
    assert gc_numbers(
        "failed to garbage collect required amount of images. Wanted to free 966184140 bytes,"
        " but freed 0 bytes"
    ) == (966184140, 0)
    assert gc_numbers("invalid capacity 0 on image filesystem") is None


def test_node_findings_one_per_kind_with_counts() -> None:
    events = [one(o) for o in story() + node_story()]
    findings = node_event_findings(NODE, events)
    assert from_classify is node_event_findings
    by_code = {f.code: f for f in findings}
    assert sorted(by_code) == ["D106", "D107", "D210", "D407"]
    gc = by_code["D107"]
    assert "12.2 GiB" in gc.title and "356.3 MiB" in gc.title and "(x21)" in gc.title
    assert "exited" in gc.cause and "pinned" in gc.cause and "imageMinimumGCAge" in gc.cause
    assert "compressed" in gc.cause
    assert "D106" in by_code and "capacity 0" in by_code["D106"].title
    backoff = by_code["D210"]
    assert backoff.subject == IMAGE and "ml/train-0" in backoff.evidence[0]
    evicted = by_code["D407"]
    assert evicted.title.startswith("2 evictions for ephemeral storage")  # memory one left out
    assert "1 for node pressure" in evicted.cause and "1 for a pod's own limit" in evicted.cause


def test_crash_backoff_is_not_a_pull_backoff() -> None:
    obj = ke.pod_event(
        "ml", "x", "c", NODE, "BackOff", "Back-off restarting failed container c", T0
    )
    assert node_event_findings(NODE, [one(obj)]) == []


def test_message_table_rows_name_their_source() -> None:
    for row in ke.KUBELET_MESSAGES:
        assert row.read_at and row.verified and row.versions
    for text, where in ke.ERRORS.values():
        assert text and where


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "kind",
        "apiVersion",
        "metadata",
        "involvedObject",
        "regarding",
        "reason",
        "message",
        "note",
        "source",
        "count",
        "series",
        "firstTimestamp",
        "lastTimestamp",
        "eventTime",
        "type",
    ]
)


@given(st.dictionaries(_keys, _json, max_size=10))
def test_parse_event_never_raises(obj: dict[str, Any]) -> None:
    parse_event(obj)


@given(st.text(max_size=60))
def test_parse_time_never_raises(text: str) -> None:
    parse_kube_time(text)


@given(
    st.text(max_size=200),
    st.sampled_from(
        ["FreeDiskSpaceFailed", "ImageGCFailed", "InvalidDiskCapacity", "BackOff", "Evicted"]
    ),
)
def test_node_findings_never_raise(message: str, reason: str) -> None:
    obj = copy.deepcopy(ke.node_event(NODE, reason, message or "x", T0))
    node_event_findings(NODE, [one(obj)])


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("containerd://1.7.13", RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 13))),
        (
            "containerd://1.7.12-0ubuntu2~22.04.1",
            RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 12)),
        ),
        ("containerd://v2.0.2", RuntimeSpec(RuntimeKind.CONTAINERD, Version(2, 0, 2))),
        ("cri-o://1.30.11", RuntimeSpec(RuntimeKind.CRIO, Version(1, 30, 11))),
        ("docker://24.0.7", RuntimeSpec(RuntimeKind.CRI_DOCKERD)),
        ("remote://1.0", None),
        ("containerd://", None),
        ("", None),
        (None, None),
    ],
)
def test_runtime_from_node_info(text: str | None, want: RuntimeSpec | None) -> None:
    assert runtime_from_node_info(text) == want


@given(st.text(max_size=40))
def test_runtime_from_node_info_never_raises(text: str) -> None:
    runtime_from_node_info(text)


@pytest.mark.parametrize("minor", range(24, 36))
def test_free_disk_space_failed_in_each_versions_words(minor: int) -> None:
    from mlnode.doctor._events import parse_event
    from mlnode.testing._kube_events import KUBELET_MESSAGES, node_event

    def covers(span: str) -> bool:
        lo, _, hi = span.split()[0].partition("-")
        return int(lo.split(".")[1]) <= minor <= int(hi.split(".")[1])

    (row,) = [
        r for r in KUBELET_MESSAGES if r.reason == "FreeDiskSpaceFailed" and covers(r.versions)
    ]
    message = row.format.replace("%d", "13099650252", 1).replace("%d", "373595136", 1)
    obj = node_event("gpu-1", "FreeDiskSpaceFailed", message, datetime(2026, 11, 30, tzinfo=UTC))
    ev = parse_event(obj)
    assert ev is not None
    (f,) = [f for f in from_classify("gpu-1", [ev]) if f.code == "D107"]
    assert "12.2 GiB" in f.title and "356.3 MiB" in f.title, (minor, f.title)
