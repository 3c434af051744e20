"""KubeClient's four calls against FakeKubeApiServer over HTTPS (every object it writes is
checked by the server against the official schema, strict), its Event aggregation, and
its error translation: down -> KubeUnavailable, 5xx/429 -> KubeUnavailable, 403 ->
KubeError with the Status message."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NODE

from mlnode.errors import KubeError, KubeUnavailable, Retryable
from mlnode.kube import AGGREGATE_WINDOW_SECONDS, MESSAGE_LIMIT_CHARS, KubeClient, load_kubeconfig
from mlnode.testing.fake_kube_api import FakeKubeApiServer

EVENTS = "/api/v1/namespaces/default/events"


def test_node_labels(api: FakeKubeApiServer, client: KubeClient) -> None:
    labels = client.node_labels(NODE)
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["kubernetes.io/hostname"] == NODE
    (req,) = api.requests
    assert (req.method, req.path, req.status) == ("GET", f"/api/v1/nodes/{NODE}", 200)


def test_unknown_node_is_a_kube_error_with_the_status_message(client: KubeClient) -> None:
    with pytest.raises(KubeError) as e:
        client.node_labels("no-such-node")
    assert not isinstance(e.value, Retryable)
    assert e.value.status == 404
    assert str(e.value).endswith('nodes "no-such-node" not found (HTTP 404 NotFound)')
    assert e.value.url is not None and e.value.url.endswith("/api/v1/nodes/no-such-node")


def test_post_event_shape(api: FakeKubeApiServer, client: KubeClient) -> None:
    uid = client.node_labels(NODE) and api.node(NODE)["metadata"]["uid"]  # type: ignore[index]
    client.post_event(NODE, reason="MlnodeNoRoom", message="need 12 GB", warning=True)
    (event,) = api.events("default")
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": uid}
    assert event["reason"] == "MlnodeNoRoom" and event["type"] == "Warning"
    assert event["message"] == "need 12 GB"
    assert event["source"] == {"component": "mlnode-agent", "host": NODE}
    assert event["reportingComponent"] == "mlnode-agent"
    assert event["reportingInstance"] == NODE
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]
    name = event["metadata"]["name"]
    prefix, _, stamp = name.rpartition(".")
    assert prefix == NODE and int(stamp, 16) > 0
    post = api.requests[-1]
    assert (post.method, post.path, post.status) == ("POST", EVENTS, 201)


def test_event_without_known_uid_omits_it(api: FakeKubeApiServer, client: KubeClient) -> None:
    client.post_event(NODE, reason="MlnodeAgentStarted", message="agent 0.1.0")
    (event,) = api.events()
    assert "uid" not in event["involvedObject"]
    assert event["type"] == "Normal"


def test_long_message_is_truncated(api: FakeKubeApiServer, client: KubeClient) -> None:
    client.post_event(NODE, reason="MlnodeImageGC", message="x" * 5000)
    (event,) = api.events()
    assert len(event["message"]) == MESSAGE_LIMIT_CHARS
    assert event["message"].endswith("...")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int((1_800_000_000 + self.now) * 1e9)


@pytest.fixture
def clocked(api: FakeKubeApiServer, tmp_path: Path) -> tuple[KubeClient, _Clock]:
    clock = _Clock()
    resolved = load_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    return KubeClient(resolved, monotonic=clock.monotonic, time_ns=clock.time_ns), clock


def test_same_event_again_is_a_patch_count_2(
    api: FakeKubeApiServer, clocked: tuple[KubeClient, _Clock]
) -> None:
    client, clock = clocked
    client.post_event(NODE, reason="MlnodeImageGC", message="removed 2 images, 20 GB")
    clock.now += 60
    client.post_event(NODE, reason="MlnodeImageGC", message="removed 2 images, 20 GB")
    (event,) = api.events()
    assert event["count"] == 2
    assert event["lastTimestamp"] > event["firstTimestamp"]
    post, patch = api.requests
    assert post.method == "POST"
    assert (patch.method, patch.path) == ("PATCH", f"{EVENTS}/{event['metadata']['name']}")
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.body == {"count": 2, "lastTimestamp": event["lastTimestamp"]}
    client.close()


def test_other_message_or_type_or_late_repeat_is_a_new_event(
    api: FakeKubeApiServer, clocked: tuple[KubeClient, _Clock]
) -> None:
    client, clock = clocked
    client.post_event(NODE, reason="MlnodeImageGC", message="a")
    clock.now += 1
    client.post_event(NODE, reason="MlnodeImageGC", message="b")
    clock.now += 1
    client.post_event(NODE, reason="MlnodeImageGC", message="a", warning=True)
    clock.now += AGGREGATE_WINDOW_SECONDS + 1
    client.post_event(NODE, reason="MlnodeImageGC", message="a")
    assert sorted(e["count"] for e in api.events()) == [1, 1, 1, 1]
    assert [r.method for r in api.requests] == ["POST"] * 4
    client.close()


def test_repeat_of_an_event_the_server_dropped_is_a_new_event(
    api: FakeKubeApiServer, clocked: tuple[KubeClient, _Clock]
) -> None:
    client, clock = clocked
    client.post_event(NODE, reason="MlnodeWarmPulled", message="ml/train:v3")
    (first,) = api.events()
    api.delete_event("default", first["metadata"]["name"])  # the server's event TTL
    clock.now += 5
    client.post_event(NODE, reason="MlnodeWarmPulled", message="ml/train:v3")
    clock.now += 5
    client.post_event(NODE, reason="MlnodeWarmPulled", message="ml/train:v3")
    (event,) = api.events()
    assert event["metadata"]["name"] != first["metadata"]["name"]
    assert event["count"] == 2
    assert [(r.method, r.status) for r in api.requests] == [
        ("POST", 201),
        ("PATCH", 404),
        ("POST", 201),
        ("PATCH", 200),
    ]
    client.close()


def test_annotate_node_merge_patch(api: FakeKubeApiServer, client: KubeClient) -> None:
    client.annotate_node(NODE, {"mlnode.io/warm-status": '{"ready": 2}', "other": "x"})
    client.annotate_node(NODE, {"other": None})
    node = api.node(NODE)
    assert node is not None
    annotations = node["metadata"]["annotations"]
    assert annotations["mlnode.io/warm-status"] == '{"ready": 2}'
    assert "other" not in annotations
    assert annotations["node.alpha.kubernetes.io/ttl"] == "0"  # untouched
    patch = api.requests[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"metadata": {"annotations": {"other": None}}}


def test_config_map_data_or_none(api: FakeKubeApiServer, client: KubeClient) -> None:
    images = "- image: registry.example:5000/ml/train:v3\n"
    api.add_config_map("mlnode-system", "mlnode-warm", {"images": images})
    assert client.config_map("mlnode-system", "mlnode-warm") == {"images": images}
    assert client.config_map("mlnode-system", "absent") is None
    assert [r.status for r in api.requests] == [200, 404]


def test_config_map_without_data(api: FakeKubeApiServer, client: KubeClient) -> None:
    api.add_config_map("mlnode-system", "empty", {})
    assert client.config_map("mlnode-system", "empty") == {}


def test_cert_client_makes_every_call(api: FakeKubeApiServer, cert_client: KubeClient) -> None:
    cert_client.node_labels(NODE)
    cert_client.post_event(NODE, reason="MlnodeAgentStarted", message="up")
    cert_client.annotate_node(NODE, {"mlnode.io/warm-status": "{}"})
    cert_client.config_map("mlnode-system", "mlnode-warm")
    assert {r.auth for r in api.requests} == {"cert"}
    assert [r.status for r in api.requests] == [200, 201, 200, 404]


# ── failures ─────────────────────────────────────────────────────────────────────────


def test_api_down_is_kube_unavailable(api: FakeKubeApiServer, client: KubeClient) -> None:
    client.node_labels(NODE)  # a pooled keep-alive connection exists
    api.down()
    for call in (
        lambda: client.node_labels(NODE),
        lambda: client.post_event(NODE, reason="MlnodeAgentStarted", message="up"),
        lambda: client.annotate_node(NODE, {"a": "b"}),
        lambda: client.config_map("mlnode-system", "mlnode-warm"),
    ):
        with pytest.raises(KubeUnavailable) as e:
            call()
        assert isinstance(e.value, Retryable)
        assert "cannot connect" in str(e.value) or "no answer" in str(e.value)
    api.up()
    assert client.node_labels(NODE)["kubernetes.io/hostname"] == NODE


@pytest.mark.parametrize("code", [500, 503, 429])
def test_5xx_and_429_are_kube_unavailable(
    api: FakeKubeApiServer, client: KubeClient, code: int
) -> None:
    api.fail_with(code, times=1)
    with pytest.raises(KubeUnavailable) as e:
        client.config_map("mlnode-system", "mlnode-warm")  # not mistaken for "absent"
    assert e.value.status == code
    assert f"(HTTP {code}" in str(e.value)
    assert client.config_map("mlnode-system", "mlnode-warm") is None  # recovered


def test_403_is_kube_error_with_the_status_message(
    api: FakeKubeApiServer, client: KubeClient
) -> None:
    api.forbid("patch", "nodes")
    with pytest.raises(KubeError) as e:
        client.annotate_node(NODE, {"mlnode.io/warm-status": "{}"})
    assert not isinstance(e.value, KubeUnavailable)
    assert e.value.status == 403
    assert (
        f'nodes "{NODE}" is forbidden: User "system:serviceaccount:mlnode-system:mlnode-agent" '
        f'cannot patch resource "nodes" in API group "" at the cluster scope (HTTP 403 Forbidden)'
    ) in str(e.value)
    assert "\n" not in str(e.value)


def test_forbidden_event_create_is_kube_error(api: FakeKubeApiServer, client: KubeClient) -> None:
    api.forbid("create", "events")
    with pytest.raises(KubeError, match='in the namespace "default"'):
        client.post_event(NODE, reason="MlnodeAgentStarted", message="up")


def test_wrong_token_is_401_kube_error(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig")
    path.write_text(path.read_text().replace(str(api.token), "wrong-token"))
    with KubeClient(load_kubeconfig(path)) as client, pytest.raises(KubeError) as e:
        client.node_labels(NODE)
    assert e.value.status == 401 and not isinstance(e.value, KubeUnavailable)
    assert "Unauthorized" in str(e.value)


def test_untrusted_server_certificate_is_kube_unavailable(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    with FakeKubeApiServer() as other:
        path = api.kubeconfig(tmp_path / "kubeconfig")
        path.write_text(path.read_text().replace(str(api.ca_path), str(other.ca_path)))
        with KubeClient(load_kubeconfig(path)) as client, pytest.raises(KubeUnavailable) as e:
            client.node_labels(NODE)
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
    assert api.requests == []  # refused before any request was sent
