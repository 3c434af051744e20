"""The agent's control loop over an in-memory node: headroom GC ahead of the kubelet, the
warm set, events, metrics, state across restarts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from agent_harness import GiB, Node, drive, warm

from mlnode.agent import WarmPhase, headroom_target
from mlnode.agent._config import HeadroomConfig
from mlnode.errors import ImageNotFound, RuntimeUnavailable

TRAIN = "registry.example:5000/ml/train:v3"
EVAL = "registry.example:5000/ml/eval:v1"
OLD = "registry.example:5000/ml/old:v0"
OLDER = "registry.example:5000/ml/older:v0"


def test_auto_target_is_the_largest_image_landed_times_concurrent_pulls_plus_reserve(
    tmp_path: Path,
) -> None:
    """CRI reports an image's compressed size; a pull lands that plus the unpacked copy."""
    cfg = Node(tmp_path).config(
        headroom=HeadroomConfig(
            concurrent_pulls=2,
            reserve_bytes=GiB,
            unpack_factor=2.0,
            kubelet_high_threshold_percent=100,
        )
    )
    assert headroom_target(cfg, 15 * GiB, 1000 * GiB)[0] == 15 * GiB * 3 * 2 + GiB
    flat = replace(cfg, headroom=replace(cfg.headroom, unpack_factor=0.0))
    assert headroom_target(flat, 15 * GiB, 1000 * GiB)[0] == 31 * GiB
    fixed = replace(
        cfg, headroom=HeadroomConfig(target_bytes=50 * GiB, kubelet_high_threshold_percent=100)
    )
    assert headroom_target(fixed, 15 * GiB, 1000 * GiB) == (50 * GiB, "configured")


def test_the_target_keeps_usage_a_point_under_the_kubelets_high_threshold(tmp_path: Path) -> None:
    """On a 100 GiB disk the kubelet's GC acts at 85 % used: the agent keeps at least 16 %
    free even when the largest image is small, so the kubelet's GC never fires first."""
    cfg = Node(tmp_path).config()
    target, why = headroom_target(cfg, 1 * GiB, 100 * GiB)
    assert target == 16 * GiB
    assert "85 %" in why


def test_below_the_target_gc_removes_cold_images_and_never_a_warm_one(tmp_path: Path) -> None:
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(TRAIN, 20 * GiB)  # warm: oldest, but protected
    node.image(OLD, 20 * GiB)
    node.image(OLDER, 10 * GiB)
    node.image(EVAL, 35 * GiB)  # 15 GiB free now
    agent = node.agent(node.config(warm_images=warm(TRAIN)))
    agent.tick()
    # target: max(35 + 1 GiB reserve, 16 % of 100 GiB) = 36 GiB: 21 GiB to free
    assert node.cri.find(TRAIN) is not None
    removed = [n for n, _, _ in agent.last_gc.removed] if agent.last_gc else []
    assert removed and TRAIN not in removed
    assert node.fs.available_bytes >= 36 * GiB
    assert agent.last_gc is not None and agent.last_gc.satisfied
    assert "MlnodeImageGC" in node.events.reasons()
    assert agent.metrics.gc_runs.labels("interval", "freed")._value.get() == 1


def test_gc_never_removes_an_image_in_use_or_matching_keep(tmp_path: Path) -> None:
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(OLD, 30 * GiB)
    node.image(OLDER, 30 * GiB)
    node.image(EVAL, 30 * GiB)
    used = node.cri.find(OLD)
    assert used is not None
    node.cri.run_container(used)
    agent = node.agent(node.config(gc_keep=("registry.example:5000/ml/older:*",)))
    agent.tick()
    assert node.cri.find(OLD) is not None and node.cri.find(OLDER) is not None
    assert node.cri.find(EVAL) is None  # the only one it may remove


def test_when_nothing_may_go_the_agent_says_no_room(tmp_path: Path) -> None:
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(TRAIN, 90 * GiB)
    agent = node.agent(node.config(warm_images=warm(TRAIN)))
    agent.tick()
    assert node.cri.find(TRAIN) is not None
    assert agent.last_gc is not None and not agent.last_gc.satisfied
    reason, message, warning = node.events.posted[-1]
    assert reason == "MlnodeNoRoom" and warning and "cannot keep" in message


def test_with_room_enough_no_gc_runs(tmp_path: Path) -> None:
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(OLD, 10 * GiB)
    agent = node.agent()
    agent.tick()
    assert agent.gc_runs == 0 and node.cri.removed == []


