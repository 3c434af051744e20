"""``mlnode agent`` as a real process over a real containerd 1.6.20 and docker-registry
(the headroom GC on a real small disk: test_agent_disk.py).

The agent runs against a containerd of its own (``agent_containerd``, one per module): its
headroom GC removes whatever it may, so it must never see the images other tests pulled
into the session's containerd. ``kubernetes: {enabled: false}`` throughout (the API is
tested with a fake server elsewhere). Every wait has a timeout that only turns a hang into
a failure; nothing asserts how long something took.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import testbed
from testbed_agent import AgentProcess, agent_config, mirror_yaml

from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def agent_containerd(
    registry: testbed.Registry, runtime_workdir: Path
) -> Iterator[testbed.Containerd]:
    with testbed.running_containerd(
        runtime_workdir / "containerd-agent", trust=[registry.host]
    ) as ctr:
        yield ctr


@pytest.fixture
def acri(agent_containerd: testbed.Containerd) -> Iterator[CriClient]:
    with CriClient(agent_containerd.socket) as client:
        yield client


@pytest.fixture
def actrd(agent_containerd: testbed.Containerd) -> Iterator[ContainerdClient]:
    with ContainerdClient(agent_containerd.socket, namespace="k8s.io") as client:
        yield client


AgentFactory = Callable[..., AgentProcess]


@pytest.fixture
def start_agent(
    tmp_path: Path, agent_containerd: testbed.Containerd, registry: testbed.Registry
) -> Iterator[AgentFactory]:
    """``start_agent(warm=[...], **agent_config options)`` → a started agent on the module's
    containerd; stopped (and containerd unwired from any mirror) after the test."""
    started: list[AgentProcess] = []

    def start(**options: Any) -> AgentProcess:
        cfg = agent_config(
            tmp_path / "agent",
            runtime_endpoint=agent_containerd.endpoint,
            image_fs=agent_containerd.root,
            **options,
        )
        a = AgentProcess(tmp_path / "agent", cfg).start()
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()
    agent_containerd.trust_registry(registry.host)


@pytest.fixture
def push(registry: testbed.Registry, unique_repo: Callable[[str], str]) -> Callable[..., str]:
    seeds = iter(range(5000, 6000))

    def make(suffix: str, layers: tuple[int, ...] = (1 * MiB,)) -> str:
        return registry.push(
            testbed.build_image(layers, seed=next(seeds)), unique_repo(suffix), "1"
        )

    return make


def _remove(cri: CriClient, *refs: str) -> None:
    for ref in refs:
        with contextlib.suppress(Exception):
            cri.remove_image(ref)


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


def _manifest_gets(registry: testbed.Registry, mark: int, ref: str) -> list[testbed.AccessRecord]:
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    return [r for r in registry.records_since(mark) if f"/v2/{repo}/" in r.path]


# --- 1, 2: the warm set converges; an image removed by hand comes back ----------------------


def test_warm_set_converges_and_an_image_removed_by_hand_is_pulled_again(
    start_agent: AgentFactory,
    acri: CriClient,
    registry: testbed.Registry,
    push: Callable[..., str],
) -> None:
    mine = push("gpu", (2 * MiB, 1 * MiB))
    other = push("cpu")
    mark = registry.mark()
    a = start_agent(
        node_labels={"mlnode.test/gpu": "true"},
        warm=[
            {"image": mine, "node_selector": {"mlnode.test/gpu": "true"}},
            {"image": other, "node_selector": {"mlnode.test/gpu": "false"}},
        ],
    )
    try:
        w = a.wait_phase(mine, "present")
        assert w["pulls_total"] == 1 and w["failures"] == 0, w
        assert acri.image_status(mine) is not None
        doc = a.status()
        assert doc["ready"] is True and doc["schema"] == "mlnode.agent.status/v1"
        assert [x["image"] for x in doc["warm"]] == [mine], doc["warm"]  # not desired here
        m = a.metrics()
        assert _value(m, "mlnode_agent_warm_images", phase="present") == 1
        assert _value(m, "mlnode_agent_warm_images", phase="desired") == 1
        assert _value(m, "mlnode_agent_warm_pulls_total", result="ok") == 1
        assert _value(m, "mlnode_agent_warm_pulls_total", result="failed") in (None, 0)
        durations = [
            (labels, v)
            for (name, labels), v in m.items()
            if name == "mlnode_agent_warm_pull_duration_seconds_count"
        ]
        assert durations == [((("image_size_in_bytes", "0-10MB"),), 1.0)], durations
        assert _value(m, "mlnode_agent_ready") == 1
        assert (_value(m, "mlnode_agent_image_fs_capacity_bytes") or 0) > 0

        # removed by hand (as `crictl rmi` would): the next passes pull it again
        acri.remove_image(mine)
        w = a.wait_for("pulled again", lambda d: any(x["pulls_total"] == 2 for x in d["warm"]))[
            "warm"
        ][0]
        assert w["phase"] == "present", w
        assert acri.image_status(mine) is not None
        assert _value(a.metrics(), "mlnode_agent_warm_pulls_total", result="ok") == 2
        # the other never was: not in the runtime, and the registry never asked for it
        assert acri.image_status(other) is None
        assert _manifest_gets(registry, mark, other) == []
        assert _manifest_gets(registry, mark, mine), "the check above can see requests"
    finally:
        _remove(acri, mine, other)


# --- 4: warm pulls go through the mirror the agent hosts ------------------------------------


def _blob_bytes(registry: testbed.Registry, mark: int, digest: str) -> int:
    return sum(
        r.bytes for r in registry.records_since(mark) if r.method == "GET" and digest in r.path
    )


def _mirror_total(metrics: Metrics, name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


def test_warm_pull_goes_through_the_hosted_mirror(
    tmp_path: Path,
    start_agent: AgentFactory,
    acri: CriClient,
    agent_containerd: testbed.Containerd,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
) -> None:
    image = testbed.build_image([6 * MiB, 2 * MiB], seed=5100)
    ref = registry.push(image, unique_repo("via-mirror"), "1")
    config, mirror_url = mirror_yaml(tmp_path / "mirror.yaml", registry.host, registry.url)
    mark = registry.mark()
    agent_containerd.trust_registry(registry.host, mirror_url=mirror_url)  # before it starts
    a = start_agent(warm=[ref], mirror_config=config)
    try:
        a.wait_phase(ref, "present")
        assert acri.image_status(ref) is not None
        doc = a.status()
        assert doc["mirror"] == {"enabled": True, "url": mirror_url}, doc["mirror"]
        m = a.metrics()
        layers = sum(x.size for x in image.layers)
        assert _mirror_total(m, "mlnode_mirror_upstream_bytes_total") >= layers, m
        assert _mirror_total(m, "mlnode_mirror_served_bytes_total") >= layers, m
        for layer in image.layers:  # each layer fetched once from the registry, by the mirror
            assert _blob_bytes(registry, mark, layer.digest) == layer.size
        assert httpx.get(f"{mirror_url}/healthz", timeout=5).status_code == 200
    finally:
        _remove(acri, ref)


# --- 5: kill -9 mid-pull, restart: the mirror resumes its partial blob ----------------------


def test_agent_killed_mid_warm_pull_restarts_and_resumes(
    tmp_path: Path,
    start_agent: AgentFactory,
    acri: CriClient,
    actrd: ContainerdClient,
    agent_containerd: testbed.Containerd,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
) -> None:
    """The agent (hosting the mirror) is kill -9'd while its warm pull of a big single layer
    is half fetched; started again with the same config and state dir, it pulls the image
    again and the mirror resumes the partial blob it left in its cache.

    containerd 1.6.20 falls through to the registry itself (hosts.toml's ``server``) when a
    mirror dies under a live pull; here the CRI call dies with the same process, and
    containerd cancels the pull and deletes its ingest. Measured (5 runs): nothing fell
    through (the registry forwarder's bytes after the kill: 0), 1.002-1.008 x in all.
    Whatever did fall through would count against the bound here too."""
    image = testbed.build_image([48 * MiB], seed=5200)
    ref = registry.push(image, unique_repo("killed"), "1")
    layer = image.layers[0]
    proxy = registry.proxy(lean=True, rate_bytes_per_second=4 * MiB)
    config, mirror_url = mirror_yaml(
        tmp_path / "mirror.yaml", registry.host, proxy.url, chunk_bytes="4MiB", connections=1
    )
    try:
        mark = registry.mark()
        agent_containerd.trust_registry(registry.host, mirror_url=mirror_url)
        a = start_agent(warm=[ref], mirror_config=config)
        a.wait_phase(ref, "pulling")
        _wait_ingest(actrd, layer.digest, layer.size // 2)
        assert registry.forwarder is not None  # registry.host: containerd's direct path
        direct_before = registry.forwarder.bytes_to_client
        a.kill()
        killed_at = time.monotonic()
        saved = json.loads((a.state_dir / "warm.json").read_text())
        assert [(w["image"], w["phase"]) for w in saved["images"]] == [(ref, "pulling")], saved
        time.sleep(1.0)  # what containerd does on its own once the agent is gone
        after_kill = _blob_bytes(registry, mark, layer.digest)
        ingest = actrd.status(f"layer-{layer.digest}")
        direct = registry.forwarder.bytes_to_client - direct_before
        print(
            f"1 s after the kill: registry served {after_kill / layer.size:.3f} x the layer, "
            f"{direct} bytes of it straight to containerd (fall-through); containerd's "
            f"ingest {ingest.offset_bytes if ingest else None}"
        )
        proxy.cut()
        a.start()
        w = a.wait_phase(ref, "present", timeout_seconds=120)
        print(f"restart to present: {time.monotonic() - killed_at:.1f} s")
        assert acri.image_status(ref) is not None
        assert w["pulls_total"] == 1, w
        served = _blob_bytes(registry, mark, layer.digest)
        print(f"registry served {served / layer.size:.4f} x the layer in all")
        assert served <= 1.02 * layer.size, (served, layer.size)
        assert "warm state: 1 image(s)" in a.logs(20000)
        assert "resuming" in a.logs(20000), a.logs()
    finally:
        proxy.stop()
        _remove(acri, ref)


def _wait_ingest(ctrd: ContainerdClient, digest: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = ctrd.status(f"layer-{digest}")
        if s is not None and s.offset_bytes >= at_least:
            return s.offset_bytes
        time.sleep(0.02)
    raise AssertionError(f"containerd's ingest of {digest} did not reach {at_least}")


# --- 7: SIGHUP reloads (a bad config is kept out); SIGTERM exits 0 ---------------------------


def test_sighup_reloads_the_warm_list_a_bad_config_is_kept_out_and_sigterm_exits_0(
    start_agent: AgentFactory, acri: CriClient, push: Callable[..., str]
) -> None:
    first = push("first")
    second = push("second")
    a = start_agent(warm=[first])
    try:
        a.wait_phase(first, "present")
        assert acri.image_status(second) is None
        good = dict(a.config)
        good["warm"] = {**good["warm"], "images": [first, second]}
        a.write_config(good)
        a.signal(signal.SIGHUP)
        a.wait_phase(second, "present")
        assert acri.image_status(second) is not None

        bad = json.loads(json.dumps(good))
        bad["warm"]["images"] = [first]
        bad["interval_seconds"] = -1  # invalid: the whole file is refused
        a.write_config(bad)
        a.signal(signal.SIGHUP)
        a.wait_for(
            "the config error counted",
            lambda _: (_value(a.metrics(), "mlnode_agent_errors_total", kind="config") or 0) >= 1,
        )
        errors = [r for r in a.log_records() if "reload:" in str(r.get("msg", ""))]
        assert any(
            "interval_seconds" in str(r["msg"]) and "keeping" in str(r["msg"]) for r in errors
        ), errors
        assert a.running()
        assert sorted(w["image"] for w in a.status()["warm"]) == sorted([first, second])

        assert a.proc is not None
        began = time.monotonic()
        a.signal(signal.SIGTERM)
        code = a.proc.wait(timeout=30)  # the agent's bound is 10 s; 30 only ends a hang
        print(f"SIGTERM to exit: {time.monotonic() - began:.2f} s")
        assert code == 0, a.logs()
        assert "agent stopped" in a.logs()
    finally:
        _remove(acri, first, second)
