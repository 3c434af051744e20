"""``mlnode gc`` against a real containerd 1.6 with real pods (see conftest.py).

GC runs against a containerd of its own (``gc_containerd``, one per module) so that
removing "everything unused" never touches images other tests pulled into the session
containerd. Every run uses thresholds high 1 % / low 0 % and minimum age 0: GC then
wants to free every byte of the disk, so an image that survives survives only because a
protection rule kept it, and an unprotected image is always removed (the tests can fail).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import testbed
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.gc import ImageRecord, ImageState
from mlnode.ops.image_state import ImageStateFile
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import ContainerState, CriClient

PINNED_LABEL = "io.cri-containerd.pinned"
_seeds = itertools.count(1000)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gc_containerd(
    registry: testbed.Registry,
    runtime_workdir: Path,
    sandbox_image: testbed.PushedImage,
) -> Iterator[testbed.Containerd]:
    ctr = testbed.Containerd(runtime_workdir / "containerd-gc", sandbox_image=sandbox_image.ref)
    ctr.write_config()
    ctr.trust_registry(registry.host)
    try:
        ctr.start()
        yield ctr
    finally:
        if ctr.proc is not None:
            # A sandbox left by a failed test would leave its shim running after containerd.
            with CriClient(ctr.socket) as cri:
                for sandbox in cri.list_pod_sandboxes():
                    cri.stop_pod_sandbox(sandbox.id)
                    cri.remove_pod_sandbox(sandbox.id)
        ctr.stop()


@pytest.fixture
def gcri(gc_containerd: testbed.Containerd) -> Iterator[CriClient]:
    with CriClient(gc_containerd.socket) as client:
        yield client


@pytest.fixture
def gctrd(gc_containerd: testbed.Containerd) -> Iterator[ContainerdClient]:
    with ContainerdClient(gc_containerd.socket, namespace="k8s.io") as client:
        yield client


@pytest.fixture
def gpods(gcri: CriClient) -> Iterator[testbed.Pods]:
    with testbed.Pods(gcri) as pods:
        yield pods


ImageFactory = Callable[..., testbed.PushedImage]


@pytest.fixture
def make_image(
    registry: testbed.Registry, busybox: bytes, unique_repo: Callable[[str], str]
) -> ImageFactory:
    """Build a runnable busybox image with one small data layer of its own and push it."""

    def make(
        suffix: str = "img",
        data_layer_sizes: tuple[int, ...] = (64 * 1024,),
        *,
        seed: int | None = None,
        repo: str | None = None,
        tag: str = "1",
        config_padding_bytes: int = 0,
    ) -> testbed.PushedImage:
        image = testbed.build_busybox_image(
            busybox,
            data_layer_sizes,
            seed=next(_seeds) if seed is None else seed,
            config_padding_bytes=config_padding_bytes,
        )
        ref = registry.push(image, repo or unique_repo(suffix), tag)
        return testbed.PushedImage(ref, image)

    return make


@pytest.fixture
def mirror(
    registry: testbed.Registry, gc_containerd: testbed.Containerd
) -> Iterator[testbed.ThrottleProxy]:
    """The registry behind a shaping proxy, as ``gc_containerd``'s mirror for one test."""
    proxy = testbed.ThrottleProxy("127.0.0.1", registry.port)
    gc_containerd.trust_registry(registry.host, mirror_url=proxy.url)
    try:
        yield proxy
    finally:
        proxy.resume()
        gc_containerd.trust_registry(registry.host)
        proxy.stop()


# --- helpers ---------------------------------------------------------------------------


def run_gc(
    ctr: testbed.Containerd, state: Path, *extra: str, policy: str = "kubelet"
) -> tuple[int, dict[str, Any]]:
    """``mlnode gc --output json`` wanting to free the whole disk; (exit code, document)."""
    r = CliRunner().invoke(app, [*gc_args(ctr, state, policy), "--output", "json", *extra])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def gc_args(ctr: testbed.Containerd, state: Path, policy: str = "kubelet") -> list[str]:
    return [
        "gc",
        "--policy",
        policy,
        "--runtime-endpoint",
        ctr.endpoint,
        "--state-file",
        str(state),
        "--high",
        "1",
        "--low",
        "0",
        "--minimum-age",
        "0",
    ]


def image_ids(cri: CriClient) -> set[str]:
    return {i.id for i in cri.list_images()}


def removed_ids(doc: dict[str, Any]) -> set[str]:
    return {r["id"] for r in doc["removed"]}


def poll(predicate: Callable[[], bool], *, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_seconds}s")
        time.sleep(0.05)


