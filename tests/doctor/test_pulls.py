"""Downloads in flight: rows from two samples, stalls by updated_at, the image a layer belongs
to (from the content store's labelled manifests), and the D207/D208 findings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from mlnode.doctor._model import PullRow
from mlnode.doctor._pulls import (
    PullSample,
    images_of_layers,
    pull_findings,
    pull_rows,
    sample_pulls,
    short_digest,
)
from mlnode.ops.mirror_status import MirrorBlob
from mlnode.runtime.containerd import (
    ContainerdClient,
    ContainerdImage,
    ContentInfo,
    Descriptor,
    IngestStatus,
)
from mlnode.runtime.errors import ContentNotFound
from mlnode.testing import FakePullStatuses

MiB = 1024 * 1024
T0 = datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC)
LAYER = "sha256:" + "3122c774a265" + "0" * 52
OTHER = "sha256:" + "5c3caf81fedc" + "1" * 52


def _status(ref: str, offset: int, total: int, updated: datetime | None) -> IngestStatus:
    return IngestStatus(ref, offset, total, T0, updated)


def _blob(
    digest: str, *, upstream: int, size: int, state: str = "fetching", rate: float = 0.0
) -> MirrorBlob:
    return MirrorBlob(
        digest=digest,
        registry="registry.example",
        repository="ml/model",
        image="registry.example/ml/model:v1",
        state=state,
        size_bytes=size,
        upstream_bytes=upstream,
        contiguous_bytes=upstream,
        served_bytes=0,
        clients=1,
        connections=1,
        rate_bytes_per_second=rate,
        eta_seconds=None,
        started_monotonic=1.0,
        error=None,
    )


# --- rows ----------------------------------------------------------------------------------


def test_stalled_seconds_is_now_minus_updated_at_and_rate_from_two_samples() -> None:
    ref = f"layer-{LAYER}"
    before = [_status(ref, 3 * MiB, 8 * MiB, T0)]
    now = [_status(ref, 3 * MiB, 8 * MiB, T0)]
    (row,) = pull_rows(now, before, interval_seconds=2.0, now=T0 + timedelta(seconds=42))
    assert row.digest == LAYER and row.ref == ref
    assert row.offset_bytes == 3 * MiB and row.total_bytes == 8 * MiB
    assert row.rate_bytes_per_second == 0.0
    assert row.stalled_seconds == 42.0
    assert row.source == "containerd"


def test_moving_download_has_a_rate_and_an_eta() -> None:
    ref = f"layer-{LAYER}"
    before = [_status(ref, 2 * MiB, 8 * MiB, T0)]
    now = [_status(ref, 4 * MiB, 8 * MiB, T0 + timedelta(seconds=2))]
    (row,) = pull_rows(now, before, interval_seconds=2.0, now=T0 + timedelta(seconds=2))
    assert row.rate_bytes_per_second == MiB
    assert row.stalled_seconds == 0.0
    assert isinstance(row, PullSample) and row.eta_seconds == 4.0


def test_one_sample_has_no_rate_and_no_timestamp_means_unknown_silence() -> None:
    ref = f"layer-{LAYER}"
    (row,) = pull_rows([_status(ref, MiB, 8 * MiB, None)], None, interval_seconds=None, now=T0)
    assert row.rate_bytes_per_second is None and row.stalled_seconds is None
    # without updated_at, two equal samples say "silent for at least the interval"
    (row,) = pull_rows(
        [_status(ref, MiB, 8 * MiB, None)],
        [_status(ref, MiB, 8 * MiB, None)],
        interval_seconds=3.0,
        now=T0,
    )
    assert row.stalled_seconds == 3.0


def test_image_names_come_from_the_map_and_mirror_blobs_join_by_digest() -> None:
    ref = f"layer-{LAYER}"
    rows = pull_rows(
        [_status(ref, MiB, 8 * MiB, T0)],
        None,
        interval_seconds=None,
        now=T0,
        mirror_blobs=[
            _blob(LAYER, upstream=5 * MiB, size=8 * MiB),
            _blob(OTHER, upstream=MiB, size=2 * MiB, rate=100.0),
        ],
        images_by_digest={LAYER: "reg:5000/ml/model@sha256:abc"},
    )
    joined, mirror_only = rows
    assert joined.source == "containerd+mirror" and joined.image == "reg:5000/ml/model@sha256:abc"
    assert isinstance(joined, PullSample) and joined.mirror_upstream_bytes == 5 * MiB
    assert mirror_only.source == "mirror" and mirror_only.ref == ""
    assert mirror_only.offset_bytes == MiB and mirror_only.image == "registry.example/ml/model:v1"


def test_sample_pulls_sleeps_the_interval_between_two_listings() -> None:
    ref = f"layer-{LAYER}"
    source = FakePullStatuses([_status(ref, MiB, 8 * MiB, T0)])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        source.statuses = [_status(ref, 3 * MiB, 8 * MiB, T0 + timedelta(seconds=2))]

    (row,) = sample_pulls(
        source, interval_seconds=2.0, sleep=sleep, now=lambda: T0 + timedelta(seconds=2)
    )
    assert slept == [2.0]
    assert row.rate_bytes_per_second == MiB and row.offset_bytes == 3 * MiB
    (once,) = sample_pulls(source, interval_seconds=0, sleep=sleep, now=lambda: T0)
    assert once.rate_bytes_per_second is None and slept == [2.0]


# --- findings ------------------------------------------------------------------------------


def _stalled_row(**kw: Any) -> PullRow:
    base: dict[str, Any] = {
        "ref": f"layer-{LAYER}",
        "digest": LAYER,
        "offset_bytes": 3 * MiB,
        "total_bytes": 8 * MiB,
        "rate_bytes_per_second": 0.0,
        "stalled_seconds": 120.0,
        "image": "127.0.0.1:5000/ml/model@sha256:b49a",
        "started_at": T0,
        "updated_at": T0 + timedelta(seconds=3),
    }
    return PullSample(**(base | kw))


def test_stalled_download_names_layer_image_offset_and_the_deadline() -> None:
    (f,) = pull_findings(
        "n1",
        [_stalled_row()],
        deadline_seconds=300.0,
        deadline_source="default of containerd 1.7.13",
        stall_after_seconds=30.0,
    )
    assert f.code == "D207" and f.severity.value == "warning"
    assert short_digest(LAYER) == "sha256:3122c774a265"
    assert "sha256:3122c774a265" in f.title and "127.0.0.1:5000/ml/model@sha256:b49a" in f.title
    assert f.subject == LAYER and f.node == "n1"
    text = "\n".join(f.evidence)
    assert f"{3 * MiB} of {8 * MiB} bytes" in text
    assert "no byte written for 120 s" in text
    assert "started at 2026-12-01T16:00:00Z" in text
    assert "cancels it after 5m0s of silence" in f.cause and "byte 0" in f.cause
    assert "in about 3m0s" in f.cause
    assert "registry" in f.cause  # no mirror lists it: containerd reads from the registry
    assert "`mlnode apply --mirror http://127.0.0.1:6055`" in f.fix
    assert "`mlnode progress`" in f.fix


def test_the_ref_says_what_kind_of_blob_stalled() -> None:
    (f,) = pull_findings(
        "n1",
        [_stalled_row(ref=f"config-{LAYER}")],
        deadline_seconds=60.0,
        deadline_source="default of containerd 1.7.2",
        stall_after_seconds=30.0,
    )
    assert f.title.startswith("download of config sha256:3122c774a265")
    assert "now (the deadline has passed)" in f.cause  # 120 s silent, 1m0s deadline


def test_no_deadline_says_it_hangs_until_the_pod_is_deleted() -> None:
    (f,) = pull_findings(
        "n1",
        [_stalled_row()],
        deadline_seconds=None,
        deadline_source="containerd 1.6.20 has none",
        stall_after_seconds=30.0,
    )
    assert "hangs until its pod is deleted" in f.cause and "cancels" not in f.cause


def test_unknown_deadline_is_not_called_none() -> None:
    (f,) = pull_findings(
        "n1",
        [_stalled_row()],
        deadline_seconds=None,
        deadline_source="unknown",
        stall_after_seconds=30.0,
    )
    assert "deadline is not known" in f.cause and "has no pull progress deadline" not in f.cause


def test_stall_at_the_registry_behind_a_wired_mirror_names_progress_not_apply() -> None:
    row = _stalled_row(
        source="containerd+mirror",
        mirror_state="fetching",
        mirror_upstream_bytes=7 * MiB,
        mirror_contiguous_bytes=3 * MiB + 4096,
        mirror_rate_bytes_per_second=50_000.0,
    )
    (f,) = pull_findings(
        "n1",
        [row],
        deadline_seconds=300.0,
        deadline_source="d",
        stall_after_seconds=30.0,
        mirror_url="http://127.0.0.1:6055",
    )
    assert "at the registry" in f.cause
    assert "mlnode apply" not in f.fix
    assert "`mlnode progress --mirror http://127.0.0.1:6055`" in f.fix


def test_mirror_ahead_of_containerd_puts_the_stall_between_them() -> None:
    row = _stalled_row(
        source="containerd+mirror",
        mirror_state="complete",
        mirror_upstream_bytes=8 * MiB,
        mirror_contiguous_bytes=8 * MiB,
    )
    (f,) = pull_findings(
        "n1", [row], deadline_seconds=300.0, deadline_source="d", stall_after_seconds=30.0
    )
    assert "between the mirror and containerd" in f.cause


def test_short_silence_or_moving_bytes_is_an_active_download() -> None:
    rows = [
        _stalled_row(stalled_seconds=5.0),
        _stalled_row(stalled_seconds=90.0, rate_bytes_per_second=10_000.0),  # slow, 1 MiB steps
        _stalled_row(stalled_seconds=None, rate_bytes_per_second=None),
    ]
    found = pull_findings(
        "n1", rows, deadline_seconds=300.0, deadline_source="d", stall_after_seconds=30.0
    )
    assert [f.code for f in found] == ["D208", "D208", "D208"]
    assert found[0].severity.value == "info" and "sha256:3122c774a265" in found[0].title


def test_finished_mirror_blob_is_not_a_download() -> None:
    done = PullRow("", OTHER, MiB, MiB, 0.0, None, source="mirror")
    assert (
        pull_findings("n", [done], deadline_seconds=1.0, deadline_source="d", stall_after_seconds=1)
        == []
    )


# --- which image a layer belongs to --------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeContent:
    """containerd's Content.List/Read and Images.List, as images_of_layers uses them."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    images: list[ContainerdImage] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)

    def put(self, doc: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
        data = json.dumps(doc).encode()
        d = _digest(data)
        self.blobs[d] = data
        self.labels[d] = dict(labels or {})
        return d

    def list_content(self, filters: Sequence[str] = ()) -> list[ContentInfo]:
        return [ContentInfo(d, len(b), None, None, self.labels[d]) for d, b in self.blobs.items()]

    def read_content(self, digest: str, *, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        self.reads.append(digest)
        if digest not in self.blobs:
            raise ContentNotFound(f"Content/Read: not found: {digest}", endpoint="fake")
        yield self.blobs[digest]

    def list_images(self, filters: Sequence[str] = ()) -> list[ContainerdImage]:
        return list(self.images)

    def record(self, name: str, target: str, media_type: str) -> None:
        self.images.append(ContainerdImage(name, Descriptor(media_type, target, 1)))


def _manifest(config: str, layers: Sequence[str]) -> dict[str, Any]:
    layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": 1,
        },
        "layers": [{"mediaType": layer, "digest": d, "size": 1} for d in layers],
    }


