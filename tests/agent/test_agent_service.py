"""The agent's asyncio service over an in-memory node: its HTTP endpoints (scraped with
httpx and parsed with prometheus-client's parser), reload, stop, and the Event poster."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from agent_harness import GiB, Node, warm
from prometheus_client.parser import text_string_to_metric_families

from mlnode.agent import STATUS_SCHEMA, AgentService, EventPoster
from mlnode.errors import KubeUnavailable

TRAIN = "registry.example:5000/ml/train:v3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _serve(service: AgentService, check: Any) -> Any:
    """Start the service, wait for its first pass, run ``check(base_url)`` in a thread
    (blocking HTTP), stop it; returns what ``check`` returned."""

    async def main() -> Any:
        await service.start()
        try:
            for _ in range(200):
                if service.last_pass_unix is not None:
                    break
                await asyncio.sleep(0.01)
            return await asyncio.to_thread(check, service.agent.cfg.url)
        finally:
            await service.stop()

    return asyncio.run(main())


def test_endpoints_report_what_the_agent_did(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = 3 * GiB
    cfg = node.config(
        listen=f"127.0.0.1:{_free_port()}", interval_seconds=0.05, warm_images=warm(TRAIN)
    )
    service = AgentService(node.agent(cfg), events=EventPoster("gpu-1", None, lambda: None))

    def check(url: str) -> tuple[Any, ...]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = httpx.get(url + "/mlnode/v1/agent/status").json()
            if status["warm"] and status["warm"][0]["phase"] == "present":
                break
            time.sleep(0.05)
        return (
            httpx.get(url + "/healthz"),
            httpx.get(url + "/readyz"),
            status,
            _metrics(httpx.get(url + "/metrics").text),
        )

    health, ready, status, metrics = _serve(service, check)
    assert health.status_code == 200 and ready.status_code == 200
    assert status["schema"] == STATUS_SCHEMA and status["ready"] is True
    assert status["warm"][0]["image"] == TRAIN and status["warm"][0]["phase"] == "present"
    assert status["image_fs"]["capacity_bytes"] == node.capacity_bytes
    assert metrics[("mlnode_agent_warm_images", (("phase", "present"),))] == 1
    assert metrics[("mlnode_agent_warm_pulls_total", (("result", "ok"),))] == 1
    # one warm pull observed in the kubelet's "1GB-5GB" size label
    key = ("mlnode_agent_warm_pull_duration_seconds_count", (("image_size_in_bytes", "1GB-5GB"),))
    assert metrics[key] == 1
    assert metrics[("mlnode_agent_image_fs_capacity_bytes", ())] == node.capacity_bytes
    assert metrics[("mlnode_agent_headroom_target_bytes", ())] == status["headroom"]["target_bytes"]
    assert metrics[("mlnode_agent_ready", ())] == 1


def test_not_ready_while_the_runtime_does_not_answer(tmp_path: Path) -> None:
    node = Node(tmp_path)

    def down() -> list[object]:
        from mlnode.errors import RuntimeUnavailable

        raise RuntimeUnavailable("containerd.sock: connection refused")

    node.cri.list_images = down  # type: ignore[method-assign,assignment]
    cfg = node.config(listen=f"127.0.0.1:{_free_port()}", interval_seconds=0.05)
    service = AgentService(node.agent(cfg), events=EventPoster("gpu-1", None, lambda: None))
    ready = _serve(service, lambda url: httpx.get(url + "/readyz"))
    assert ready.status_code == 503 and "connection refused" in ready.text


def test_reload_takes_a_new_warm_list_and_keeps_the_old_config_when_the_new_is_bad(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    conf = tmp_path / "agent.yaml"
    conf.write_text("warm:\n  images: []\n")
    cfg = replace(node.config(listen=f"127.0.0.1:{_free_port()}"), source=conf)
    service = AgentService(node.agent(cfg), events=EventPoster("gpu-1", None, lambda: None))
    conf.write_text(f"warm:\n  images: [{TRAIN}]\n  concurrency: 3\n")
    service.reload()
    assert [w.image for w in service.agent.cfg.warm_images] == [TRAIN]
    assert service.agent.warm.concurrency == 3
    conf.write_text("warm:\n  concurrency: lots\n")
    service.reload()
    assert service.agent.cfg.warm_concurrency == 3
    assert service.agent.metrics.errors.labels("config")._value.get() == 1


class _Api:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, str, str, bool]] = []
        self.fail = fail
        self.gate = threading.Event()

    def post_event(
        self, node_name: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        self.gate.wait(5)
        if self.fail:
            raise KubeUnavailable("https://10.0.0.1:6443: connection refused")
        self.events.append((node_name, reason, message, warning))


def test_events_are_posted_off_the_loop_and_an_api_down_only_counts_errors() -> None:
    api = _Api()
    errors: list[int] = []
    poster = EventPoster("gpu-1", api, lambda: errors.append(1))  # type: ignore[arg-type]
    poster("MlnodeImageGC", "freed 20 GiB", False)  # returns at once: the API is blocked
    assert api.events == []
    api.gate.set()
    poster.close()
    assert api.events == [("gpu-1", "MlnodeImageGC", "freed 20 GiB", False)]
    down = _Api(fail=True)
    down.gate.set()
    poster = EventPoster("gpu-1", down, lambda: errors.append(1))  # type: ignore[arg-type]
    poster("MlnodeNoRoom", "short", True)
    poster.close()
    assert errors == [1] and poster.posted == 0
