"""One script, two implementations of ports.ClusterApi: KubeClient against
FakeKubeApiServer over HTTPS, and the in-memory FakeClusterApi the agent's unit tests use.
Every step must give the same answer (or the same error class and status) on both, so a
test that passes against the fake says something about the real client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import NODE

from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube import AGGREGATE_WINDOW_SECONDS, KubeClient, load_kubeconfig
from mlnode.ports import ClusterApi
from mlnode.testing import FakeClusterApi
from mlnode.testing.fake_kube_api import FakeKubeApiServer

LABELS = {"nvidia.com/gpu.present": "true", "kubernetes.io/hostname": NODE}
WARM = {"images": "- image: registry.example:5000/ml/train:v3\n"}


class _Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def monotonic(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int((1_800_000_000 + self.now) * 1e9)


@dataclass
class World:
    """A ClusterApi and the means to look behind it and to break it."""

    api: ClusterApi
    clock: _Clock
    events: Callable[[], list[dict[str, Any]]]
    annotations: Callable[[], dict[str, str]]
    go_down: Callable[[], None]
    forbid_annotate: Callable[[], None]


def _real(tmp_path: Path) -> Iterator[World]:
    clock = _Clock()
    with FakeKubeApiServer() as server:
        server.add_node(NODE, labels=LABELS)
        server.add_config_map("mlnode-system", "mlnode-warm", WARM)
        resolved = load_kubeconfig(server.kubeconfig(tmp_path / "kubeconfig"))
        client = KubeClient(resolved, monotonic=clock.monotonic, time_ns=clock.time_ns)

        def annotations() -> dict[str, str]:
            node = server.node(NODE)
            assert node is not None
            return dict(node["metadata"].get("annotations") or {})

        yield World(
            client,
            clock,
            server.events,
            annotations,
            server.down,
            lambda: server.forbid("patch", "nodes"),
        )
        client.close()


def _fake(tmp_path: Path) -> Iterator[World]:
    clock = _Clock()
    fake = FakeClusterApi(monotonic=clock.monotonic, time_ns=clock.time_ns)
    fake.add_node(NODE, LABELS)
    fake.add_config_map("mlnode-system", "mlnode-warm", WARM)

    def down() -> None:
        fake.unavailable = True

    yield World(
        fake,
        clock,
        fake.events,
        lambda: dict(fake.annotations[NODE]),
        down,
        lambda: fake.refuse("annotate_node", 403),
    )
    fake.close()


@pytest.fixture(params=["KubeClient+FakeKubeApiServer", "FakeClusterApi"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    make = _real if request.param.startswith("KubeClient") else _fake
    yield from make(tmp_path)


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return sorted((e["reason"], e["message"], e["type"], e["count"]) for e in events)


def _error(call: Callable[[], object]) -> tuple[type[BaseException], int | None]:
    with pytest.raises(KubeError) as e:
        call()
    return type(e.value), e.value.status


def test_the_same_script_gives_the_same_answers(world: World) -> None:
    api, clock = world.api, world.clock
    labels = api.node_labels(NODE)
    assert {k: labels[k] for k in LABELS} == LABELS
    assert _error(lambda: api.node_labels("absent")) == (KubeError, 404)

    for _ in range(3):
        api.post_event(NODE, reason="MlnodeImageGC", message="removed 1 image")
        clock.now += 30
    api.post_event(NODE, reason="MlnodeImageGC", message="removed 2 images")
    api.post_event(NODE, reason="MlnodeNoRoom", message="need 5 GB", warning=True)
    clock.now += AGGREGATE_WINDOW_SECONDS + 1
    api.post_event(NODE, reason="MlnodeImageGC", message="removed 1 image")
    assert _summary(world.events()) == [
        ("MlnodeImageGC", "removed 1 image", "Normal", 1),
        ("MlnodeImageGC", "removed 1 image", "Normal", 3),
        ("MlnodeImageGC", "removed 2 images", "Normal", 1),
        ("MlnodeNoRoom", "need 5 GB", "Warning", 1),
    ]
    assert {e["metadata"]["namespace"] for e in world.events()} == {"default"}
    assert {e["source"]["component"] for e in world.events()} == {"mlnode-agent"}

    api.annotate_node(NODE, {"mlnode.io/warm-status": '{"ready": 1}', "mlnode.io/x": "1"})
    api.annotate_node(NODE, {"mlnode.io/x": None})
    mine = {k: v for k, v in world.annotations().items() if k.startswith("mlnode.io/")}
    assert mine == {"mlnode.io/warm-status": '{"ready": 1}'}
    assert _error(lambda: api.annotate_node("absent", {"a": "b"})) == (KubeError, 404)

    assert api.config_map("mlnode-system", "mlnode-warm") == WARM
    assert api.config_map("mlnode-system", "absent") is None

    world.forbid_annotate()
    assert _error(lambda: api.annotate_node(NODE, {"a": "b"})) == (KubeError, 403)

    world.go_down()
    for call in (
        lambda: api.node_labels(NODE),
        lambda: api.post_event(NODE, reason="MlnodeAgentStarted", message="up"),
        lambda: api.annotate_node(NODE, {"a": "b"}),
        lambda: api.config_map("mlnode-system", "mlnode-warm"),
    ):
        assert _error(call) == (KubeUnavailable, None)
