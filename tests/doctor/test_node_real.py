"""The doctor's pulls and layers against a real containerd 1.6.20 and docker-registry.

A CRI pull of an 8 MiB layer goes through a :class:`testbed.ThrottleProxy` set as the
registry's mirror: throttled, the doctor sees a download in flight (D208, a rate); stalled,
it names the layer, the image and the offset where bytes stopped (D207). A pulled gzip
image gives D306. The registry and containerd are this module's own (tests/runtime's
fixtures are not visible here); both run as root in temp dirs and stop by pid.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import testbed
from prereq import unavailable
from testbed_mirror import MirrorProcess

from mlnode.doctor._layers import GZIP_LAYER_TYPES, layer_findings, read_image_layers
from mlnode.doctor._pulls import (
    BUFFER_BYTES,
    images_of_layers,
    pull_findings,
    sample_pulls,
    short_digest,
)
from mlnode.ops.mirror_status import fetch_status
from mlnode.runtime.containerd import ContainerdClient, IngestStatus
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024
STALL_AFTER_SECONDS = 1.5
_repos = itertools.count()


@pytest.fixture(scope="module")
def bed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[testbed.Registry, testbed.Containerd]]:
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    work = tmp_path_factory.mktemp("doctor-real")
    reg = testbed.Registry(work / "registry")
    try:
        reg.start()
        with testbed.running_containerd(work / "containerd", trust=[reg.host]) as ctr:
            yield reg, ctr
    finally:
        reg.stop()


@pytest.fixture
def clients(
    bed: tuple[testbed.Registry, testbed.Containerd],
) -> Iterator[tuple[CriClient, ContainerdClient]]:
    _, ctr = bed
    with CriClient(ctr.socket) as cri, ContainerdClient(ctr.socket, namespace="k8s.io") as ctrd:
        yield cri, ctrd


class Pull:
    """A CRI PullImage in a thread (as the kubelet's)."""

    def __init__(self, cri: CriClient, ref: str) -> None:
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(cri, ref), daemon=True)
        self._thread.start()

    def _run(self, cri: CriClient, ref: str) -> None:
        try:
            cri.pull_image(ref, timeout_seconds=120)
        except BaseException as e:  # reported by the test
            self.errors.append(e)
        finally:
            self.done.set()


def _ingest(ctrd: ContainerdClient, ref: str) -> IngestStatus | None:
    return next((s for s in ctrd.list_statuses() if s.ref == ref), None)


def _wait_offset(ctrd: ContainerdClient, ref: str, at_least: int, pull: Pull) -> IngestStatus:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pull.done.is_set():
        s = _ingest(ctrd, ref)
        if s is not None and s.offset_bytes >= at_least:
            return s
        time.sleep(0.05)
    raise AssertionError(f"no ingest {ref} at {at_least} bytes (pull errors: {pull.errors})")


def _wait_still(ctrd: ContainerdClient, ref: str) -> IngestStatus:
    """The ingest once its offset stayed put for a second (bytes in socket buffers landed)."""
    last = _ingest(ctrd, ref)
    while True:
        time.sleep(1.0)
        now = _ingest(ctrd, ref)
        assert now is not None and last is not None
        if now.offset_bytes == last.offset_bytes:
            return now
        last = now


