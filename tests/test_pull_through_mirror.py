"""``mlnode pull`` through the node mirror (MirrorPuller) against the fakes of
mlnode.testing on a virtual clock, and the --via decision (choose_path).

The "world" stands in for containerd pulling through the mirror: each time the puller
reads the mirror's status (once per sample) the next scripted step happens (the mirror
fetches, containerd's ingest grows, blobs commit); the CRI PullImage returns when the
script has run out, or raises CANCELLED when its connection is closed. So every stall
deadline passes on the FakeClock and the order of events is exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mirror_status_server import blob, status

from mlnode.errors import (
    ImageNotFound,
    InsufficientSpace,
    PullStalled,
    RuntimeCallInterrupted,
    UsageError,
)
from mlnode.ops.mirror_status import MirrorStatus, MirrorUnreachable, parse_status
from mlnode.ops.pull import MirrorPuller, PullOptions, PullResult
from mlnode.ops.pull_session import choose_path
from mlnode.registry.manifest import Platform
from mlnode.registry.reference import parse_reference
from mlnode.runtime.cri import RegistryAuth
from mlnode.runtime.fs import FilesystemUsage
from mlnode.testing import FakeClock, FakeContentStore, FakeImage, FakeImageService, FakeRegistry

MiB = 1024 * 1024
GiB = 1024 * MiB
STALL_SECONDS = 10.0
MIRROR = "http://127.0.0.1:6055"
PLATFORM = Platform("linux", "amd64")
Step = Callable[["World"], None]


@dataclass
class World:
    clock: FakeClock
    registry: FakeRegistry
    content: FakeContentStore
    images: FakeImageService
    image: FakeImage
    steps: list[Step] = field(default_factory=list)
    finish: bool = True  # False: PullImage never returns by itself
    mirror_down: bool = False
    mirror_blobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, RegistryAuth | None]] = field(default_factory=list)
    closed: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    returned: threading.Event = field(default_factory=threading.Event)
    reads: int = 0
    error: Exception | None = None

    # the mirror's status, read by the puller once per sample
    def read_status(self, url: str) -> MirrorStatus:
        assert url == MIRROR
        self.reads += 1
        if self.steps:
            self.steps.pop(0)(self)
        elif self.finish:
            self.release.set()
            # the PullImage returns before this sample ends, as if it had while the
            # puller slept: no virtual time passes in between (real threads do not race)
            assert self.returned.wait(10.0)
        if self.mirror_down:
            raise MirrorUnreachable("unreachable: connection refused", url=url + "/status")
        return parse_status(status(*self.mirror_blobs.values()), url=url)

    # the CRI connection PullImage goes on (an ImageService)
    def pull_image(
        self, ref: str, auth: RegistryAuth | None = None, timeout_seconds: float | None = None
    ) -> str:
        self.calls.append((ref, auth))
        try:
            while not self.release.wait(0.005):
                if self.closed:
                    raise RuntimeCallInterrupted("PullImage: cancelled", code="CANCELLED")
            if self.error is not None:
                raise self.error
            return self.images.pull_image(ref)
        finally:
            self.returned.set()

    def close(self) -> None:
        self.closed = True

    # what containerd and the mirror do, one step at a time
    def data(self, digest: str) -> bytes:
        return self.registry.blobs[digest]

    def mirror(self, digest: str, upstream: int, served: int, state: str = "fetching") -> None:
        size = len(self.data(digest))
        self.mirror_blobs[digest] = blob(
            digest, size_bytes=size, upstream_bytes=upstream, served_bytes=served, state=state
        )

    def ingest(self, digest: str, n: int) -> None:
        self.content.put_ingest(
            f"layer-{digest}",
            self.data(digest)[:n],
            total_bytes=len(self.data(digest)),
            expected_digest=digest,
        )

    def commit(self, digest: str) -> None:
        self.content.abort(f"layer-{digest}")
        w = self.content.writer(
            f"layer-{digest}", total_bytes=len(self.data(digest)), expected_digest=digest
        )
        w.write(self.data(digest))
        w.commit()
        w.close()

    def commit_all(self) -> None:
        for d in (self.image.config_digest, *self.image.layer_digests):
            if not self.content.has_content(d):
                self.commit(d)
        raw = self.registry.pull_target(parse_reference(self.image.reference), PLATFORM)
        m = raw.manifest_blob
        w = self.content.writer(
            "manifest-" + m.digest, total_bytes=len(m.raw), expected_digest=m.digest
        )
        w.write(m.raw)
        w.commit()
        w.close()


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    registry = FakeRegistry(clock)
    content = FakeContentStore()
    images = FakeImageService(content, registry)
    layer = bytes(range(256)) * (16 * 1024)  # 4 MiB
    image = registry.push("registry.test/ml/app:1", [layer])
    return World(clock, registry, content, images, image)


def _puller(w: World, events: list[dict[str, Any]], *, available: int = 100 * GiB) -> MirrorPuller:
    return MirrorPuller(
        mirror_url=MIRROR,
        read_status=w.read_status,
        pull_service=w,  # type: ignore[arg-type]  # only pull_image and close are used
        registry=w.registry,
        containerd=w.content,
        cri=w.images,
        filesystem=lambda: FilesystemUsage(Path("/fake"), 200 * GiB, available, 0),
        options=PullOptions(
            platform=PLATFORM, stall_timeout_seconds=STALL_SECONDS, progress_interval_seconds=1.0
        ),
        emit=events.append,
        clock=w.clock,
    )


def _pull(w: World, events: list[dict[str, Any]] | None = None, **kw: Any) -> PullResult:
    return _puller(w, [] if events is None else events, **kw).pull(w.image.reference)


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_a_pull_through_the_mirror_is_one_cri_call_with_both_progresses(world: World) -> None:
    layer = world.image.layer_digests[0]
    world.steps = [
        lambda w: w.mirror(layer, 1 * MiB, 0),
        lambda w: (w.mirror(layer, 2 * MiB, 1 * MiB), w.ingest(layer, 1 * MiB)),
        lambda w: (w.mirror(layer, 4 * MiB, 3 * MiB), w.ingest(layer, 3 * MiB)),
        lambda w: (w.mirror(layer, 4 * MiB, 4 * MiB, "complete"), w.commit_all()),
    ]
    events: list[dict[str, Any]] = []
    result = _pull(world, events)
    assert result.via == "mirror" and result.to_json()["via"] == "mirror"
    assert world.calls == [(world.image.reference, None)]  # one PullImage, anonymous
    assert world.images.find(world.image.reference) is not None
    assert result.image_id == world.image.config_digest
    layer_offsets = [e["offset_bytes"] for e in _of(events, "progress") if e["layer"] == layer]
    assert layer_offsets == sorted(layer_offsets) and layer_offsets[-1] == 4 * MiB
    assert 1 * MiB in layer_offsets or 3 * MiB in layer_offsets  # seen mid-flight
    upstream = [b["upstream_bytes"] for e in _of(events, "mirror") for b in e["blobs"]]
    assert upstream[:2] == [1 * MiB, 2 * MiB] and upstream[-1] == 4 * MiB
    phases = [e["phase"] for e in _of(events, "phase")]
    assert phases[-2:] == ["fetching", "unpacking"]
    assert result.fetched_bytes == 4 * MiB + len(world.data(world.image.config_digest))
    assert _of(events, "done")[0]["via"] == "mirror"


def test_bytes_moving_only_at_the_mirror_are_progress(world: World) -> None:
    """The upstream is slow and containerd waits for contiguous bytes: its ingest does not
    move for longer than the stall timeout, but the mirror's upstream bytes do."""
    layer = world.image.layer_digests[0]
    ticks = int(3 * STALL_SECONDS)  # 3 x the stall timeout, one tick a second
    world.steps = [lambda w, i=i: w.mirror(layer, (i + 1) * 1000, 0) for i in range(ticks)]
    world.steps.append(lambda w: w.commit_all())
    result = _pull(world)
    assert result.via == "mirror" and not world.closed


