"""The issue-9 fault helpers work with DIRECT CRI pulls (no mirror): a small loop-mounted
disk that a pull does not fit, a corrupted stored blob, and a pull cancelled at 50 % whose
retry makes the registry serve the layer again (the problem the mirror fixes)."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testbed
import testbed_disk
import testbed_faults
from prereq import unavailable

from mlnode.errors import MlnodeError
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient

pytestmark = [pytest.mark.runtime, pytest.mark.timeout(180)]

MiB = 1024 * 1024


def incompressible_image(size_bytes: int, tag: str) -> testbed.OciImage:
    """A one-layer image whose layer is ~``size_bytes`` of fresh random bytes (gzip level 0:
    as big as its content), built in well under a second."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            (f"id-{tag}.txt", tag.encode()),
            ("payload.bin", os.urandom(size_bytes)),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    layer = testbed.Blob(testbed.OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=0, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [testbed.sha256_digest(raw)]},
    }
    config_blob = testbed.Blob(testbed.OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": testbed.OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor()],
    }
    return testbed.OciImage(config_blob, (layer,), json.dumps(manifest, sort_keys=True).encode())


@pytest.fixture
def push(
    registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> Callable[[int], tuple[str, testbed.OciImage]]:
    def make(size_bytes: int) -> tuple[str, testbed.OciImage]:
        repo = unique_repo("img")
        image = incompressible_image(size_bytes, repo)
        return registry.push(image, repo, "1"), image

    return make


@pytest.fixture
def cleanup(cri: CriClient) -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    for ref in refs:
        cri.remove_image(ref)


def _losetup_all() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout


# -- a small real disk --------------------------------------------------------------------


def test_a_pull_that_does_not_fit_the_small_disk_fails_with_enospc(
    registry: testbed.Registry,
    push: Callable[[int], tuple[str, testbed.OciImage]],
    tmp_path: Path,
) -> None:
    reason = testbed_disk.missing_disk_prerequisites()
    if reason:
        unavailable(reason)
    ref, image = push(48 * MiB)
    workdir = tmp_path / "disk"
    with testbed_disk.small_disk(workdir, 32) as mount:
        assert os.path.ismount(mount)
        devices = testbed_disk.loop_devices_of(workdir / "disk.img")
        assert len(devices) == 1 and devices[0] in _losetup_all()
        st = os.statvfs(mount)
        assert st.f_blocks * st.f_frsize < 33 * MiB
        with testbed_disk.containerd_on(mount, tmp_path / "ctr") as ctr:
            ctr.trust_registry(registry.host)
            assert str(ctr.root).startswith(str(mount))
            with CriClient(ctr.socket) as cri, pytest.raises(MlnodeError) as caught:
                cri.pull_image(ref, timeout_seconds=120)
            message = testbed_faults.runtime_message(caught.value)
            print("containerd on a full disk:", message)
            assert "no space left on device" in message
    assert not os.path.ismount(mount)
    assert testbed_disk.loop_devices_of(workdir / "disk.img") == []
    assert str(workdir / "disk.img") not in _losetup_all()
    assert image.layers[0].size > 32 * MiB


def test_small_disk_is_cleaned_up_when_the_test_fails(tmp_path: Path) -> None:
    reason = testbed.missing_prerequisites() or testbed_disk.missing_disk_prerequisites()
    if reason:
        unavailable(reason)
    workdir = tmp_path / "disk"
    with pytest.raises(RuntimeError), testbed_disk.small_disk(workdir, 8) as mount:
        (mount / "busy").write_bytes(b"x" * 1024)
        raise RuntimeError("the test failed here")
    assert not os.path.ismount(mount)
    assert testbed_disk.loop_devices_of(workdir / "disk.img") == []
    assert str(workdir) not in _losetup_all()


def test_small_disk_fixture_mounts_ext4(small_disk: Callable[[int], Path]) -> None:
    mount = small_disk(8)
    fstype = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", str(mount)], capture_output=True, text=True
    ).stdout.strip()
    assert fstype == "ext4"
    st = os.statvfs(mount)
    assert 4 * MiB < st.f_blocks * st.f_frsize <= 8 * MiB


# -- a corrupted blob ---------------------------------------------------------------------


def test_a_direct_pull_of_a_corrupted_blob_fails_naming_the_digest(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    push: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = push(4 * MiB)
    digest = image.layers[0].digest
    testbed_faults.corrupt_blob(registry, digest)
    stored = testbed_faults.stored_blob_path(registry, digest).read_bytes()
    assert len(stored) == image.layers[0].size and testbed.sha256_digest(stored) != digest
    mark = registry.mark()
    with pytest.raises(MlnodeError) as caught:
        cri.pull_image(ref, timeout_seconds=60)
    message = testbed_faults.runtime_message(caught.value)
    print("containerd on a corrupt blob:", message)
    assert digest in message and "unexpected commit digest" in message
    assert cri.image_status(ref) is None
    assert not ctrd.has_content(digest)
    # the registry served the whole (bad) blob at least once
    assert testbed_faults.registry_bytes(registry, digest, mark) >= image.layers[0].size


# -- cancel at 50 % and retry, direct -----------------------------------------------------


def test_a_direct_pull_cancelled_at_half_and_retried_downloads_the_layer_again(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    push: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    """What the mirror must fix (issue 9): containerd drops the partial ingest of a
    cancelled CRI pull, so the retry fetches the layer from byte 0 (measured 1.51×)."""
    ref, image = push(32 * MiB)
    cleanup.append(ref)
    layer = image.layers[0]
    link = registry.proxy(lean=True, rate_bytes_per_second=16 * MiB)  # the network, not a mirror
    containerd.trust_registry(registry.host, mirror_url=link.url)
    try:
        mark = registry.mark()
        cancelled = testbed_faults.cancel_pull_at_fraction(
            containerd, ctrd, ref, layer.digest, layer.size, fraction=0.5
        )
        assert 0.5 * layer.size <= cancelled.offset_bytes < layer.size
        assert cancelled.error_code is not None
        assert not cancelled.ingest_left, "containerd 1.6.20 deletes a cancelled pull's ingest"
        first = testbed_faults.registry_bytes(registry, layer.digest, mark)
        assert cri.image_status(ref) is None
        link.rate_bytes_per_second = None
        retry_mark = registry.mark()
        cri.pull_image(ref, timeout_seconds=120)
    finally:
        containerd.trust_registry(registry.host)
        link.stop()
    retried = testbed_faults.registry_bytes(registry, layer.digest, retry_mark)
    total = testbed_faults.registry_bytes(registry, layer.digest, mark)
    ratio = total / layer.size
    print(
        f"cancel at {cancelled.offset_bytes / layer.size:.2f}: registry served "
        f"{first} then {retried} bytes of a {layer.size}-byte layer = {ratio:.3f}x"
    )
    assert retried >= layer.size, "the retry started again from byte 0"
    assert ratio > 1.2
    status = cri.image_status(ref)
    assert status is not None and status.id == image.image_id