def test_stalled_cri_pull_is_named_with_layer_image_and_offset(
    bed: tuple[testbed.Registry, testbed.Containerd],
    clients: tuple[CriClient, ContainerdClient],
) -> None:
    reg, ctr = bed
    cri, ctrd = clients
    image = testbed.build_image([8 * MiB], seed=71)
    repo = f"mlnode/doctor-stall-{next(_repos)}"
    ref = reg.push(image, repo, "v1")
    layer = image.layers[0]
    ingest_ref = f"layer-{layer.digest}"
    proxy = reg.proxy(rate_bytes_per_second=2 * MiB)
    ctr.trust_registry(reg.host, mirror_url=proxy.url)
    pull = Pull(cri, ref)
    try:
        _wait_offset(ctrd, ingest_ref, MiB, pull)
        owners = images_of_layers(ctrd)
        moving = sample_pulls(ctrd, interval_seconds=1.0, images_by_digest=owners)
        proxy.stall()
        stalled_at = datetime.now(UTC)
        still = _wait_still(ctrd, ingest_ref)
        owners_stalled = images_of_layers(ctrd)
        rows = sample_pulls(ctrd, interval_seconds=1.0, images_by_digest=owners_stalled)
        records_mid_pull = [i.name for i in ctrd.list_images() if repo in i.name]
    finally:
        proxy.resume()
        proxy.rate_bytes_per_second = None
        assert pull.done.wait(60), "the pull did not finish once the proxy resumed"
        ctr.trust_registry(reg.host)
        proxy.stop()
    assert not pull.errors, pull.errors

    # containerd names no image while the pull is in flight; the labelled manifest does
    assert records_mid_pull == []
    name = f"127.0.0.1/{repo}@{image.manifest_digest}"  # the label's host has no port
    assert owners[layer.digest] == name and owners_stalled[layer.digest] == name

    (active,) = (r for r in moving if r.ref == ingest_ref)
    assert active.rate_bytes_per_second is not None and active.rate_bytes_per_second > 0
    (d208,) = pull_findings(
        "node-a",
        [active],
        deadline_seconds=None,
        deadline_source="containerd 1.6.20: none",
        stall_after_seconds=STALL_AFTER_SECONDS,
    )
    assert d208.code == "D208" and short_digest(layer.digest) in d208.title

    (row,) = (r for r in rows if r.ref == ingest_ref)
    # updated_at stayed at the last write: the silence is measured from it
    assert still.updated_at is not None and still.updated_at <= stalled_at
    assert row.stalled_seconds is not None and row.stalled_seconds >= STALL_AFTER_SECONDS
    assert row.rate_bytes_per_second == 0.0
    assert row.offset_bytes == still.offset_bytes and 0 < row.offset_bytes < layer.size
    assert row.offset_bytes % BUFFER_BYTES == 0  # containerd writes whole 1 MiB buffers
    findings = pull_findings(
        "node-a",
        rows,
        deadline_seconds=None,
        deadline_source="containerd 1.6.20: none",
        stall_after_seconds=STALL_AFTER_SECONDS,
    )
    (f,) = (x for x in findings if x.subject == layer.digest)
    assert f.code == "D207"
    assert short_digest(layer.digest) in f.title and name in f.title
    assert any(f"{row.offset_bytes} of {layer.size} bytes" in e for e in f.evidence)
    assert "hangs until its pod is deleted" in f.cause
    print(
        f"\nmeasured: stalled at offset {row.offset_bytes} of {layer.size};"
        f" updated_at {still.updated_at.isoformat()} vs stall {stalled_at.isoformat()};"
        f" stalled_seconds {row.stalled_seconds:.2f} at the second sample"
    )
    cri.remove_image(ref)


def test_stall_behind_the_node_mirror_is_placed_at_the_registry(
    bed: tuple[testbed.Registry, testbed.Containerd],
    clients: tuple[CriClient, ContainerdClient],
    tmp_path: Path,
) -> None:
    """containerd wired to a real ``mlnode mirror`` whose upstream (a proxy in front of
    the registry) stalls: the row joins both sides, and the finding puts the stall at the
    registry and names ``mlnode progress --mirror``, not ``mlnode apply --mirror``."""
    reg, ctr = bed
    cri, ctrd = clients
    image = testbed.build_image([8 * MiB], seed=74)
    repo = f"mlnode/doctor-mirror-{next(_repos)}"
    ref = reg.push(image, repo, "v1")
    layer = image.layers[0]
    ingest_ref = f"layer-{layer.digest}"
    upstream = reg.proxy(rate_bytes_per_second=2 * MiB)
    mirror = MirrorProcess(tmp_path / "cache", [f"{reg.host}={upstream.url}"]).start()
    ctr.trust_registry(reg.host, mirror_url=mirror.url)
    pull = Pull(cri, ref)
    try:
        _wait_offset(ctrd, ingest_ref, MiB, pull)
        upstream.stall()
        _wait_still(ctrd, ingest_ref)
        owners = images_of_layers(ctrd)
        blobs = fetch_status(mirror.url).blobs
        rows = sample_pulls(ctrd, interval_seconds=1.0, images_by_digest=owners, mirror_blobs=blobs)
    finally:
        upstream.resume()
        upstream.rate_bytes_per_second = None
        assert pull.done.wait(60), "the pull did not finish once the upstream resumed"
        ctr.trust_registry(reg.host)
        mirror.stop()
        upstream.stop()
    assert not pull.errors, pull.errors
    cri.remove_image(ref)
    (row,) = (r for r in rows if r.ref == ingest_ref)
    assert row.source == "containerd+mirror"
    (f,) = pull_findings(
        "node-a",
        [row],
        deadline_seconds=300.0,
        deadline_source="default of containerd 1.7.13",
        stall_after_seconds=STALL_AFTER_SECONDS,
        mirror_url=mirror.url,
    )
    assert f.code == "D207" and short_digest(layer.digest) in f.title
    print(f"\nmeasured behind the mirror: offset {row.offset_bytes}; {f.cause.split('. ')[1]}")
    assert "waiting for the registry too" in f.cause, f.cause
    assert f"`mlnode progress --mirror {mirror.url}`" in f.fix and "mlnode apply" not in f.fix