def test_the_warm_set_converges_for_this_nodes_labels_only(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog.update({TRAIN: 5 * GiB, EVAL: 5 * GiB})
    cfg = node.config(warm_images=warm(TRAIN, gpu="true") + warm(EVAL, gpu="false"))
    agent = node.agent(cfg)
    drive(agent)
    assert node.cri.pulls == [TRAIN]
    (status,) = agent.warm_status()
    assert status["image"] == TRAIN and status["phase"] == "present"
    assert "MlnodeWarmPulled" in node.events.reasons()
    assert agent.metrics.warm_images.labels("present")._value.get() == 1


def test_an_image_removed_by_hand_is_pulled_again(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = 5 * GiB
    agent = node.agent(node.config(warm_images=warm(TRAIN)))
    drive(agent)
    node.cri.remove_image(TRAIN)
    assert agent.tick() == [TRAIN]
    assert agent.warm.statuses[TRAIN].phase is WarmPhase.PULLING


def test_concurrency_caps_the_warm_pulls_started(tmp_path: Path) -> None:
    node = Node(tmp_path)
    refs = [f"registry.example:5000/ml/m{i}:v1" for i in range(5)]
    node.cri.catalog.update(dict.fromkeys(refs, GiB))
    agent = node.agent(node.config(warm_images=warm(*refs), warm_concurrency=2))
    assert agent.tick() == refs[:2]
    assert agent.tick() == []  # two still pulling
    agent.pull_warm(refs[0])
    assert agent.tick() == [refs[2]]


def test_a_failed_warm_pull_backs_off_exponentially_then_retries(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = GiB
    node.cri.fail[TRAIN] = ImageNotFound("PullImage: not found", endpoint="fake")
    cfg = node.config(warm_images=warm(TRAIN), warm_backoff_seconds=10, warm_backoff_max_seconds=25)
    agent = node.agent(cfg)  # rand() = 1.0: the longest jitter, i.e. the base delay
    waits = []
    for _ in range(3):
        assert agent.tick() == [TRAIN]
        agent.pull_warm(TRAIN)
        s = agent.warm.statuses[TRAIN]
        waits.append(s.retry_at_unix - node.now[0])
        assert s.phase is WarmPhase.FAILED and "not found" in s.last_error
        assert agent.tick() == []  # not before the backoff
        node.now[0] += waits[-1]
    assert waits == [10, 20, 25]
    assert node.events.posted[-1][0] == "MlnodeWarmPullFailed" and node.events.posted[-1][2]
    del node.cri.fail[TRAIN]
    assert agent.tick() == [TRAIN]
    agent.pull_warm(TRAIN)
    assert agent.warm.statuses[TRAIN].phase is WarmPhase.PRESENT
    assert agent.warm.statuses[TRAIN].failures == 0


def test_jitter_spreads_the_retries_between_half_and_all_of_the_delay(tmp_path: Path) -> None:
    agent = Node(tmp_path).agent()
    agent.warm._rand = lambda: 0.0
    assert agent.warm.backoff(1) == pytest.approx(agent.cfg.warm_backoff_seconds / 2)
    agent.warm._rand = lambda: 0.999
    assert agent.warm.backoff(1) < agent.cfg.warm_backoff_seconds


def test_warm_state_survives_a_restart_and_a_pull_cut_by_it_starts_again(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog.update({TRAIN: GiB, EVAL: GiB})
    cfg = node.config(warm_images=warm(TRAIN, EVAL), warm_concurrency=2)
    first = node.agent(cfg)
    assert first.tick() == [TRAIN, EVAL]
    first.pull_warm(TRAIN)  # EVAL's pull dies with the agent (kill -9)
    doc = json.loads(cfg.warm_state_file().read_text())
    phases = {i["image"]: i["phase"] for i in doc["images"]}
    assert phases == {TRAIN: "present", EVAL: "pulling"}
    second = node.agent(cfg)
    assert second.warm.statuses[TRAIN].pulls_total == 1
    assert second.warm.statuses[EVAL].phase is WarmPhase.WAITING
    assert second.tick() == [EVAL]  # TRAIN is present: not pulled twice
    assert node.cri.pulls == [TRAIN]


def test_an_unreachable_runtime_makes_the_agent_not_ready_and_it_recovers(tmp_path: Path) -> None:
    node = Node(tmp_path)
    agent = node.agent()
    real = node.cri.list_images

    def down() -> list[object]:
        raise RuntimeUnavailable("/run/containerd/containerd.sock: connection refused")

    node.cri.list_images = down  # type: ignore[method-assign,assignment]
    assert agent.tick() == []
    assert agent.ready_reason is not None and "connection refused" in agent.ready_reason
    assert agent.metrics.errors.labels("runtime")._value.get() == 1
    node.cri.list_images = real  # type: ignore[method-assign]
    agent.tick()
    assert agent.ready_reason is None


def test_the_mirrors_room_request_protects_the_warm_set_and_wakes_the_loop(tmp_path: Path) -> None:
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(TRAIN, 40 * GiB)
    node.image(OLD, 40 * GiB)  # 20 GiB free
    woken = []
    agent = node.agent(node.config(warm_images=warm(TRAIN)))
    agent.wake = lambda: woken.append(1)
    account = agent.ensure_room(30 * GiB, what="blob sha256:ab")
    assert node.cri.find(TRAIN) is not None and node.cri.find(OLD) is None
    assert "GC freed" in account and woken == [1]
    assert agent.last_gc is not None and agent.last_gc.trigger == "pull-start"


def test_with_pin_on_warm_images_are_pinned_once_present_and_unpinned_when_dropped(
    tmp_path: Path,
) -> None:
    node = Node(tmp_path)
    node.cri.catalog.update({TRAIN: GiB, EVAL: GiB})
    calls: list[tuple[str, bool]] = []
    cfg = node.config(warm_images=warm(TRAIN, EVAL), warm_pin=True)
    agent = node.agent(cfg, pin=lambda ref, pinned: calls.append((ref, pinned)))
    drive(agent)
    assert sorted(calls) == [(EVAL, True), (TRAIN, True)]  # once each, however many passes
    agent.reconfigure(replace(cfg, warm_images=warm(TRAIN)))
    agent.tick()
    assert calls[-1] == (EVAL, False)
    off = Node(tmp_path / "off")
    off.cri.catalog[TRAIN] = GiB
    unpinned: list[tuple[str, bool]] = []
    drive(off.agent(off.config(warm_images=warm(TRAIN)), pin=lambda r, p: unpinned.append((r, p))))
    assert unpinned == []  # warm.pin false: the runtime's labels are left alone


def test_the_node_annotation_follows_the_warm_set_only_when_it_changes(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.cri.catalog[TRAIN] = GiB
    sent: list[dict[str, str | None]] = []
    cfg = node.config(warm_images=warm(TRAIN))
    cfg = replace(cfg, kubernetes=replace(cfg.kubernetes, annotate_node=True))
    agent = node.agent(cfg, annotate=sent.append)
    drive(agent, passes=4)
    docs = [json.loads(a["mlnode.io/warm-status"] or "") for a in sent]
    assert [d["counts"]["pulling"] for d in docs] == [1, 0]  # pulling, then present
    assert docs[-1]["counts"]["present"] == 1


def test_every_pass_records_last_use_so_the_lru_order_survives_a_restart(tmp_path: Path) -> None:
    """The kubelet forgets last-used times on restart (kubernetes#119711); the agent
    writes them every pass, so after a restart the image used last is still kept."""
    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(OLD, 40 * GiB)
    node.image(EVAL, 40 * GiB)  # 20 GiB free: short of the 41 GiB target
    cfg = node.config(headroom=HeadroomConfig(target_bytes=1, kubelet_high_threshold_percent=100))
    used = node.cri.find(EVAL)
    assert used is not None
    node.cri.run_container(used)
    node.agent(cfg).tick()  # plenty of room for target 1: no GC, but EVAL's use is recorded
    node.cri.containers.clear()  # the job ended; then the agent restarts
    state = json.loads(cfg.state_file().read_text())
    assert any(rec.get("last_used") for rec in state["images"].values())
    again = node.agent(replace(cfg, headroom=HeadroomConfig(target_bytes=41 * GiB)))
    again.tick()
    assert node.cri.find(EVAL) is not None and node.cri.find(OLD) is None


def test_a_download_in_flight_counts_against_the_headroom_before_it_lands(tmp_path: Path) -> None:
    """The kubelet's own pull (not through the mirror) is seen in containerd's statuses:
    its remaining bytes are made room for at once, not after the disk filled."""
    from mlnode.runtime.containerd import IngestStatus

    node = Node(tmp_path, capacity_bytes=100 * GiB, available_bytes=100 * GiB)
    node.image(OLD, 30 * GiB)
    node.image(EVAL, 30 * GiB)  # 40 GiB free; target 31 GiB: enough while nothing lands
    cfg = node.config(
        headroom=HeadroomConfig(
            reserve_bytes=GiB, unpack_factor=0.0, kubelet_high_threshold_percent=100
        )
    )
    agent = node.agent(cfg)
    agent.tick()
    assert agent.gc_runs == 0
    node.statuses.statuses.append(
        IngestStatus("layer-sha256:" + "a" * 64, 2 * GiB, 20 * GiB, None, None)
    )
    agent.tick()  # 18 GiB still to land: 31 + 18 > 40
    assert agent.last_gc is not None and agent.last_gc.target_bytes == 49 * GiB
    assert node.fs.available_bytes >= 49 * GiB