def container_state(cri: CriClient, container_id: str) -> ContainerState:
    return next(c.state for c in cri.list_containers() if c.id == container_id)


class PullInThread:
    """A CRI PullImage running in a thread with its own client (it blocks until done)."""

    def __init__(self, ctr: testbed.Containerd, ref: str) -> None:
        self.result: str | None = None
        self.error: BaseException | None = None
        self._cri = CriClient(ctr.socket)
        self._thread = threading.Thread(target=self._run, args=(ref,), daemon=True)
        self._thread.start()

    def _run(self, ref: str) -> None:
        try:
            self.result = self._cri.pull_image(ref, timeout_seconds=60)
        except BaseException as e:
            self.error = e

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_seconds: float) -> str:
        self._thread.join(timeout_seconds)
        self._cri.close()
        assert not self._thread.is_alive(), "pull did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_for_ingest(ctrd: ContainerdClient, ref: str, pull: PullInThread) -> None:
    def seen() -> bool:
        if not pull.running:
            raise AssertionError(f"pull ended before {ref} showed in ListStatuses: {pull.error}")
        return any(s.ref == ref for s in ctrd.list_statuses())

    poll(seen, timeout_seconds=20, what=f"ingest {ref}")


# --- in use: every container state counts (kubelet: GetPods(all=true)) ------------------


@pytest.mark.runtime
@pytest.mark.parametrize("policy", ["kubelet", "ml"])
def test_gc_keeps_images_of_running_exited_and_created_containers(
    policy: str,
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    gpods: testbed.Pods,
    make_image: ImageFactory,
    tmp_path: Path,
) -> None:
    running, exited, created, unused = (
        make_image(n) for n in ("running", "exited", "created", "unused")
    )
    for img in (running, exited, created, unused):
        assert gcri.pull_image(img.ref) == img.image.image_id
    # By tag, and by id as the kubelet passes it; containerd resolves both to the id.
    pod_running = gpods.run(running.ref)
    pod_exited = gpods.run(exited.image.image_id)
    gcri.stop_container(pod_exited.container_id)
    pod_created = gpods.run(created.image.image_id, start=False)
    assert container_state(gcri, pod_running.container_id) is ContainerState.RUNNING
    assert container_state(gcri, pod_exited.container_id) is ContainerState.EXITED
    assert container_state(gcri, pod_created.container_id) is ContainerState.CREATED

    state = tmp_path / "state.json"
    code, doc = run_gc(gc_containerd, state, policy=policy)

    kept = {running.image.image_id, exited.image.image_id, created.image.image_id}
    assert code == 1  # the whole disk cannot be freed: target not satisfied
    assert unused.image.image_id in removed_ids(doc)
    assert not kept & removed_ids(doc)
    assert doc["not_removed"] == []
    after = image_ids(gcri)
    assert kept <= after
    assert unused.image.image_id not in after
    # The pods were not disturbed.
    assert container_state(gcri, pod_running.container_id) is ContainerState.RUNNING
    assert container_state(gcri, pod_exited.container_id) is ContainerState.EXITED
    assert container_state(gcri, pod_created.container_id) is ContainerState.CREATED

    # The state file has every image listed at the start: in-use ones used now, the
    # removed one seen but never used.
    first = ImageStateFile(state).load().images
    for image_id in kept:
        assert first[image_id].last_used == first[image_id].first_detected
    assert first[unused.image.image_id].last_used is None

    # A second run keeps first_detected (persisted), moves last_used on, and drops the
    # record of the image removed by the first run.
    run_gc(gc_containerd, state, policy=policy)
    second = ImageStateFile(state).load().images
    assert unused.image.image_id not in second
    for image_id in kept:
        assert second[image_id].first_detected == first[image_id].first_detected
        last, before = second[image_id].last_used, first[image_id].last_used
        assert last is not None and before is not None and last >= before


# --- pinned -------------------------------------------------------------------------------


@pytest.mark.runtime
def test_gc_keeps_pinned_image(
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    gctrd: ContainerdClient,
    make_image: ImageFactory,
    tmp_path: Path,
) -> None:
    """containerd marks an image pinned with the label ``io.cri-containerd.pinned=pinned``
    (it puts it on the sandbox image itself from 1.6.22 / 1.7.3) and reports it as CRI
    ``Image.pinned``. A runtime that does not report it cannot be tested here."""
    pinned = make_image("pinned")
    gcri.pull_image(pinned.ref)
    record = gctrd.get_image(pinned.ref)
    gctrd.update_image(pinned.ref, record.target, labels={**record.labels, PINNED_LABEL: "pinned"})

    def reported() -> bool:
        return any(i.pinned for i in gcri.list_images() if i.id == pinned.image.image_id)

    deadline = time.monotonic() + 1  # the CRI plugin applies image events in milliseconds
    while not reported() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not reported():
        pytest.skip(
            f"containerd {gcri.version().runtime_version} does not report CRI Image.pinned "
            f"(an image labelled {PINNED_LABEL}=pinned is listed with pinned=false; the "
            "label and the field arrived in containerd 1.6.22 / 1.7.3). The pinned rule "
            "is covered by tests/test_gc_kubelet.py, test_gc_ml.py and test_gc_runtime.py."
        )
    _, doc = run_gc(gc_containerd, tmp_path / "state.json")
    assert pinned.image.image_id not in removed_ids(doc)
    assert pinned.image.image_id in image_ids(gcri)