def test_pulled_gzip_image_gives_d306(
    bed: tuple[testbed.Registry, testbed.Containerd],
    clients: tuple[CriClient, ContainerdClient],
) -> None:
    reg, _ = bed
    cri, ctrd = clients
    image = testbed.build_image([3 * MiB, MiB], seed=72)
    repo = f"mlnode/doctor-gzip-{next(_repos)}"
    ref = reg.push(image, repo, "v1")
    cri.pull_image(ref, timeout_seconds=120)
    try:
        (mine,) = (i for i in read_image_layers(ctrd) if repo in i.image)
        owners = images_of_layers(ctrd)
    finally:
        cri.remove_image(ref)
    assert mine.image == ref  # CRI's three records, named by the tag
    assert [(d, s) for d, _, s in mine.layers] == [(b.digest, b.size) for b in image.layers]
    assert {t for _, t, _ in mine.layers} <= GZIP_LAYER_TYPES
    assert owners[image.layers[0].digest] == ref  # finished: the record's tag
    (f,) = layer_findings("node-a", [mine], min_image_bytes=MiB)
    assert f.code == "D306" and f.subject == ref
    assert f"docker://{ref} docker://{ref}-zstd" in f.fix
    assert any(f"{sum(b.size for b in image.layers)} bytes" in e for e in f.evidence)
    assert layer_findings("node-a", [mine], min_image_bytes=mine.size_bytes + 1) == []


def test_doctor_cli_names_the_stalled_layer(
    bed: tuple[testbed.Registry, testbed.Containerd],
    clients: tuple[CriClient, ContainerdClient],
    tmp_path: Path,
) -> None:
    """End to end: ``mlnode doctor --root T --runtime-endpoint SOCK -o json`` during a
    stalled pull lists the row and a D207 naming the layer."""
    from typer.testing import CliRunner

    from mlnode.cli.app import app

    reg, ctr = bed
    cri, ctrd = clients
    image = testbed.build_image([8 * MiB], seed=73)
    repo = f"mlnode/doctor-cli-{next(_repos)}"
    ref = reg.push(image, repo, "v1")
    layer = image.layers[0]
    # one image already on the node, so the doctor has something to say holds the disk
    present = reg.push(testbed.build_image([256 * 1024], seed=74), f"{repo}-present", "v1")
    cri.pull_image(present)
    proxy = reg.proxy(rate_bytes_per_second=2 * MiB)
    ctr.trust_registry(reg.host, mirror_url=proxy.url)
    pull = Pull(cri, ref)
    try:
        _wait_offset(ctrd, f"layer-{layer.digest}", MiB, pull)
        proxy.stall()
        _wait_still(ctrd, f"layer-{layer.digest}")
        result = CliRunner().invoke(
            app,
            [
                "doctor",
                "--root",
                str(tmp_path),
                "--runtime-endpoint",
                str(ctr.socket),
                "--namespace",
                "k8s.io",
                "--sample",
                "1s",
                "--stall-after",
                "1s",
                "--no-journal",
                "-o",
                "json",
            ],
        )
    finally:
        proxy.resume()
        proxy.rate_bytes_per_second = None
        assert pull.done.wait(60)
        ctr.trust_registry(reg.host)
        proxy.stop()
    cri.remove_image(ref)
    cri.remove_image(present)
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    (node,) = doc["nodes"]
    (row,) = (p for p in node["pulls"] if p["digest"] == layer.digest)
    assert row["rate_bytes_per_second"] == 0.0 and row["stalled_seconds"] >= 1.0
    assert row["image"] == f"127.0.0.1/{repo}@{image.manifest_digest}"
    (f,) = (x for x in node["findings"] if x["code"] == "D207" and x["subject"] == layer.digest)
    assert short_digest(layer.digest) in f["title"] and repo in f["title"]
    # what holds the disk, from the same CRI listing
    (held,) = (x for x in node["findings"] if x["code"] == "D109")
    assert node["images_count"] >= 1
    assert held["evidence"][0].startswith(f"{node['images_count']} images, ")
    assert any(e.startswith(f"{present}: ") and e.endswith("(unused)") for e in held["evidence"])
