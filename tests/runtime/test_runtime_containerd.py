"""ContainerdClient (content, leases, images) against a real containerd 1.6."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import pytest
import testbed

from mlnode.errors import ImageNotFound
from mlnode.runtime.containerd import ContainerdClient, Descriptor, IngestStatus
from mlnode.runtime.cri import CriClient
from mlnode.runtime.errors import AlreadyExists, ContentNotFound

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024


def _blob(size: int, seed: int) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, testbed.sha256_digest(data)


def test_list_statuses_shows_offset_growing_mid_pull(
    cri: CriClient,
    ctrd: ContainerdClient,
    registry: testbed.Registry,
    proxy: testbed.ThrottleProxy,
    unique_repo: Callable[[str], str],
) -> None:
    image = testbed.build_image([8 * MiB], seed=11)
    ref = registry.push(image, unique_repo("slow"), "1")
    layer = image.layers[0]
    proxy.rate_bytes_per_second = 2 * MiB
    done = threading.Event()
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            cri.pull_image(ref, timeout_seconds=120)
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    threading.Thread(target=pull, daemon=True).start()
    seen: list[IngestStatus] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(seen) < 4 and not done.is_set():
        for s in ctrd.list_statuses():
            if s.ref == f"layer-{layer.digest}" and (
                not seen or s.offset_bytes > seen[-1].offset_bytes
            ):
                seen.append(s)
        time.sleep(0.25)
    proxy.rate_bytes_per_second = None
    assert done.wait(60), "pull did not finish after the throttle was lifted"
    assert not errors, errors
    assert len(seen) >= 3, seen
    offsets = [s.offset_bytes for s in seen]
    assert offsets == sorted(offsets) and offsets[0] < offsets[-1] < layer.size
    assert {s.total_bytes for s in seen} == {layer.size}
    assert seen[0].started_at is not None and seen[-1].updated_at is not None
    assert proxy.bytes_to_client >= layer.size  # it really went through the mirror
    assert f"layer-{layer.digest}" not in {s.ref for s in ctrd.list_statuses()}
    cri.remove_image(ref)


def test_write_close_resume_commit(ctrd: ContainerdClient) -> None:
    data, digest = _blob(3 * MiB + 123, seed=21)
    lease = ctrd.create_lease(expire_after_seconds=600, labels={"mlnode.test": "write"})
    ref = f"mlnode-test-{digest[7:19]}"
    try:
        with ctrd.writer(
            ref, total_bytes=len(data), expected_digest=digest, lease_id=lease.id
        ) as w:
            assert w.offset_bytes == 0
            assert w.write(data[: 2 * MiB]) == 2 * MiB
        st = ctrd.status(ref)
        assert st is not None and st.offset_bytes == 2 * MiB and st.total_bytes == len(data)
        assert ref in {s.ref for s in ctrd.list_statuses()}

        with ctrd.writer(
            ref, total_bytes=len(data), expected_digest=digest, lease_id=lease.id
        ) as w:
            assert w.offset_bytes == 2 * MiB  # resume point
            w.write(data[w.offset_bytes :])
            assert w.commit(labels={"mlnode.test": "yes"}) == digest

        assert ctrd.status(ref) is None
        info = ctrd.content_info(digest)
        assert info.size_bytes == len(data) and info.labels.get("mlnode.test") == "yes"
        assert b"".join(ctrd.read_content(digest)) == data
        assert b"".join(ctrd.read_content(digest, offset=10, size=5)) == data[10:15]
        assert (digest, "content") in ctrd.list_lease_resources(lease.id)
        with (
            pytest.raises(AlreadyExists),
            ctrd.writer(ref + "-again", total_bytes=len(data), expected_digest=digest),
        ):
            pass
    finally:
        ctrd.delete_lease(lease.id, sync=True)
    # Nothing else held the blob: the lease's deletion let containerd's GC take it.
    assert not ctrd.has_content(digest)


def test_ingest_survives_containerd_kill(
    containerd: testbed.Containerd, ctrd: ContainerdClient
) -> None:
    data, digest = _blob(2 * MiB, seed=31)
    ref = f"mlnode-test-kill-{digest[7:19]}"
    lease = ctrd.create_lease(expire_after_seconds=600)
    w = ctrd.writer(ref, total_bytes=len(data), expected_digest=digest, lease_id=lease.id)
    w.write(data[:MiB])
    containerd.restart(signal.SIGKILL)  # writer still open: like a crash mid-download
    with ContainerdClient(containerd.socket) as again:
        st = again.status(ref)
        assert st is not None and st.offset_bytes == MiB
        with again.writer(
            ref, total_bytes=len(data), expected_digest=digest, lease_id=lease.id
        ) as w2:
            assert w2.offset_bytes == MiB
            w2.write(data[MiB:])
            assert w2.commit() == digest
        assert again.content_info(digest).size_bytes == len(data)
        again.delete_lease(lease.id, sync=True)


def test_restart_from_zero_and_abort(ctrd: ContainerdClient) -> None:
    data, digest = _blob(MiB, seed=41)
    ref = f"mlnode-test-abort-{digest[7:19]}"
    with ctrd.writer(ref, total_bytes=len(data), expected_digest=digest) as w:
        w.write(data[:1000])
        w.restart_from_zero()
        assert w.offset_bytes == 0 and w.stat() == 0
        w.write(data[:500])
    assert ctrd.abort(ref) is True
    assert ctrd.status(ref) is None
    assert ctrd.abort(ref) is False


def test_leases(ctrd: ContainerdClient) -> None:
    lease = ctrd.create_lease("mlnode-test-lease", labels={"a": "b"}, expire_after_seconds=60)
    assert lease.id == "mlnode-test-lease"
    assert lease.labels["a"] == "b" and "containerd.io/gc.expire" in lease.labels
    assert "mlnode-test-lease" in {x.id for x in ctrd.list_leases()}
    with pytest.raises(AlreadyExists):
        ctrd.create_lease("mlnode-test-lease")
    ctrd.delete_lease("mlnode-test-lease")
    assert "mlnode-test-lease" not in {x.id for x in ctrd.list_leases()}
    with pytest.raises(ContentNotFound):
        ctrd.delete_lease("mlnode-test-lease")


def test_blobs_written_by_us_then_cri_pull_fetches_only_the_manifest(
    ctrd: ContainerdClient,
    cri: CriClient,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
) -> None:
    """The premise of mlnode's own pull: fill the content store, then let CRI register it."""
    image = testbed.build_image([3 * MiB, MiB], seed=51)
    ref = registry.push(image, unique_repo("prefetched"), "1")
    lease = ctrd.create_lease(expire_after_seconds=600)
    for blob in (*image.layers, image.config):
        with ctrd.writer(
            f"mlnode-{blob.digest}",
            total_bytes=blob.size,
            expected_digest=blob.digest,
            lease_id=lease.id,
        ) as w:
            w.write(blob.data)
            w.commit()
    mark = registry.mark()
    cri.pull_image(ref)
    fetched = registry.records_since(mark)
    assert all("/blobs/" not in r.path for r in fetched), fetched
    assert any("/manifests/" in r.path for r in fetched)
    ctrd.delete_lease(lease.id)
    cri.remove_image(ref)