# --- in flight ------------------------------------------------------------------------------


@pytest.mark.runtime
def test_gc_keeps_image_whose_blob_is_being_downloaded(
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    gctrd: ContainerdClient,
    make_image: ImageFactory,
    mirror: testbed.ThrottleProxy,
    tmp_path: Path,
) -> None:
    """An image whose config blob (= its id) is being downloaded again is kept.

    containerd downloads only blobs it lacks, so to get a *listed* image's blob in flight
    the test deletes the config blob from the content store (the CRI plugin keeps listing
    the image), has containerd's GC drop the file, and pulls the image again through a
    throttled, then stalled, mirror.
    """
    image = make_image("refetched", config_padding_bytes=128 * 1024)
    control = make_image("control")
    for img in (image, control):
        gcri.pull_image(img.ref)
    gctrd.delete_content(image.image.image_id)
    # That only unlinks it from the namespace: until containerd's GC removes the file, a
    # pull would re-link it without a download. Deleting a lease with sync runs the GC.
    gctrd.delete_lease(gctrd.create_lease().id, sync=True)
    blob = gc_containerd.root / "io.containerd.content.v1.content/blobs/sha256"
    assert not (blob / image.image.image_id.removeprefix("sha256:")).exists()
    assert image.image.image_id in image_ids(gcri)  # the CRI plugin still lists it
    mirror.rate_bytes_per_second = 32 * 1024

    pull = PullInThread(gc_containerd, image.ref)
    try:
        wait_for_ingest(gctrd, f"config-{image.image.image_id}", pull)
        mirror.stall()
        _, doc = run_gc(gc_containerd, tmp_path / "state.json")
        human = CliRunner().invoke(app, [*gc_args(gc_containerd, tmp_path / "s2"), "--dry-run"])
        assert any(s.ref == f"config-{image.image.image_id}" for s in gctrd.list_statuses())
    finally:
        mirror.rate_bytes_per_second = None
        mirror.resume()
        result = pull.join(timeout_seconds=30)

    assert image.image.image_id not in removed_ids(doc)
    assert control.image.image_id in removed_ids(doc)  # GC did run and remove
    assert result == image.image.image_id
    assert image.image.image_id in image_ids(gcri)
    assert gctrd.has_content(image.image.image_id)  # the re-download completed
    assert human.exit_code == 1, human.output
    assert human.stdout.count("being pulled") == 1  # in the "Kept" table