def _pull_labels(config: str, layers: Sequence[str], repo: str) -> dict[str, str]:
    """The labels containerd 1.6.20 put on a manifest mid-pull (seen on the testbed)."""
    out = {"containerd.io/gc.ref.content.config": config}
    out |= {f"containerd.io/gc.ref.content.l.{i}": d for i, d in enumerate(layers)}
    out["containerd.io/distribution.source.127.0.0.1"] = repo
    return out


def _client(fake: FakeContent) -> ContainerdClient:
    return cast(ContainerdClient, fake)


def test_layer_of_a_pull_in_flight_is_named_from_its_labelled_manifest() -> None:
    fake = FakeContent()
    config = "sha256:" + "c" * 64
    m = fake.put(
        _manifest(config, [LAYER, OTHER]), _pull_labels(config, [LAYER, OTHER], "ml/model")
    )
    owners = images_of_layers(_client(fake))
    # no image record yet: the label's host has no port, so the name has none either
    assert owners[LAYER] == f"127.0.0.1/ml/model@{m}"
    assert owners[OTHER] == owners[LAYER] and owners[config] == owners[LAYER]


def test_an_image_record_of_the_same_repository_gives_the_port_back() -> None:
    fake = FakeContent()
    old_config, config = "sha256:" + "a" * 64, "sha256:" + "c" * 64
    old = fake.put(_manifest(old_config, [OTHER]), _pull_labels(old_config, [OTHER], "ml/model"))
    fake.record("127.0.0.1:5000/ml/model:v1", old, "application/vnd.oci.image.manifest.v1+json")
    new = fake.put(
        _manifest(config, [LAYER, OTHER]), _pull_labels(config, [LAYER, OTHER], "ml/model")
    )
    owners = images_of_layers(_client(fake))
    assert owners[LAYER] == f"127.0.0.1:5000/ml/model@{new}"
    # the shared layer goes to the image being pulled (no record), not the finished one
    assert owners[OTHER] == owners[LAYER]
    assert owners[old_config] == "127.0.0.1:5000/ml/model:v1"


