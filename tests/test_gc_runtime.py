"""Live gc against an in-memory runtime: collect, re-check, execute, dry run, CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gc_helpers import FakeRuntime, failing, invoke, runtime_images, ts

from mlnode.errors import RuntimeUnavailable
from mlnode.gc import GcPolicy, ImageRecord, ImageState, PolicyName, plan
from mlnode.ops import gc_session
from mlnode.ops.gc_runtime import (
    CriGcRuntime,
    RuntimeImage,
    collect,
    digests_from_ingest_refs,
    execute,
    images_being_pulled,
    images_in_use,
)
from mlnode.ops.image_state import ImageStateFile

NOW = ts("2024-05-01T12:00:00+00:00")
LONG_AGO = NOW - timedelta(days=10)


def seeded_state(tmp_path: Path, **last_used_hours_ago: float) -> ImageStateFile:
    """A state file in which every image was first seen long ago, some used N hours ago."""
    f = ImageStateFile(tmp_path / "state.json")
    f.save(
        ImageState(
            images={
                i: ImageRecord(first_detected=LONG_AGO, last_used=NOW - timedelta(hours=h))
                for i, h in last_used_hours_ago.items()
            }
        )
    )
    return f


def node() -> FakeRuntime:
    # 1000 bytes, 95% used; high 90 / low 80 → 150 bytes to free.
    return FakeRuntime(
        images=runtime_images([("a", 100), ("b", 100), ("c", 100), ("d", 300)], pinned=["d"]),
        capacity_bytes=1000,
        available_bytes=50,
        container_refs={"repo/c:v1"},
    )


POLICY = GcPolicy(high_threshold_percent=90, low_threshold_percent=80, minimum_age_seconds=60)


def test_helpers() -> None:
    imgs = [
        RuntimeImage("sha256:c1", 1, False, ("repo/x:1", "repo/x@sha256:m1")),
        RuntimeImage("sha256:c2", 1, False, ("repo/y:1",)),
    ]
    assert images_in_use(imgs, frozenset({"repo/x:1"})) == {"sha256:c1"}
    assert images_in_use(imgs, frozenset({"sha256:c2"})) == {"sha256:c2"}
    digests = digests_from_ingest_refs(
        ["layer-sha256:l1", "config-sha256:c2", "manifest-sha256:m1", "weird"]
    )
    assert digests == {"sha256:l1", "sha256:c2", "sha256:m1"}
    assert images_being_pulled(imgs, digests) == {"sha256:c1", "sha256:c2"}


def test_collect_records_times_and_flags(tmp_path: Path) -> None:
    rt = node()
    rt.pulling = {"b"}
    state = seeded_state(tmp_path, a=5)
    got = collect(rt, now=NOW, state_file=state)
    by_id = {i.id: i for i in got.images}
    assert by_id["a"].last_used == NOW - timedelta(hours=5)
    assert by_id["a"].first_detected == LONG_AGO
    assert by_id["b"].being_pulled and by_id["b"].first_detected == NOW  # new to the state
    assert by_id["c"].in_use and by_id["c"].last_used == NOW
    assert by_id["d"].pinned
    assert got.filesystem.available_bytes == 50
    assert state.load().images["c"].last_used == NOW  # persisted


def test_collect_without_persisting(tmp_path: Path) -> None:
    state = seeded_state(tmp_path, a=5)
    before = state.path.read_text()
    collect(node(), now=NOW, state_file=state, persist=False)
    assert state.path.read_text() == before


def test_execute_removes_and_frees(tmp_path: Path) -> None:
    rt = node()
    got = collect(rt, now=NOW, state_file=seeded_state(tmp_path, a=5, b=3))
    p = plan(PolicyName.KUBELET, got.images, got.filesystem, POLICY, now=NOW)
    assert [r.id for r in p.removed] == ["a", "b"]
    run = execute(rt, p, dry_run=False)
    assert rt.removed == ["a", "b"]
    assert run.bytes_freed == 200 and run.satisfied
    assert run.available_after_bytes == 250


def test_dry_run_removes_nothing(tmp_path: Path) -> None:
    rt = node()
    got = collect(rt, now=NOW, state_file=seeded_state(tmp_path, a=5, b=3))
    p = plan(PolicyName.KUBELET, got.images, got.filesystem, POLICY, now=NOW)
    run = execute(rt, p, dry_run=True)
    assert rt.removed == [] and "remove_image" not in rt.calls
    assert [r.id for r in run.removed] == ["a", "b"] and run.satisfied
    assert len(rt.images) == 4


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ("use", "in use by a container now"),
        ("pin", "pinned by the runtime now"),
        ("pull", "being pulled now"),
        ("gone", "already gone"),
    ],
)
def test_recheck_before_each_removal(tmp_path: Path, change: str, detail: str) -> None:
    rt = node()
    got = collect(rt, now=NOW, state_file=seeded_state(tmp_path, a=5, b=3))
    p = plan(PolicyName.KUBELET, got.images, got.filesystem, POLICY, now=NOW)
    # After the plan, image "b" changes on the node before its turn comes.
    if change == "use":
        rt.container_refs.add("b")
    elif change == "pin":
        rt.images[1] = RuntimeImage("b", 100, True, ("repo/b:v1",))
    elif change == "pull":
        rt.pulling.add("b")
    else:
        rt.images.pop(1)
    run = execute(rt, p, dry_run=False)
    assert rt.removed == ["a"]
    assert [(o.removal.id, o.outcome, o.detail) for o in run.outcomes] == [
        ("a", "removed", ""),
        ("b", "skipped", detail),
    ]
    assert run.bytes_freed == 100 and not run.satisfied


def test_removal_failure_is_recorded_and_the_rest_continue(tmp_path: Path) -> None:
    rt = node()
    rt.fail_remove["a"] = failing("image is locked")
    got = collect(rt, now=NOW, state_file=seeded_state(tmp_path, a=5, b=3))
    p = plan(PolicyName.KUBELET, got.images, got.filesystem, POLICY, now=NOW)
    run = execute(rt, p, dry_run=False)
    assert rt.removed == ["b"]
    assert run.outcomes[0].outcome == "failed" and "image is locked" in run.outcomes[0].detail
    assert not run.satisfied


def test_runtime_lost_mid_run_raises(tmp_path: Path) -> None:
    rt = node()
    got = collect(rt, now=NOW, state_file=seeded_state(tmp_path, a=5, b=3))
    p = plan(PolicyName.KUBELET, got.images, got.filesystem, POLICY, now=NOW)
    rt.unavailable = True
    with pytest.raises(RuntimeUnavailable):
        execute(rt, p, dry_run=False)


# --- the CLI against the fake ------------------------------------------------------------


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    rt = node()
    monkeypatch.setattr(gc_session, "open_runtime", lambda endpoint, image_fs: rt)
    monkeypatch.setattr(gc_session, "clock", lambda: NOW)
    return rt


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--state-file",
        str(tmp_path / "state.json"),
        "--high",
        "90",
        "--low",
        "80",
        "--minimum-age",
        "1m",
        *extra,
    ]


def test_cli_dry_run_removes_nothing(tmp_path: Path, live: FakeRuntime) -> None:
    seeded_state(tmp_path, a=5, b=3)
    before = (tmp_path / "state.json").read_text()
    r = invoke(*_args(tmp_path, "--policy", "kubelet", "--dry-run", "-o", "json"))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "bytes_to_free": 150,
        "removed": [
            {"id": "a", "size_bytes": 100, "reason": "space"},
            {"id": "b", "size_bytes": 100, "reason": "space"},
        ],
        "bytes_freed": 200,
        "satisfied": True,
    }
    assert live.removed == [] and "remove_image" not in live.calls
    assert (tmp_path / "state.json").read_text() == before


def test_cli_live_removes_and_reports(tmp_path: Path, live: FakeRuntime) -> None:
    seeded_state(tmp_path, a=5, b=3)
    live.fail_remove["b"] = failing("busy")
    r = invoke(*_args(tmp_path, "--policy", "kubelet", "-o", "json"))
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    assert out["removed"] == [{"id": "a", "size_bytes": 100, "reason": "space"}]
    assert out["bytes_freed"] == 100 and out["satisfied"] is False
    assert out["not_removed"][0]["id"] == "b" and "busy" in out["not_removed"][0]["error"]
    assert live.removed == ["a"]
    # the state file was updated: c is in use now
    assert ImageStateFile(tmp_path / "state.json").load().images["c"].last_used == NOW


def test_cli_live_human(tmp_path: Path, live: FakeRuntime) -> None:
    seeded_state(tmp_path, a=5, b=3)
    r = invoke(*_args(tmp_path, "--dry-run"))
    assert r.exit_code == 1  # ml: the pinned 300-byte image sets a headroom out of reach
    assert "headroom 300 B" in r.output and "NOT satisfied" in r.output and live.removed == []
    r = invoke(*_args(tmp_path, "--headroom-bytes", "0"))
    assert r.exit_code == 0, r.output
    assert "Removal" in r.output and "removed" in r.output
    assert "target satisfied" in r.output and "Available now (measured)" in r.output


def test_cli_first_run_protects_everything_by_min_age(tmp_path: Path, live: FakeRuntime) -> None:
    # No state yet: every image is first seen now, so the minimum age keeps them all.
    r = invoke(*_args(tmp_path, "--policy", "kubelet", "-o", "json"))
    assert r.exit_code == 1
    assert json.loads(r.stdout)["removed"] == [] and live.removed == []


def test_cli_runtime_unreachable_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(endpoint: Any, image_fs: Any) -> Any:
        raise RuntimeUnavailable("no socket at /nope.sock", endpoint="unix:///nope.sock")

    monkeypatch.setattr(gc_session, "open_runtime", refuse)
    r = invoke("--state-file", str(tmp_path / "s.json"), "--runtime-endpoint", "/nope.sock")
    assert r.exit_code == 3
    assert r.output == "mlnode: error: unix:///nope.sock: no socket at /nope.sock\n"


def test_cli_real_socket_missing_exit_3(tmp_path: Path) -> None:
    # The real adapter against a socket path that does not exist.
    r = invoke(
        "--state-file",
        str(tmp_path / "s.json"),
        "--runtime-endpoint",
        f"unix://{tmp_path}/none.sock",
    )
    assert r.exit_code == 3, r.output
    assert "none.sock" in r.output


# --- the adapter over mlnode.runtime, with stand-in clients ------------------------------


@dataclass
class _Img:
    id: str
    size_bytes: int
    pinned: bool
    names: tuple[str, ...]


@dataclass
class _Ctr:
    keys: frozenset[str]

    def image_keys(self) -> frozenset[str]:
        return self.keys


@dataclass
class _Ingest:
    ref: str
    expected_digest: str = ""


class _Cri:
    def __init__(self) -> None:
        self.removed: list[str] = []
        self.closed = False

    def list_images(self) -> list[_Img]:
        return [_Img("sha256:a", 5, False, ("r/a:1",))]

    def list_containers(self) -> list[_Ctr]:
        return [_Ctr(frozenset({"r/a:1", "sha256:a"})), _Ctr(frozenset({"r/b:1"}))]

    def remove_image(self, ref: str) -> None:
        self.removed.append(ref)

    def close(self) -> None:
        self.closed = True


class _Containerd:
    closed = False

    def list_statuses(self) -> list[_Ingest]:
        return [_Ingest("layer-sha256:l1"), _Ingest("x", expected_digest="sha256:e1")]

    def close(self) -> None:
        self.closed = True


def test_cri_adapter(tmp_path: Path) -> None:
    cri, ctrd = _Cri(), _Containerd()
    rt = CriGcRuntime(cri, ctrd, tmp_path)  # type: ignore[arg-type]
    assert rt.list_images() == [RuntimeImage("sha256:a", 5, False, ("r/a:1",))]
    assert rt.container_image_refs() == {"r/a:1", "sha256:a", "r/b:1"}
    assert rt.in_flight_pull_digests() == {"sha256:l1", "sha256:e1"}
    rt.remove_image("sha256:a")
    assert cri.removed == ["sha256:a"]
    fsys = rt.image_filesystem()
    assert 0 <= fsys.available_bytes <= fsys.capacity_bytes and fsys.capacity_bytes > 0
    assert CriGcRuntime(cri, None, tmp_path).in_flight_pull_digests() == frozenset()  # type: ignore[arg-type]
    rt.close()
    assert cri.closed and ctrd.closed