@pytest.mark.runtime
def test_gc_during_pull_of_new_tag_sharing_layers(
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    gctrd: ContainerdClient,
    gpods: testbed.Pods,
    make_image: ImageFactory,
    mirror: testbed.ThrottleProxy,
    unique_repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """GC while ``repo:v2`` downloads, ``repo:v1`` present and sharing two of its layers.

    containerd 1.6 does not download, ingest or lease a layer whose snapshot exists: the
    shared layers are nowhere in flight, and v1 is an unused image like any other, so GC
    removes it. That must not hurt the pull: the unpacker prepared v2's next snapshot on
    top of the shared chain before it started downloading, which keeps the chain. The
    test proves it by running a container from v2 afterwards.
    """
    repo = unique_repo("model")
    seed = next(_seeds)
    v1 = make_image(repo=repo, tag="v1", seed=seed, data_layer_sizes=(200_000, 100_000))
    v2 = make_image(repo=repo, tag="v2", seed=seed, data_layer_sizes=(200_000, 2_000_000))
    shared = {b.digest for b in v1.image.layers} & {b.digest for b in v2.image.layers}
    assert len(shared) == 2  # busybox and the first data layer
    gcri.pull_image(v1.ref)
    new_layer = v2.image.layers[-1].digest

    mirror.rate_bytes_per_second = 256 * 1024
    pull = PullInThread(gc_containerd, v2.ref)
    try:
        wait_for_ingest(gctrd, f"layer-{new_layer}", pull)
        mirror.stall()
        in_flight = {s.ref for s in gctrd.list_statuses()}
        assert not {f"layer-{d}" for d in shared} & in_flight
        _, doc = run_gc(gc_containerd, tmp_path / "state.json")
        assert f"layer-{new_layer}" in {s.ref for s in gctrd.list_statuses()}  # overlapped
    finally:
        mirror.rate_bytes_per_second = None
        mirror.resume()
        result = pull.join(timeout_seconds=30)

    assert v1.image.image_id in removed_ids(doc)
    assert result == v2.image.image_id
    assert v2.image.image_id in image_ids(gcri)
    pod = gpods.run(v2.ref)  # StartContainer execs /bin/sleep from the shared first layer
    assert container_state(gcri, pod.container_id) is ContainerState.RUNNING


# --- dry run --------------------------------------------------------------------------------


@pytest.mark.runtime
def test_dry_run_changes_nothing(
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    gctrd: ContainerdClient,
    gpods: testbed.Pods,
    make_image: ImageFactory,
    tmp_path: Path,
) -> None:
    used, unused = make_image("used"), make_image("unused")
    for img in (used, unused):
        gcri.pull_image(img.ref)
    gpods.run(used.ref)
    state = tmp_path / "state.json"
    t0 = datetime.fromisoformat("2026-01-02T03:04:05+00:00")
    ImageStateFile(state).save(
        ImageState(images={unused.image.image_id: ImageRecord(first_detected=t0)})
    )
    state_before = state.read_bytes()

    def node() -> tuple[list[str], list[tuple[str, int]], list[str]]:
        return (
            sorted(image_ids(gcri)),
            sorted((c.digest, c.size_bytes) for c in gctrd.list_content()),
            sorted(i.name for i in gctrd.list_images()),
        )

    before = node()
    code, doc = run_gc(gc_containerd, state, "--dry-run")
    assert code == 1  # the plan cannot free the whole disk either
    assert unused.image.image_id in removed_ids(doc)  # it would remove: there was work
    assert used.image.image_id not in removed_ids(doc)
    assert set(doc) == {"bytes_to_free", "removed", "bytes_freed", "satisfied"}
    assert node() == before
    assert state.read_bytes() == state_before

    missing = tmp_path / "never-written.json"
    run_gc(gc_containerd, missing, "--dry-run", policy="ml")
    assert not missing.exists()
    assert node() == before


# --- unreachable runtime ----------------------------------------------------------------------


def test_missing_socket_exits_3_naming_it(tmp_path: Path) -> None:
    sock = tmp_path / "containerd.sock"
    r = CliRunner().invoke(app, gc_args_for(sock, tmp_path))
    assert r.exit_code == 3
    assert r.stdout == ""
    assert r.stderr.strip() == (
        f"mlnode: error: unix://{sock}: no socket at {sock} (is the runtime running?)"
    )


def test_stale_socket_exits_3_naming_it(tmp_path: Path) -> None:
    sock = tmp_path / "containerd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(sock))  # a socket file nobody listens on, as after a crash
        r = CliRunner().invoke(app, gc_args_for(sock, tmp_path))
    assert r.exit_code == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(sock) in lines[0]
    assert lines[0].startswith(f"mlnode: error: unix://{sock}: connection refused on {sock}")
    assert not (tmp_path / "state.json").exists()


def gc_args_for(sock: Path, tmp_path: Path) -> list[str]:
    return [
        "gc",
        "--runtime-endpoint",
        f"unix://{sock}",
        "--state-file",
        str(tmp_path / "state.json"),
        "--high",
        "1",
        "--low",
        "0",
    ]


def test_ml_policy_keeps_the_sandbox_image_kubelet_policy_does_not(
    gc_containerd: testbed.Containerd,
    gcri: CriClient,
    sandbox_image: testbed.PushedImage,
    tmp_path: Path,
) -> None:
    """containerd 1.6.20 does not pin the pause image and kubelet >= 1.29 no longer treats
    it as in use, so the kubelet's algorithm removes it; the ml policy keeps the sandbox
    image that the runtime's verbose status names."""
    gcri.pull_image(sandbox_image.ref)
    pause_id = sandbox_image.image.image_id
    assert pause_id in image_ids(gcri)
    _, ml = run_gc(gc_containerd, tmp_path / "ml.json", policy="ml")
    assert pause_id not in removed_ids(ml)
    assert pause_id in image_ids(gcri)
    _, kubelet = run_gc(gc_containerd, tmp_path / "kubelet.json", policy="kubelet")
    assert pause_id in removed_ids(kubelet)
    assert pause_id not in image_ids(gcri)
