"""``mlnode agent`` on a real small image filesystem: containerd's root (and the hosted
mirror's cache) on a loop-mounted ext4 made by the test (testbed_disk).

- the headroom GC removes a cold image to meet its target and never the warm one, though
  the warm one is the least recently used (what the GC would take first);
- a stream of CRI pulls (one after another, as the kubelet pulls) of images that together
  exceed the disk: with the agent, free space stays above a floor and every pull succeeds;
  without it, the same stream fills the disk and a pull fails for lack of space.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import testbed
import testbed_disk
from testbed_agent import AgentProcess, agent_config, mirror_yaml

from mlnode.errors import MlnodeError
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024


def _available(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class FreeSampler:
    """statvfs free bytes of a mount every ``period_seconds`` (a thread) : ``minimum``."""

    def __init__(self, mount: Path, period_seconds: float = 0.1) -> None:
        self.mount = mount
        self.period_seconds = period_seconds
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="free-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(_available(self.mount))
            self._stop.wait(self.period_seconds)

    def __enter__(self) -> FreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.samples.append(_available(self.mount))

    @property
    def minimum(self) -> int:
        return min(self.samples)


def _iso(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


# --- 3: a warm image is never removed by the headroom GC ------------------------------------


def test_headroom_gc_removes_the_cold_image_never_the_warm_one(
    tmp_path: Path,
    registry: testbed.Registry,
    small_disk: Callable[[int], Path],
    unique_repo: Callable[[str], str],
) -> None:
    """Warm W and cold C (20 MiB each) on a 200 MiB disk; W was last used two hours ago, C
    one hour ago, so the GC's LRU choice would be W. The target is what is free + 10 MiB:
    removing one image meets it. C goes; W stays, pass after pass."""
    mount = small_disk(200)
    warm_image = testbed.build_image([20 * MiB], seed=5300)
    cold_image = testbed.build_image([20 * MiB], seed=5301)
    warm = registry.push(warm_image, unique_repo("warm"), "1")
    cold = registry.push(cold_image, unique_repo("cold"), "1")
    with testbed_disk.containerd_on(mount, tmp_path / "ctr") as ctr, CriClient(ctr.socket) as cri:
        ctr.trust_registry(registry.host)
        cri.pull_image(warm)
        cri.pull_image(cold)
        state_dir = tmp_path / "agent" / "state"
        state_dir.mkdir(parents=True)
        (state_dir / "image-state.json").write_text(
            json.dumps(
                {
                    "version": 1,
                    "largest_image_bytes": 0,
                    "images": {
                        warm_image.image_id: {
                            "first_detected": _iso(7200),
                            "last_used": _iso(7200),
                        },
                        cold_image.image_id: {
                            "first_detected": _iso(3600),
                            "last_used": _iso(3600),
                        },
                    },
                }
            )
        )
        target = _available(mount) + 10 * MiB
        cfg = agent_config(
            tmp_path / "agent",
            runtime_endpoint=ctr.endpoint,
            image_fs=ctr.root,
            warm=[warm],
            headroom={"target_bytes": target},
        )
        with AgentProcess(tmp_path / "agent", cfg) as a:
            doc = a.wait_for(
                "the cold image removed",
                lambda d: d["gc"]["last"] is not None and d["gc"]["last"]["removed"] != [],
            )
            removed = [r["name"] for r in doc["gc"]["last"]["removed"]]
            assert removed == [cold], (removed, a.logs())
            assert doc["gc"]["last"]["satisfied"] is True, doc["gc"]
            assert cri.image_status(cold) is None
            passes = a.metrics()[("mlnode_agent_ticks_total", ())]
            a.wait_for(
                "ten more passes",
                lambda _: a.metrics()[("mlnode_agent_ticks_total", ())] >= passes + 10,
            )
            assert cri.image_status(warm) is not None
            w = a.warm(warm)
            assert w is not None and w["phase"] == "present" and w["pulls_total"] == 0, w
            m = a.metrics()
            assert m[("mlnode_agent_gc_removed_total", (("reason", "space"),))] == 1, m
            assert m[("mlnode_agent_gc_freed_bytes_total", (("reason", "space"),))] > 0
            assert m[("mlnode_agent_image_fs_available_bytes", ())] >= target


# --- 6: a stream of pulls bigger than the disk ----------------------------------------------

STREAM_IMAGES = 6
STREAM_LAYER_BYTES = 40 * MiB
DISK_MIB = 400
RESERVE_BYTES = 16 * MiB
#: free bytes the agent keeps: one image's peak through the mirror (its copy, containerd's
#: copy, the unpacked layer: 3 x 40 MiB) + the reserve
TARGET_BYTES = 3 * STREAM_LAYER_BYTES + RESERVE_BYTES


@dataclass(frozen=True)
class StreamRun:
    pulled: list[str]
    failures: list[tuple[str, str]]
    minimum_free_bytes: int
    samples: int


@pytest.fixture(scope="module")
def stream(registry: testbed.Registry) -> list[str]:
    """Six single-layer images of 40 MiB of random bytes (incompressible): 240 MiB
    compressed, ~480 MiB in containerd (content + snapshot), on a 400 MiB disk."""
    return [
        registry.push(
            testbed.build_image([STREAM_LAYER_BYTES], seed=5400 + i),
            f"mlnode/agent-stream-{i}",
            "1",
        )
        for i in range(STREAM_IMAGES)
    ]


def _pull_stream(cri: CriClient, refs: list[str], mount: Path) -> StreamRun:
    pulled: list[str] = []
    failures: list[tuple[str, str]] = []
    with FreeSampler(mount) as sampler:
        for ref in refs:
            try:
                cri.pull_image(ref, timeout_seconds=120)
                pulled.append(ref)
            except MlnodeError as e:
                failures.append((ref, str(e)))
    return StreamRun(pulled, failures, sampler.minimum, len(sampler.samples))


@contextlib.contextmanager
def _disk_containerd(
    tmp_path: Path, small_disk: Callable[[int], Path], registry: testbed.Registry, name: str
) -> Iterator[tuple[Path, testbed.Containerd]]:
    mount = small_disk(DISK_MIB)
    with testbed_disk.containerd_on(mount, tmp_path / name) as ctr:
        ctr.trust_registry(registry.host)
        yield mount, ctr


@pytest.mark.parametrize("target_bytes", [TARGET_BYTES, 1 * MiB], ids=["headroom", "pull-start"])
def test_with_the_agent_a_stream_bigger_than_the_disk_never_runs_it_out(
    target_bytes: int,
    tmp_path: Path,
    registry: testbed.Registry,
    small_disk: Callable[[int], Path],
    stream: list[str],
) -> None:
    """Pulls through the agent's mirror: before each blob the mirror asks the agent for
    room (its landing bytes + the reserve), and between pulls the agent's passes keep
    TARGET_BYTES free. Free space never drops below the reserve's floor."""
    with _disk_containerd(tmp_path, small_disk, registry, "with") as (mount, ctr):
        config, mirror_url = mirror_yaml(
            tmp_path / "mirror.yaml",
            registry.host,
            registry.url,
            cache_dir=str(mount / "mirror-cache"),
            reap_seconds=0.5,
        )
        cfg = agent_config(
            tmp_path / "agent",
            runtime_endpoint=ctr.endpoint,
            image_fs=ctr.root,
            interval_seconds=0.2,
            headroom={"target_bytes": target_bytes, "reserve_bytes": RESERVE_BYTES},
            mirror_config=config,
        )
        ctr.trust_registry(registry.host, mirror_url=mirror_url)
        with AgentProcess(tmp_path / "agent", cfg) as a, CriClient(ctr.socket) as cri:
            run = _pull_stream(cri, stream, mount)
            logs = a.logs(40000)
            m = a.metrics()
        print(
            f"with the agent: {len(run.pulled)} pulled, {len(run.failures)} failed, minimum "
            f"free {run.minimum_free_bytes / MiB:.1f} MiB over {run.samples} samples"
        )
        assert run.failures == [], (run.failures, logs)
        runs = {k[1]: v for k, v in m.items() if k[0] == "mlnode_agent_gc_runs_total"}
        print("GC runs", runs, "; mirror refusals (no room):", logs.count("no room for"))
        assert run.minimum_free_bytes >= RESERVE_BYTES, (run, logs)
        freed = sum(v for (n, _), v in m.items() if n == "mlnode_agent_gc_freed_bytes_total")
        assert freed > 0, "the agent had to act for the stream to fit"


def test_without_the_agent_the_same_stream_fills_the_disk(
    tmp_path: Path,
    registry: testbed.Registry,
    small_disk: Callable[[int], Path],
    stream: list[str],
) -> None:
    with (
        _disk_containerd(tmp_path, small_disk, registry, "without") as (mount, ctr),
        CriClient(ctr.socket) as cri,
    ):
        run = _pull_stream(cri, stream, mount)
    print(
        f"without the agent: {len(run.pulled)} pulled, {len(run.failures)} failed, minimum "
        f"free {run.minimum_free_bytes / MiB:.1f} MiB over {run.samples} samples"
    )
    assert run.failures, run
    assert any("no space left on" in why for _, why in run.failures), run.failures
    assert run.minimum_free_bytes < RESERVE_BYTES, run