def test_index_and_records_a_tag_beats_a_digest_and_an_id() -> None:
    fake = FakeContent()
    config = "sha256:" + "c" * 64
    m = fake.put(_manifest(config, [LAYER]), {})
    other_platform = "sha256:" + "9" * 64  # listed by the index, never fetched
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": other_platform, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": m, "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }
    i = fake.put(index, {"containerd.io/gc.ref.content.m.0": m})
    idx_type = "application/vnd.oci.image.index.v1+json"
    fake.record(f"reg.example/ml/model@{i}", i, idx_type)
    fake.record(config, i, idx_type)
    fake.record("reg.example/ml/model:v2", i, idx_type)
    assert images_of_layers(_client(fake)) == {
        LAYER: "reg.example/ml/model:v2",
        config: "reg.example/ml/model:v2",
    }


def test_unreadable_manifest_falls_back_to_its_gc_labels() -> None:
    fake = FakeContent()
    config = "sha256:" + "c" * 64
    m = fake.put(_manifest(config, [LAYER]), _pull_labels(config, [LAYER], "ml/model"))
    fake.blobs[m] = b"not json"
    assert images_of_layers(_client(fake))[LAYER] == f"127.0.0.1/ml/model@{m}"


@pytest.mark.parametrize("size", [0, 1])
def test_plain_blobs_are_not_read(size: int) -> None:
    fake = FakeContent()
    fake.blobs["sha256:" + "e" * 64] = b"x" * size
    fake.labels["sha256:" + "e" * 64] = {"containerd.io/distribution.source.docker.io": "x/y"}
    assert images_of_layers(_client(fake)) == {}
    assert fake.reads == []  # a config or layer is never read: only gc-labelled manifests
