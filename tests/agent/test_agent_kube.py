"""The agent with the real Kubernetes client (mlnode.kube.KubeClient) against a local
HTTPS API server that answers with the real API's JSON shapes and rejects any object that
fails the official schema (mlnode.testing.fake_kube_api): Node labels choose the warm set,
a ConfigMap adds to it, Events and the annotation land as valid objects, and with the API
down the agent carries on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from agent_harness import GiB, Node, drive, warm

from mlnode.agent import EventPoster
from mlnode.kube import KubeClient, connect
from mlnode.testing.fake_kube_api import FakeKubeApiServer

TRAIN = "registry.example:5000/ml/train:v3"
CM_IMAGE = "registry.example:5000/ml/from-configmap:v1"


@pytest.fixture
def api() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as server:
        server.add_node("gpu-1", labels={"nvidia.com/gpu.present": "true"})
        yield server


@pytest.fixture(params=["token", "cert"])
def client(
    api: FakeKubeApiServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[KubeClient]:
    c = connect(kubeconfig=api.kubeconfig(tmp_path / "kube" / "config", auth=request.param))
    assert c is not None
    with c:
        yield c


def test_node_labels_and_a_configmap_choose_the_warm_set_and_events_land(
    api: FakeKubeApiServer, client: KubeClient, tmp_path: Path
) -> None:
    api.add_config_map("mlnode-system", "mlnode-warm", {"images": f"- image: {CM_IMAGE}\n"})
    node = Node(tmp_path)
    node.cri.catalog.update({TRAIN: GiB, CM_IMAGE: GiB})
    cfg = node.config(
        node_labels={"nvidia.com/gpu.present": "false"},  # the Node's own labels win
        warm_images=warm(TRAIN, **{"nvidia.com/gpu.present": "true"}),
        warm_config_map=("mlnode-system", "mlnode-warm"),
    )
    poster = EventPoster("gpu-1", client, lambda: None)
    agent = node.agent(cfg, cluster=client)
    agent.events = poster
    drive(agent)
    poster.close(5)
    assert sorted(node.cri.pulls) == sorted([TRAIN, CM_IMAGE])
    assert agent.labels_source == "node"
    events = api.events("default")
    pulled = [e for e in events if e["reason"] == "MlnodeWarmPulled"]
    assert len(pulled) == 2  # both stored: each passed the strict 1.37 schema
    assert all(
        e["involvedObject"] == {**e["involvedObject"], "kind": "Node", "name": "gpu-1"}
        for e in pulled
    )
    assert all(e["source"]["component"] == "mlnode-agent" for e in pulled)


def test_the_warm_status_annotation_lands_on_the_node(
    api: FakeKubeApiServer, client: KubeClient, tmp_path: Path
) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = GiB
    cfg = node.config(warm_images=warm(TRAIN))
    cfg = replace(cfg, kubernetes=replace(cfg.kubernetes, annotate_node=True))
    poster = EventPoster("gpu-1", client, lambda: None)
    drive(node.agent(cfg, cluster=client, annotate=poster.annotate), passes=3)
    poster.close(5)
    found = api.node("gpu-1")
    assert found is not None
    doc = json.loads(found["metadata"]["annotations"]["mlnode.io/warm-status"])
    assert doc["counts"]["present"] == 1


def test_with_the_api_down_the_agent_carries_on(
    api: FakeKubeApiServer, client: KubeClient, tmp_path: Path
) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = GiB
    errors: list[int] = []
    poster = EventPoster("gpu-1", client, lambda: errors.append(1))
    cfg = node.config(warm_images=warm(TRAIN), node_labels={"nvidia.com/gpu.present": "true"})
    agent = node.agent(cfg, cluster=client)
    agent.events = poster
    api.down()
    drive(agent)
    poster.close(15)
    assert node.cri.pulls == [TRAIN]  # labels from the config, the pull went ahead
    assert agent.ready_reason is None and agent.kube_error is not None
    assert agent.metrics.errors.labels("kube")._value.get() >= 1
    assert errors  # the Event could not be posted: counted, not raised
    api.up()
    agent._labels_at = -1e18  # the next minute's refresh, now
    agent.tick()
    assert agent.kube_error is None and agent.labels_source == "node"
