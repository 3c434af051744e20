"""The real `mlnode agent` process run from examples/agent.yaml (only the node-specific
paths, the port and the warm image changed) on a real containerd 1.6.20 and registry, with
the Kubernetes API served by mlnode.testing.fake_kube_api (the real API's JSON shapes, every
stored object checked against the official 1.37 schema): it serves /metrics, keeps its
headroom target, reads the Node's labels, pulls its warm set and posts valid Events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testbed
from ruamel.yaml import YAML
from testbed_agent import AgentProcess

from mlnode.runtime.cri import CriClient
from mlnode.testing.fake_kube_api import FakeKubeApiServer

pytestmark = pytest.mark.runtime

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.yaml"
NODE = "mlnode-example-node"


@pytest.fixture
def api() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as server:
        server.add_node(NODE, labels={"nvidia.com/gpu.present": "true"})
        yield server


def _example_config(
    tmp_path: Path, containerd: testbed.Containerd, kubeconfig: Path, image: str
) -> dict[str, Any]:
    doc = YAML(typ="safe").load(EXAMPLE.read_text())
    doc.update(
        node_name=NODE,
        node_labels={},  # the Node object's labels decide
        runtime_endpoint=containerd.endpoint,
        image_fs=str(containerd.root),
        state_dir=str(tmp_path / "state"),
        listen=f"127.0.0.1:{testbed.free_port()}",
    )
    # the example's warm image, with its node selector, pointed at the test's registry
    doc["warm"]["images"][0]["image"] = image
    doc["kubernetes"]["kubeconfig"] = str(kubeconfig)
    return dict(doc)


def test_the_example_config_runs_serves_metrics_keeps_headroom_and_pulls_its_warm_set(
    tmp_path: Path,
    api: FakeKubeApiServer,
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
) -> None:
    image = registry.push(
        testbed.build_image([2 * 1024 * 1024], seed=4242), "mlnode/example-warm", "v1"
    )
    with contextlib.suppress(Exception):
        cri.remove_image(image)
    kubeconfig = api.kubeconfig(tmp_path / "kube" / "config", auth="cert")
    agent = AgentProcess(tmp_path, _example_config(tmp_path, containerd, kubeconfig, image))
    try:
        agent.start()
        status = agent.wait_for(
            "the warm image present",
            lambda s: any(w["image"] == image and w["phase"] == "present" for w in s["warm"]),
            timeout_seconds=90,
        )
        assert cri.image_status(image) is not None
        assert status["ready"] and status["labels"]["source"] == "node"
        fs = status["image_fs"]
        target = status["headroom"]["target_bytes"]
        assert target > 0 and status["headroom"]["why"]
        # it keeps the target: free space is at or above it, or it says why it cannot
        last = status["gc"]["last"]
        assert fs["available_bytes"] >= target or (last is not None and not last["satisfied"])
        metrics = agent.metrics()
        assert metrics[("mlnode_agent_headroom_target_bytes", ())] == target
        assert metrics[("mlnode_agent_warm_images", (("phase", "present"),))] == 1
        assert metrics[("mlnode_agent_ready", ())] == 1
        reasons = {e["reason"] for e in api.events("default")}
        assert {"MlnodeAgentStarted", "MlnodeWarmPulled"} <= reasons
        assert all(e["involvedObject"]["name"] == NODE for e in api.events("default"))
        assert any(r.auth == "cert" for r in api.requests)
    finally:
        assert agent.stop() == 0
        with contextlib.suppress(Exception):
            cri.remove_image(image)
