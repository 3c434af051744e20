"""The GC executor's collect → plan → execute cycle over the ports, against the in-memory
fakes of mlnode.testing: what GC must never remove, and what a dry run leaves."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mlnode.cli import gc as gc_cli
from mlnode.errors import RuntimeCallFailed
from mlnode.gc import GcPolicy, ImageRecord, ImageState, PolicyName, plan
from mlnode.ops import gc_session
from mlnode.ops.gc_runtime import CriGcRuntime, GcRun, collect, execute
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.pull import gc_free_space
from mlnode.runtime.cri import ContainerState, CriImage
from mlnode.testing import FakeFilesystem, FakeImageService, FakePullStatuses

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=10)
GiB = 2**30
POLICY = GcPolicy(high_threshold_percent=90, low_threshold_percent=80, minimum_age_seconds=60)


@dataclass
class Node:
    """A 100 GiB image filesystem with 2 GiB free and six images of 10 GiB."""

    fs: FakeFilesystem
    cri: FakeImageService
    pulls: FakePullStatuses
    old: CriImage  # unused for a week: the first to go
    cold: CriImage  # unused for a day
    running: CriImage  # a running container uses it
    exited: CriImage  # only an exited container uses it: still in use for GC
    pinned: CriImage
    pulling: CriImage  # its manifest is being downloaded
    sandbox: CriImage  # the runtime's pause image

    def runtime(self) -> CriGcRuntime:
        return CriGcRuntime(self.cri, self.pulls, self.fs.path, measure=self.fs)

    def state_file(self, tmp_path: Path) -> ImageStateFile:
        """Every image first seen long ago; the two unused ones last used a while back."""
        f = ImageStateFile(tmp_path / "state.json")
        used = {self.old.id: NOW - timedelta(days=7), self.cold.id: NOW - timedelta(days=1)}
        images = {i.id: ImageRecord(LONG_AGO, used.get(i.id)) for i in self.cri.images}
        f.save(ImageState(images=images))
        return f

    @property
    def never_removable(self) -> set[str]:
        return {self.running.id, self.exited.id, self.pinned.id, self.pulling.id}


def make_node() -> Node:
    fs = FakeFilesystem(capacity_bytes=100 * GiB, available_bytes=2 * GiB)
    cri = FakeImageService(filesystem=fs, sandbox_image="registry.k8s.io/pause:3.9")
    pulls = FakePullStatuses()
    images = {
        name: cri.add_image(f"registry.example/{name}:1", 10 * GiB, pinned=name == "pinned")
        for name in ("old", "cold", "running", "exited", "pinned", "pulling")
    }
    sandbox = cri.add_image("registry.k8s.io/pause:3.9", 1 * GiB)
    cri.run_container(images["running"])
    cri.run_container(images["exited"], state=ContainerState.EXITED)
    pulls.start_pull(images["pulling"])
    return Node(fs=fs, cri=cri, pulls=pulls, sandbox=sandbox, **images)


def cycle(node: Node, state: ImageStateFile, policy_name: PolicyName, *, dry_run: bool) -> GcRun:
    """What ``mlnode gc`` and a pull's GC run (gc_session.run_gc): the ml policy keeps the
    sandbox image."""
    done = gc_session.run_gc(
        node.runtime(), policy_name, POLICY, now=NOW, state_file=state.path, dry_run=dry_run
    )
    return done.run


def test_collect_sees_what_the_fakes_hold(tmp_path: Path) -> None:
    node = make_node()
    got = collect(node.runtime(), now=NOW, state_file=node.state_file(tmp_path))
    by_id = {i.id: i for i in got.images}
    assert {i for i, g in by_id.items() if g.in_use} == {node.running.id, node.exited.id}
    assert {i for i, g in by_id.items() if g.pinned} == {node.pinned.id}
    assert {i for i, g in by_id.items() if g.being_pulled} == {node.pulling.id}
    assert by_id[node.old.id].last_used == NOW - timedelta(days=7)
    assert by_id[node.running.id].last_used == NOW
    assert got.filesystem.capacity_bytes == 100 * GiB
    assert got.filesystem.available_bytes == 2 * GiB


def test_ml_cycle_removes_only_unprotected_images(tmp_path: Path) -> None:
    node = make_node()
    run = cycle(node, node.state_file(tmp_path), PolicyName.ML, dry_run=False)
    # 98 % used, low 80 %: 18 GiB to free; the old and cold images give 20.
    assert run.plan.bytes_to_free == 18 * GiB
    assert node.cri.removed == [node.old.id, node.cold.id]
    assert not (node.never_removable | {node.sandbox.id}) & set(node.cri.removed)
    assert run.bytes_freed == 20 * GiB and run.satisfied
    assert node.fs.available_bytes == 22 * GiB
    assert run.available_after_bytes == 22 * GiB
    assert any(k.id == node.sandbox.id and "--keep" in k.reason for k in run.plan.kept)


def test_kubelet_cycle_removes_the_never_used_sandbox_image_first(tmp_path: Path) -> None:
    # As the kubelet from 1.29 does on containerd < 1.6.22, which does not pin it.
    node = make_node()
    run = cycle(node, node.state_file(tmp_path), PolicyName.KUBELET, dry_run=False)
    assert node.cri.removed == [node.sandbox.id, node.old.id, node.cold.id]
    assert not node.never_removable & set(node.cri.removed)
    assert run.bytes_freed == 21 * GiB and run.satisfied
    assert node.fs.available_bytes == 23 * GiB


def test_dry_run_removes_nothing_and_writes_no_state(tmp_path: Path) -> None:
    node = make_node()
    state = node.state_file(tmp_path)
    before = state.path.read_text()
    run = cycle(node, state, PolicyName.KUBELET, dry_run=True)
    assert [r.id for r in run.removed] == [node.sandbox.id, node.old.id, node.cold.id]
    assert node.cri.removed == [] and "remove_image" not in node.cri.calls
    assert node.fs.available_bytes == 2 * GiB
    assert state.path.read_text() == before


def test_nothing_is_removable_when_every_image_is_protected(tmp_path: Path) -> None:
    node = make_node()
    node.cri.run_container(node.old)
    node.cri.run_container(node.cold, state=ContainerState.CREATED)
    node.cri.run_container(node.sandbox)
    run = cycle(node, node.state_file(tmp_path), PolicyName.KUBELET, dry_run=False)
    assert node.cri.removed == [] and run.bytes_freed == 0 and not run.satisfied


def test_changes_after_the_plan_are_seen_before_each_removal(tmp_path: Path) -> None:
    node = make_node()
    runtime = node.runtime()
    collected = collect(runtime, now=NOW, state_file=node.state_file(tmp_path))
    the_plan = plan(PolicyName.ML, collected.images, collected.filesystem, POLICY, now=NOW)
    assert [r.id for r in the_plan.removed] == [node.old.id, node.cold.id]
    node.cri.run_container(node.old)  # a pod starts on the old image
    node.pulls.start_pull(node.cold)  # and someone pulls the cold one again
    run = execute(runtime, the_plan, dry_run=False)
    assert node.cri.removed == []
    assert [(o.removal.id, o.outcome, o.detail) for o in run.outcomes] == [
        (node.old.id, "skipped", "in use by a container now"),
        (node.cold.id, "skipped", "being pulled now"),
    ]


def test_a_failed_removal_is_recorded_and_the_rest_continue(tmp_path: Path) -> None:
    node = make_node()
    node.cri.fail_remove[node.old.id] = RuntimeCallFailed("locked", code="INTERNAL")
    run = cycle(node, node.state_file(tmp_path), PolicyName.ML, dry_run=False)
    assert node.cri.removed == [node.cold.id]
    assert run.outcomes[0].outcome == "failed" and "locked" in run.outcomes[0].detail


# --- through the CLI, which adds the sandbox image to the ml policy's keep list ----------


def _invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """mlnode (gc only)."""

    gc_cli.register(app)
    r = CliRunner().invoke(app, ["gc", *args])
    return r.exit_code, r.stdout


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Node:
    node = make_node()
    monkeypatch.setattr(gc_session, "open_runtime", lambda endpoint, image_fs: node.runtime())
    monkeypatch.setattr(gc_session, "clock", lambda: NOW)
    return node


def _cli_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--state-file", str(tmp_path / "state.json"), "-o", "json", *extra]


def test_cli_ml_never_removes_the_sandbox_image(tmp_path: Path, live: Node) -> None:
    live.state_file(tmp_path)
    # Ask for more than the two unused images hold: only the sandbox image is left.
    code, out = _invoke(*_cli_args(tmp_path, "--headroom-bytes", "30GiB"))
    assert code == 1, out
    assert [r["id"] for r in json.loads(out)["removed"]] == [live.old.id, live.cold.id]
    assert live.sandbox.id not in live.cri.removed and live.cri.closed
    assert not live.never_removable & set(live.cri.removed)


def test_cli_ml_keeps_the_sandbox_image_even_when_it_would_reach_the_target(
    tmp_path: Path, live: Node
) -> None:
    live.state_file(tmp_path)
    # 23 GiB headroom, 2 free: old + cold + the 1 GiB sandbox image would give exactly
    # that; without the sandbox image the target is out of reach and nothing is removed.
    code, out = _invoke(
        *_cli_args(tmp_path, "--headroom-bytes", "23GiB", "--high", "100", "--low", "99")
    )
    assert code == 1, out
    assert live.sandbox.id not in live.cri.removed and live.cri.closed


def test_cli_kubelet_policy_may_remove_the_sandbox_image(tmp_path: Path, live: Node) -> None:
    live.state_file(tmp_path)
    code, out = _invoke(*_cli_args(tmp_path, "--policy", "kubelet", "--high", "70", "--low", "60"))
    assert code == 1, out  # 38 GiB wanted, 21 GiB removable
    assert live.cri.removed == [live.sandbox.id, live.old.id, live.cold.id]
    assert not live.never_removable & set(live.cri.removed)


def test_cli_dry_run_removes_nothing(tmp_path: Path, live: Node) -> None:
    state = live.state_file(tmp_path)
    before = state.path.read_text()
    code, out = _invoke(*_cli_args(tmp_path, "--dry-run"))
    assert code == 0, out
    assert [r["id"] for r in json.loads(out)["removed"]] == [live.old.id, live.cold.id]
    assert live.cri.removed == [] and live.fs.available_bytes == 2 * GiB
    assert state.path.read_text() == before


def test_kubelet_cycle_on_capacity_zero_runs_the_age_pass_then_fails(tmp_path: Path) -> None:
    # image_gc_manager.go: the maximum-age pass runs before the capacity check, whose error
    # ("invalid capacity 0 on image filesystem") then ends the cycle unsatisfied.
    node = make_node()
    node.fs.capacity_bytes = 0
    node.fs.available_bytes = 0
    policy = dataclasses.replace(POLICY, maximum_age_seconds=3 * 24 * 3600)
    runtime = node.runtime()
    collected = collect(runtime, now=NOW, state_file=node.state_file(tmp_path))
    the_plan = plan(PolicyName.KUBELET, collected.images, collected.filesystem, policy, now=NOW)
    run = execute(runtime, the_plan, dry_run=False)
    assert node.old.id in node.cri.removed  # unused for 7 days > the 3-day maximum age
    assert node.cold.id not in node.cri.removed
    assert the_plan.error is not None and "invalid capacity 0" in the_plan.error
    assert not run.satisfied


# --- through a pull's GC hook, which runs the same session ------------------------------


def test_pull_gc_hook_never_removes_the_sandbox_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node()
    state = node.state_file(tmp_path)
    monkeypatch.setattr(gc_session, "clock", lambda: NOW)
    events: list[dict[str, object]] = []
    free_space = gc_free_space(
        node.cri,
        node.pulls,
        node.fs.path,
        state_file=state.path,
        emit=events.append,
        measure=node.fs,
    )
    # 15 GiB wanted, 2 free: both unused images must go, while the 1 GiB sandbox image
    # alone would come first by size.
    freed = free_space(15 * GiB, ())
    assert node.cri.removed == [node.old.id, node.cold.id] and freed == 20 * GiB
    assert not (node.never_removable | {node.sandbox.id}) & set(node.cri.removed)
    assert events[-1]["event"] == "gc" and events[-1]["bytes_freed"] == 20 * GiB
    # 23 GiB wanted, now 22 free: the 1 GiB sandbox image alone would do, and stays.
    assert free_space(23 * GiB, ()) == 0 and node.sandbox.id not in node.cri.removed