def test_no_byte_progress_anywhere_cancels_the_cri_call(world: World) -> None:
    layer = world.image.layer_digests[0]
    world.finish = False
    world.steps = [lambda w: (w.mirror(layer, MiB, MiB), w.ingest(layer, MiB))]
    start = world.clock.monotonic()
    with pytest.raises(PullStalled) as err:
        _pull(world)
    assert world.closed, "the PullImage connection was closed (the call cancelled)"
    message = str(err.value)
    assert "no byte progress at the mirror or containerd for 10s" in message
    assert f"layer {layer}: 1.0 MiB of 4.0 MiB in containerd, 1.0 MiB at the mirror" in message
    assert err.value.exit_code == 6 and "\n" not in message
    assert not world.content.leases, "a failed pull through the mirror leaves no lease"
    # the deadline counts from the last move (the first sample), not from the start
    assert STALL_SECONDS <= world.clock.monotonic() - start <= STALL_SECONDS + 2


def test_the_unpack_has_no_deadline(world: World) -> None:
    """Every blob is committed, then containerd unpacks for longer than the stall timeout."""
    world.steps = [lambda w: w.commit_all()] + [lambda w: None] * int(3 * STALL_SECONDS)
    result = _pull(world)
    assert not world.closed
    assert result.unpack_seconds >= 3 * STALL_SECONDS