def _store_image(ctrd: ContainerdClient, image: testbed.OciImage, lease_id: str) -> Descriptor:
    """Write every blob of ``image`` (manifest too) into the content store."""
    blobs = [*image.layers, image.config, testbed.Blob(testbed.OCI_MANIFEST, image.manifest)]
    for blob in blobs:
        with ctrd.writer(
            f"mlnode-{blob.digest}",
            total_bytes=blob.size,
            expected_digest=blob.digest,
            lease_id=lease_id,
        ) as w:
            w.write(blob.data)
            w.commit()
    return Descriptor(testbed.OCI_MANIFEST, image.manifest_digest, len(image.manifest))


def test_image_records(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
) -> None:
    # Its own namespace: in k8s.io the CRI plugin rewrites records (see the next test).
    image = testbed.build_image([4096], seed=61)
    with ContainerdClient(containerd.socket, namespace="mlnode-test") as ctrd:
        lease = ctrd.create_lease(expire_after_seconds=600)
        try:
            target = _store_image(ctrd, image, lease.id)
            name = f"{registry.host}/{unique_repo('record')}:1"
            created = ctrd.create_image(name, target, labels={"mlnode.test": "1"})
            assert created.name == name and created.target == target
            assert created.created_at is not None
            assert ctrd.get_image(name).labels == {"mlnode.test": "1"}
            assert [i.name for i in ctrd.list_images()] == [name]
            assert [i.name for i in ctrd.list_images([f'name=="{name}"'])] == [name]
            with pytest.raises(AlreadyExists):
                ctrd.create_image(name, target)
            updated = ctrd.update_image(name, target, labels={"mlnode.test": "2"})
            assert updated.labels == {"mlnode.test": "2"}
            ctrd.delete_image(name, sync=True)
            with pytest.raises(ImageNotFound):
                ctrd.get_image(name)
        finally:
            ctrd.delete_lease(lease.id, sync=True)


def test_cri_adopts_an_image_record_created_in_k8s_io(
    ctrd: ContainerdClient,
    cri: CriClient,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
) -> None:
    """containerd 1.6's CRI plugin watches image events in k8s.io: it labels our record
    ``io.cri-containerd.image=managed`` and adds an id record ``sha256:<config digest>``,
    so the image shows up over CRI without any PullImage."""
    image = testbed.build_image([4096], seed=62)
    lease = ctrd.create_lease(expire_after_seconds=600)
    name = f"{registry.host}/{unique_repo('adopted')}:1"
    try:
        ctrd.create_image(name, _store_image(ctrd, image, lease.id))
        deadline = time.monotonic() + 10
        while (seen := cri.image_status(name)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen is not None and seen.id == image.image_id and name in seen.repo_tags
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            labels = ctrd.get_image(name).labels
            if labels.get("io.cri-containerd.image") == "managed":
                break
            time.sleep(0.1)
        assert labels.get("io.cri-containerd.image") == "managed"
        assert ctrd.get_image(image.image_id).target.digest == image.manifest_digest
    finally:
        cri.remove_image(name)  # removes the name and the id record
        ctrd.delete_lease(lease.id, sync=True)
    assert cri.image_status(name) is None


def test_unknown_digest_is_content_not_found(ctrd: ContainerdClient) -> None:
    with pytest.raises(ContentNotFound) as e:
        ctrd.content_info("sha256:" + "0" * 64)
    assert "Content/Info" in str(e.value) and e.value.code == "NOT_FOUND"
