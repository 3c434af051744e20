"""The failed-pull classifier, driven by recorded core/v1 Event objects.

Every Event here is built by :mod:`mlnode.testing._kube_events` (the kubelet's formats,
with the tree each was read in) and goes through :func:`parse_event` as the API's JSON,
so the classifier sees what ``doctor --cluster`` sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlnode.doctor._classify import (
    PullCause,
    PullFailure,
    cause_of,
    classify,
    classify_failures,
    event_findings,
    pull_failures,
)
from mlnode.doctor._events import KubeEvent, parse_event
from mlnode.doctor._model import Finding
from mlnode.testing import _kube_events as ke
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
NODE = "gpu-node-7"
IMAGE = "registry.example.com/ml/train:v3"  # 12 GB, 41 layers
RECOMMENDED = 900.0


def containerd(version: str) -> RuntimeSpec:
    return RuntimeSpec(RuntimeKind.CONTAINERD, Version.parse(version))


def crio(version: str) -> RuntimeSpec:
    return RuntimeSpec(RuntimeKind.CRIO, Version.parse(version))


def parsed(objs: Sequence[dict[str, Any]]) -> list[KubeEvent]:
    out = [parse_event(o) for o in objs]
    assert all(e is not None for e in out)
    return [e for e in out if e is not None]


def story(
    error: str = ke.ERRORS["containerd-progress-timeout"][0],
    *,
    after: float = 300.0,
    pod: str = "train-0",
    attempts: int = 1,
    image: str = IMAGE,
) -> list[dict[str, Any]]:
    return ke.pull_story(
        node=NODE,
        namespace="ml",
        pod=pod,
        container="trainer",
        image=image,
        error=error,
        t0=T0,
        fail_after_seconds=after,
        attempts=attempts,
    )


def explain(
    objs: Sequence[dict[str, Any]],
    runtime: RuntimeSpec | None,
    *,
    deadline: float | None = None,
    source: str = "",
) -> Finding:
    events = parsed(objs)
    failures = pull_failures(events)
    assert len(failures) == 1, failures
    return classify(
        failures[0],
        runtime=runtime,
        node_events=events,
        deadline_seconds=deadline,
        deadline_source=source,
        recommended_deadline_seconds=RECOMMENDED,
    )


def test_acceptance_containerd_1_7_13_stalled_layer_is_the_progress_timeout() -> None:
    # A 12 GB image; a layer stalls; containerd 1.7.13 cancels after 5 min of silence;
    # the kubelet's Failed event says only "context canceled".
    f = explain(story(after=300.0), containerd("1.7.13"))
    assert f.code == "D201"
    assert IMAGE in f.title and NODE in f.title and "5m0s" in f.title
    assert "containerd 1.7.13 cancels a pull when no byte arrives from the registry for 5m0s" in (
        f.cause
    )
    assert "its default since 1.7.10" in f.cause
    assert "byte 0" in f.cause
    assert f.fix.startswith("mlnode apply --image-pull-progress-deadline 15m ")
    assert 'image_pull_progress_timeout = "15m0s" under [plugins."io.containerd.grpc.v1.cri"]' in (
        f.fix
    )
    assert any("context canceled" in line for line in f.evidence)
    assert any("elapsed 5m0s" in line for line in f.evidence)
    assert any("containerd@1.7.13" in line and "5m0s" in line for line in f.evidence)


@pytest.mark.parametrize("minor", range(24, 36))
def test_every_kubernetes_version_message_shape(minor: int) -> None:
    """Each of 1.24-1.35: the node also pulled another image successfully just before (the
    Pulled text differs by version, see KUBELET_MESSAGES); the Failed shape is the one
    format all of them write, paired with its Pulling and classified."""
    rows = [r for r in ke.KUBELET_MESSAGES if r.reason == "Failed" and "pull" in r.format]
    assert [r.format for r in rows] == ["Failed to pull image %q: %v"]
    sidecar = "registry.example.com/ml/sidecar:1"
    objs = [
        ke.pod_event(
            "ml",
            "train-0",
            "sidecar",
            NODE,
            "Pulling",
            f'Pulling image "{sidecar}"',
            T0 - timedelta(seconds=20),
        ),
        ke.pod_event(
            "ml",
            "train-0",
            "sidecar",
            NODE,
            "Pulled",
            ke.pulled_message((1, minor), sidecar, 19.5, 52_428_800),
            T0 - timedelta(seconds=1),
        ),
        *story(after=301.0),
    ]
    failed = next(o for o in objs if o["message"].startswith("Failed to pull image"))
    assert failed["message"] == (
        f'Failed to pull image "{IMAGE}": rpc error: code = Canceled desc = failed to pull and'
        f' unpack image "{IMAGE}": context canceled'
    )
    pulled = objs[1]["message"]
    assert pulled.startswith(f'Successfully pulled image "{sidecar}" in 19.5s')
    assert ("including waiting" in pulled) is (minor >= 26)
    assert ("Image size: 52428800 bytes." in pulled) is (minor >= 30)
    f = explain(objs, containerd("1.7.13"))
    assert f.code == "D201"
    assert any("elapsed 5m1s" in line for line in f.evidence)


def test_containerd_1_7_5_default_is_one_minute() -> None:
    f = explain(story(after=61.0), containerd("1.7.5"))
    assert f.code == "D201"
    assert "for 1m0s" in f.cause and "its default since 1.7.0" in f.cause


def test_shorter_than_the_deadline_is_not_the_deadline() -> None:
    f = explain(story(after=30.0), containerd("1.7.5"))
    assert f.code == "D211"
    assert "shorter than the 1m0s deadline" in f.cause


def test_containerd_1_6_has_no_deadline_so_the_cancel_is_unexplained() -> None:
    f = explain(story(after=300.0), containerd("1.6.20"))
    assert f.code == "D211"
    assert "containerd 1.6.20 has no pull progress timeout; the setting exists from 1.7.0" in (
        f.cause
    )
    assert "pod deleted or the kubelet restarted" in f.cause
    assert f.fix.startswith("journalctl -u kubelet -u containerd --since")


def test_containerd_2_fix_names_the_v3_table() -> None:
    f = explain(story(after=300.0), containerd("2.0.0"))
    assert f.code == "D201"
    assert "[plugins.'io.containerd.cri.v1.images']" in f.fix


def test_explicit_zero_turns_it_off() -> None:
    f = explain(
        story(), containerd("1.7.13"), deadline=0.0, source="/etc/containerd/config.toml:12"
    )
    assert f.code == "D211"


def test_configured_deadline_longer_than_the_pull_is_not_the_cause() -> None:
    f = explain(story(after=300.0), containerd("1.7.13"), deadline=900.0, source="config.toml:3")
    assert f.code == "D211"


def test_configured_deadline_is_named_with_its_source_and_doubled_when_too_short() -> None:
    f = explain(story(after=900.0), containerd("1.7.13"), deadline=900.0, source="config.toml:3")
    assert f.code == "D201"
    assert "config.toml:3" in f.cause
    assert "--image-pull-progress-deadline 30m" in f.fix


def test_pod_deleted_mid_pull() -> None:
    objs = story(ke.ERRORS["kubelet-canceled"][0], after=120.0)
    objs.append(
        ke.pod_event(
            "ml",
            "train-0",
            "trainer",
            NODE,
            "Killing",
            "Stopping container trainer",
            T0 + timedelta(seconds=121),
        )
    )
    f = explain(objs, containerd("1.7.13"))
    assert f.code == "D202"
    assert "pod went away" in f.cause
    assert any("Killing" in line and "Stopping container trainer" in line for line in f.evidence)


def test_kubelet_restart_inside_the_pull_window() -> None:
    objs = story(after=400.0)
    objs.append(
        ke.node_event(
            NODE, "Starting", "Starting kubelet.", T0 + timedelta(seconds=402), type_="Normal"
        )
    )
    f = explain(objs, containerd("1.7.13"))
    assert f.code == "D202"
    assert "kubelet restarted" in f.title


def test_kubelet_start_long_before_the_pull_explains_nothing() -> None:
    objs = story(after=300.0)
    objs.append(
        ke.node_event(
            NODE, "Starting", "Starting kubelet.", T0 - timedelta(hours=2), type_="Normal"
        )
    )
    assert explain(objs, containerd("1.7.13")).code == "D201"


def test_killing_of_another_pod_explains_nothing() -> None:
    objs = story(after=300.0)
    objs.append(
        ke.pod_event(
            "ml",
            "other-1",
            "x",
            NODE,
            "Killing",
            "Stopping container x",
            T0 + timedelta(seconds=300),
        )
    )
    assert explain(objs, containerd("1.7.13")).code == "D201"


def test_unknown_elapsed_is_likely_the_deadline() -> None:
    objs = [o for o in story() if o["reason"] != "Pulling"]
    f = explain(objs, containerd("1.7.13"))
    assert f.code == "D201"
    assert "likely" in f.title and "likely" in f.cause


def test_crio_with_a_default_deadline() -> None:
    f = explain(story(ke.ERRORS["kubelet-canceled"][0], after=11.0), crio("1.30.11"))
    assert f.code == "D201"
    assert "CRI-O 1.30.11 cancels a pull when no progress event arrives for 10s" in f.cause
    assert 'pull_progress_timeout = "15m0s" under [crio.image]' in f.fix


def test_crio_1_33_default_off() -> None:
    f = explain(story(ke.ERRORS["kubelet-canceled"][0], after=11.0), crio("1.33.0"))
    assert f.code == "D211"


def test_crio_own_timeout_text() -> None:
    f = explain(story(ke.ERRORS["crio-progress-timeout"][0], after=12.0), crio("1.31.3"))
    assert f.code == "D201"
    assert "10s" in f.title


@pytest.mark.parametrize(
    ("name", "code", "cause"),
    [
        ("auth-401", "D203", PullCause.AUTH),
        ("auth-denied", "D203", PullCause.AUTH),
        ("not-found", "D204", PullCause.NOT_FOUND),
        ("manifest-unknown", "D204", PullCause.NOT_FOUND),
        ("disk-full", "D205", PullCause.DISK_FULL),
        ("qps", "D209", PullCause.QPS),
        ("unreachable", "D206", PullCause.UNREACHABLE),
    ],
)
def test_other_causes(name: str, code: str, cause: PullCause) -> None:
    objs = story(ke.ERRORS[name][0], after=3.0)
    f = explain(objs, containerd("1.7.13"))
    assert f.code == code
    events = parsed(objs)
    got = cause_of(
        pull_failures(events)[0],
        runtime=containerd("1.7.13"),
        node_events=events,
        deadline_seconds=None,
        deadline_source="",
    )
    assert got is cause
    assert f.fix


def test_unmatched_error_is_other() -> None:
    f = explain(story("rpc error: code = Unknown desc = something odd", after=3.0), None)
    assert f.code == "D206"
    assert "something odd" in f.cause


def test_fifty_pods_one_image_one_finding() -> None:
    objs: list[dict[str, Any]] = []
    for i in range(50):
        objs += story(after=300.0, pod=f"train-{i}")
    events = parsed(objs)
    failures = pull_failures(events)
    assert len(failures) == 50
    findings = classify_failures(
        failures,
        runtime=containerd("1.7.13"),
        node_events=events,
        deadline_seconds=None,
        deadline_source="",
        recommended_deadline_seconds=RECOMMENDED,
    )
    assert [f.code for f in findings] == ["D201"]
    assert findings[0].title.endswith("(x50)")
    assert any("50 failures in 50 events" in line for line in findings[0].evidence)


def test_aggregated_attempts_keep_the_count_and_time_the_last_attempt() -> None:
    objs = story(after=300.0, attempts=3)
    failure = pull_failures(parsed(objs))[0]
    assert failure.count == 3
    assert failure.elapsed_seconds == 300.0
    f = explain(objs, containerd("1.7.13"))
    assert f.code == "D201" and f.title.endswith("(x3)")


def test_combined_from_similar_events_prefix() -> None:
    objs = story(after=300.0)
    for o in objs:
        if o["message"].startswith("Failed to pull"):
            o["message"] = "(combined from similar events): " + o["message"]
    assert explain(objs, containerd("1.7.13")).code == "D201"


def test_error_events_are_not_pull_failures() -> None:
    objs = story()
    failures = pull_failures(parsed(objs))
    assert [f.message.startswith("Failed to pull image") for f in failures] == [True]


_text = st.text(max_size=200)


@given(message=_text, reason=st.sampled_from(["Failed", "Pulling", "Killing", "Starting"]))
def test_any_message_never_raises(message: str, reason: str) -> None:
    objs = story()
    objs.append(ke.pod_event("ml", "train-0", "trainer", NODE, reason, message, T0))
    events = parsed(objs)
    for failure in pull_failures(events):
        classify(
            failure,
            runtime=containerd("1.7.13"),
            node_events=events,
            deadline_seconds=None,
            deadline_source="",
            recommended_deadline_seconds=RECOMMENDED,
        )


@given(error=_text, after=st.floats(min_value=0, max_value=1e6))
def test_any_error_text_classifies(error: str, after: float) -> None:
    failure = PullFailure(
        node=NODE,
        namespace="ml",
        pod="p",
        image=IMAGE,
        message=f'Failed to pull image "{IMAGE}": {error}',
        failed_at=T0 + timedelta(seconds=after),
        started_at=T0,
        count=1,
    )
    f = classify(
        failure,
        runtime=None,
        node_events=(),
        deadline_seconds=None,
        deadline_source="",
        recommended_deadline_seconds=RECOMMENDED,
    )
    assert f.code in {"D201", "D202", "D203", "D204", "D205", "D206", "D209", "D211"}


def test_event_findings_reads_only_its_node() -> None:
    objs = story(after=300.0)
    objs += ke.pull_story(
        node="other-node",
        namespace="ml",
        pod="train-9",
        container="trainer",
        image=IMAGE,
        error=ke.ERRORS["not-found"][0],
        t0=T0,
        fail_after_seconds=2.0,
    )
    findings = event_findings(
        NODE,
        parsed(objs),
        runtime=containerd("1.7.13"),
        deadline_seconds=None,
        deadline_source="",
        recommended_deadline_seconds=RECOMMENDED,
    )
    assert [f.code for f in findings] == ["D201", "D210"]
    assert {f.node for f in findings} == {NODE}


def test_cri_dockerd_from_a_docker_node_uses_its_own_flag() -> None:
    f = explain(story(after=65.0), RuntimeSpec(RuntimeKind.CRI_DOCKERD))
    assert f.code == "D201" and "1m0s" in f.title
    assert "--image-pull-progress-deadline=15m0s in cri-docker.service's ExecStart" in f.fix


def test_a_retry_in_progress_times_the_first_attempt() -> None:
    objs = story(after=300.0, attempts=2)
    pulling = objs[0]
    retry = datetime(2026, 11, 30, 10, 30, 0, tzinfo=UTC)
    pulling["lastTimestamp"] = ke.stamp(retry)
    pulling["count"] = 3
    failure = pull_failures(parsed(objs))[0]
    assert failure.started_at == T0
    assert failure.failed_at == T0 + timedelta(seconds=300)
    assert failure.elapsed_seconds == 300.0