def test_a_mirror_gone_mid_pull_leaves_containerds_progress(world: World) -> None:
    layer = world.image.layer_digests[0]

    def down(w: World) -> None:
        w.mirror_down = True
        w.ingest(layer, 2 * MiB)

    world.steps = [lambda w: w.mirror(layer, MiB, 0), down, lambda w: w.commit_all()]
    events: list[dict[str, Any]] = []
    result = _pull(world, events)
    assert result.via == "mirror"
    mirror = _of(events, "mirror")
    assert mirror[0]["reachable"] and not mirror[-1]["reachable"]
    assert "unreachable" in mirror[-1]["error"]
    offsets = [e["offset_bytes"] for e in _of(events, "progress") if e["layer"] == layer]
    assert 2 * MiB in offsets


def test_a_cri_failure_is_the_pulls_failure(world: World) -> None:
    world.error = ImageNotFound("PullImage: not found", endpoint="fake://containerd")
    with pytest.raises(ImageNotFound, match="PullImage: not found"):
        _pull(world)
    assert not world.content.leases


def test_the_space_check_comes_first(world: World) -> None:
    events: list[dict[str, Any]] = []
    with pytest.raises(InsufficientSpace):
        _pull(world, events, available=1 * MiB)
    assert world.calls == [] and world.reads == 0
    assert _of(events, "space")[0]["fits"] is False


def test_an_image_already_there_is_not_pulled_again(world: World) -> None:
    world.steps = [lambda w: w.commit_all()]
    _pull(world)
    again = _pull(world)
    assert again.already_present and again.via == "mirror"
    assert len(world.calls) == 1


# -- --via ------------------------------------------------------------------------------


def _wire(root: Path, registry: str, first: str) -> None:
    (root / registry).mkdir(parents=True)
    (root / registry / "hosts.toml").write_text(
        f'server = "https://{registry}"\n\n[host."{first}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def _answers(url: str) -> MirrorStatus:
    if url != MIRROR:
        raise MirrorUnreachable("refused", url=url)
    return parse_status(status(), url=url)


def test_via_auto_takes_the_mirror_only_where_wired(tmp_path: Path) -> None:
    _wire(tmp_path, "nvcr.io", MIRROR)
    _wire(tmp_path, "quay.io", "http://127.0.0.1:1")  # wired to a mirror that is down
    assert choose_path("auto", "nvcr.io", tmp_path, read=_answers)[0] == MIRROR
    url, why = choose_path("auto", "quay.io", tmp_path, read=_answers)
    assert url is None and why.startswith("not wired: ") and "refused" in why
    assert choose_path("auto", "ghcr.io", tmp_path, read=_answers)[0] is None
    assert choose_path("auto", "nvcr.io", None, read=_answers)[0] is None


def test_via_engine_never_asks_the_mirror(tmp_path: Path) -> None:
    _wire(tmp_path, "nvcr.io", MIRROR)

    def never(url: str) -> MirrorStatus:
        raise AssertionError("asked the mirror")

    assert choose_path("engine", "nvcr.io", tmp_path, read=never) == (None, "--via engine")


def test_via_mirror_on_a_node_not_wired_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--via: the node is not wired to a mirror: ") as err:
        choose_path("mirror", "ghcr.io", tmp_path, read=_answers)
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="--via: must be one of auto, mirror, engine"):
        choose_path("sideways", "ghcr.io", tmp_path, read=_answers)
