"""The pull state machine against the fakes of mlnode.testing, on a virtual clock.

Stalls, cut connections, corrupt bytes, HTTP errors and containerd restarts are
injected at exact byte offsets; backoff and stall deadlines pass on the FakeClock, so
the whole file runs in well under a second (``pytest --durations=0``). The same paths
against a real containerd and registry: tests/runtime/test_pull.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlnode.errors import (
    DigestMismatch,
    PullStalled,
    RegistryError,
    RuntimePermissionDenied,
    RuntimeUnavailable,
)
from mlnode.ops.pull import Puller, PullOptions, PullResult, ingest_ref, lease_id_for
from mlnode.registry.manifest import Platform
from mlnode.runtime.errors import IngestLocked
from mlnode.runtime.fs import FilesystemUsage
from mlnode.testing import (
    BlobRequest,
    FakeClock,
    FakeContentStore,
    FakeImage,
    FakeImageService,
    FakeRegistry,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
STALL_SECONDS = 2.0
ENDPOINT = "fake://containerd"


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@dataclass
class Rig:
    clock: FakeClock
    registry: FakeRegistry
    content: FakeContentStore
    images: FakeImageService
    events: list[dict[str, Any]] = field(default_factory=list)
    on_event: Callable[[dict[str, Any]], None] | None = None

    def _emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def puller(self, **options: Any) -> Puller:
        options.setdefault("stall_timeout_seconds", STALL_SECONDS)
        return Puller(
            registry=self.registry,
            containerd=self.content,
            cri=self.images,
            filesystem=lambda: FilesystemUsage(Path("/fake"), 100 * GiB, 100 * GiB, 0),
            options=PullOptions(platform=Platform("linux", "amd64"), **options),
            emit=self._emit,
            clock=self.clock,
        )

    def pull(self, image: FakeImage, **options: Any) -> PullResult:
        return self.puller(**options).pull(image.reference)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def registered(self, image: FakeImage) -> bool:
        found = self.images.image_status(image.reference)
        return found is not None and found.id == image.config_digest


@pytest.fixture
def rig() -> Rig:
    clock = FakeClock()
    registry = FakeRegistry(clock, read_timeout_seconds=STALL_SECONDS)
    content = FakeContentStore()
    return Rig(clock, registry, content, FakeImageService(content, registry))


def _push(rig: Rig, size: int = MiB, seed: int = 1) -> tuple[FakeImage, str]:
    image = rig.registry.push("registry.test/ml/app:1", [_bytes(size, seed)])
    return image, image.layer_digests[0]


def test_a_clean_pull_fetches_each_byte_once_and_registers(rig: Rig) -> None:
    image, layer = _push(rig)
    result = rig.pull(image)
    assert rig.registered(image)
    assert result.fetched_bytes == image.blobs_size_bytes
    assert result.retries == 0 and rig.clock.sleeps == []
    assert rig.images.pulls == [image.reference]
    assert lease_id_for(image.manifest_digest) not in rig.content.leases, "lease dropped"
    assert rig.content.blob_labels[image.manifest_digest] == {
        "containerd.io/gc.ref.content.config": image.config_digest,
        "containerd.io/gc.ref.content.l.0": layer,
    }


def test_an_image_already_there_is_not_fetched(rig: Rig) -> None:
    image, _ = _push(rig)
    rig.pull(image)
    served = dict(rig.registry.served_bytes)
    again = rig.pull(image)
    assert again.already_present and again.fetched_bytes == 0
    assert rig.registry.served_bytes == served


# -- stall deadline -------------------------------------------------------------------


def test_a_stall_past_the_deadline_retries_from_the_committed_offset(rig: Rig) -> None:
    image, layer = _push(rig)
    ref = ingest_ref("layer", layer)
    rig.registry.stall(layer, at_byte=300_000, seconds=STALL_SECONDS * 1.5)
    committed_at_retry: list[int | None] = []

    def on_event(e: dict[str, Any]) -> None:
        if e["event"] == "retry":
            status = rig.content.status(ref)
            committed_at_retry.append(status.offset_bytes if status else None)

    rig.on_event = on_event
    result = rig.pull(image)

    [retry] = rig.of("retry")
    assert retry["reason"] == "stall" and retry["layer"] == layer
    assert retry["offset_bytes"] == 300_000 and committed_at_retry == [300_000]
    assert retry["silent_seconds"] == STALL_SECONDS and retry["backoff_seconds"] == 0.5
    assert rig.clock.sleeps == [0.5], "the backoff went through the clock"
    assert rig.registry.requests_for(layer) == [
        BlobRequest(layer, 0, None),
        BlobRequest(layer, 300_000, None),
    ]
    assert rig.registry.served_bytes[layer] == MiB, "nothing fetched twice"
    assert result.fetched_bytes == image.blobs_size_bytes and result.retries == 1
    assert rig.registered(image)


def test_stalls_past_the_retries_raise_pull_stalled_and_a_rerun_resumes(rig: Rig) -> None:
    image, layer = _push(rig)
    ref = ingest_ref("layer", layer)
    rig.registry.stall(layer, at_byte=300_000)  # for ever
    with pytest.raises(PullStalled) as e:
        rig.pull(image, retries=2, backoff_base_seconds=1.0)
    message = str(e.value)
    # silence: 2 s stall, 1 s backoff, 2 s stall, 2 s backoff, 2 s stall
    assert message.startswith("no new byte for 9s on layer " + layer)
    assert f"at offset 300000 of {MiB}" in message
    assert "(--stall-timeout 2s, 2 retries)" in message
    assert rig.clock.sleeps == [1.0, 2.0]
    retries = rig.of("retry")
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["silent_seconds"] for r in retries] == [2.0, 5.0]
    left = rig.content.status(ref)
    assert left is not None and left.offset_bytes == 300_000, "partial data kept"
    assert lease_id_for(image.manifest_digest) in rig.content.leases
    assert rig.images.pulls == [] and not rig.registered(image)

    rig.registry.clear_faults()
    before = rig.registry.served_bytes[layer]
    rig.events.clear()
    rig.pull(image)
    blobs = {b["digest"]: b for b in rig.of("resolved")[0]["blobs"]}
    assert blobs[layer]["offset_bytes"] == 300_000
    assert rig.registry.requests_for(layer)[-1] == BlobRequest(layer, 300_000, None)
    assert rig.registry.served_bytes[layer] - before == MiB - 300_000
    assert rig.registered(image)


# -- dropped connections and HTTP errors ----------------------------------------------


def test_a_cut_connection_resumes_where_it_was_cut(rig: Rig) -> None:
    image, layer = _push(rig)
    rig.registry.cut(layer, at_byte=500_000, times=2)
    result = rig.pull(image)
    assert [r["reason"] for r in rig.of("retry")] == ["dropped", "dropped"]
    assert [r.start for r in rig.registry.requests_for(layer)] == [0, 500_000, 500_000]
    assert rig.clock.sleeps == [0.5, 1.0]
    assert rig.registry.served_bytes[layer] == MiB
    assert result.retries == 2 and rig.registered(image)


def test_cuts_past_the_retries_are_a_registry_error(rig: Rig) -> None:
    image, layer = _push(rig)
    rig.registry.cut(layer, at_byte=500_000, times=10)
    with pytest.raises(RegistryError) as e:
        rig.pull(image, retries=1)
    assert type(e.value) is RegistryError
    assert f"dropped on layer {layer} at offset 500000 of {MiB} after 1 retries" in str(e.value)
    assert "RemoteProtocolError" in str(e.value)


def test_server_errors_are_retried_and_a_404_is_not(rig: Rig) -> None:
    image, layer = _push(rig)
    rig.registry.fail(layer, status=503, times=2)
    rig.pull(image)
    assert [r["reason"] for r in rig.of("retry")] == ["error", "error"]
    assert rig.registered(image)

    other = rig.registry.push("registry.test/ml/other:1", [_bytes(MiB, 2)])
    rig.registry.fail(other.layer_digests[0], status=404)
    sleeps = len(rig.clock.sleeps)
    with pytest.raises(RegistryError) as e:
        rig.pull(other)
    assert e.value.status == 404 and len(rig.clock.sleeps) == sleeps, "no retry for a 404"


# -- corrupt bytes --------------------------------------------------------------------


def test_a_corrupt_blob_is_a_digest_mismatch_and_nothing_is_committed(rig: Rig) -> None:
    image, layer = _push(rig)
    rig.registry.corrupt(layer)
    with pytest.raises(DigestMismatch, match="hash to"):
        rig.pull(image)
    ref = ingest_ref("layer", layer)
    assert not rig.content.has_content(layer)
    assert rig.content.status(ref) is None and ref in rig.content.aborted
    assert rig.images.pulls == [] and not rig.registered(image)


def test_corrupt_bytes_after_a_resume_are_caught_by_the_store(rig: Rig) -> None:
    """Resumed from an ingest offset mlnode cannot hash from byte 0: the content store's
    own check on commit rejects the bytes, and the ingest is discarded."""
    image, layer = _push(rig)
    ref = ingest_ref("layer", layer)
    data = rig.registry.blobs[layer]
    rig.content.put_ingest(ref, data[: MiB // 4], total_bytes=MiB, expected_digest=layer)
    rig.registry.corrupt(layer)
    with pytest.raises(DigestMismatch, match="containerd rejected the bytes"):
        rig.pull(image)
    assert rig.registry.requests_for(layer) == [BlobRequest(layer, MiB // 4, None)]
    assert not rig.content.has_content(layer) and rig.content.status(ref) is None
    assert not rig.registered(image)


# -- the runtime ----------------------------------------------------------------------


def _unavailable() -> RuntimeUnavailable:
    return RuntimeUnavailable("Content/Write: runtime unavailable: connecting", endpoint=ENDPOINT)


def test_a_runtime_restart_while_opening_a_writer_is_waited_out(rig: Rig) -> None:
    image, _ = _push(rig)
    rig.content.fail_open(_unavailable(), _unavailable(), _unavailable())
    rig.pull(image, connections=1)
    runtime = [r for r in rig.of("retry") if r["reason"] == "runtime"]
    assert len(runtime) == 1, "announced once per wait"
    assert rig.clock.sleeps == [0.5, 0.5, 0.5]
    assert rig.registered(image)


def test_the_runtime_wait_has_a_deadline(rig: Rig) -> None:
    image, _ = _push(rig)
    rig.content.fail_open(*(_unavailable() for _ in range(100)))
    with pytest.raises(RuntimeUnavailable):
        rig.pull(image, connections=1, runtime_wait_seconds=2.0)
    assert 4 <= len(rig.clock.sleeps) <= 5 and set(rig.clock.sleeps) == {0.5}


def test_a_locked_ingest_names_the_other_writer(rig: Rig) -> None:
    image, _ = _push(rig)
    locked = IngestLocked("Content/Write: ref locked", endpoint=ENDPOINT)
    rig.content.fail_open(*(locked for _ in range(100)))
    with pytest.raises(RuntimeUnavailable, match="locked by another writer for more than 1s"):
        rig.pull(image, connections=1, runtime_wait_seconds=1.0)


def test_a_permanent_runtime_error_is_not_retried(rig: Rig) -> None:
    image, _ = _push(rig)
    rig.content.fail_open(RuntimePermissionDenied("permission denied", endpoint=ENDPOINT))
    with pytest.raises(RuntimePermissionDenied):
        rig.pull(image, connections=1)
    assert rig.clock.sleeps == []


def test_a_runtime_restart_mid_write_continues_from_the_ingest_offset(rig: Rig) -> None:
    image, layer = _push(rig)
    rig.content.break_write(ingest_ref("layer", layer), at_byte=400_000)
    reopened: list[bool] = []

    def on_event(e: dict[str, Any]) -> None:
        if e["event"] == "retry" and e["reason"] == "runtime" and not reopened:
            reopened.append(True)
            rig.content.fail_open(_unavailable())  # still restarting on the first reopen

    rig.on_event = on_event
    rig.pull(image, connections=1)
    assert [r["offset_bytes"] for r in rig.of("retry")] == [393_216, None]
    assert rig.registry.served_bytes[layer] == MiB, "the registry was not asked again"
    assert rig.content.written_bytes == image.blobs_size_bytes + len(
        rig.content.blobs[image.manifest_digest]
    )
    assert rig.registered(image)


# -- ranged fetches -------------------------------------------------------------------


def _ranged(**extra: Any) -> dict[str, Any]:
    return {"connections": 4, "split_threshold_bytes": 2 * MiB, "max_chunk_bytes": MiB, **extra}


def test_a_big_blob_is_fetched_as_ranges_over_several_connections(rig: Rig) -> None:
    image, layer = _push(rig, size=6 * MiB)
    rig.pull(image, **_ranged())
    requests = sorted(rig.registry.requests_for(layer), key=lambda r: r.start)
    assert [(r.start, r.end) for r in requests] == [(i * MiB, (i + 1) * MiB - 1) for i in range(6)]
    assert rig.registry.served_bytes[layer] == 6 * MiB
    assert rig.registered(image)


def test_a_cut_range_is_refetched_from_where_it_was_cut(rig: Rig) -> None:
    image, layer = _push(rig, size=6 * MiB)
    cut_at = 2 * MiB + MiB // 2
    rig.registry.cut(layer, at_byte=cut_at)
    rig.pull(image, **_ranged())
    [retry] = rig.of("retry")
    assert retry["reason"] == "dropped" and retry["offset_bytes"] == cut_at
    assert BlobRequest(layer, cut_at, 3 * MiB - 1) in rig.registry.requests_for(layer)
    assert rig.registry.served_bytes[layer] == 6 * MiB
    assert rig.registered(image)
