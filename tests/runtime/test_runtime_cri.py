"""CriClient against a real containerd 1.6 (see conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import testbed

from mlnode.errors import ImageNotFound
from mlnode.runtime.cri import ContainerState, CriClient
from mlnode.runtime.errors import ContainerNotFound

pytestmark = pytest.mark.runtime


def test_version_and_status(cri: CriClient) -> None:
    v = cri.version()
    assert v.runtime_name == "containerd"
    assert v.runtime_api_version == "v1"
    assert v.runtime_version.lstrip("v").startswith("1.")
    status = cri.status()
    assert status.runtime_ready
    assert status.condition("NetworkReady") is not None  # false here: no CNI config


def test_verbose_status_names_containerd_root(
    cri: CriClient, containerd: testbed.Containerd
) -> None:
    assert cri.status(verbose=True).containerd_root_dir() == containerd.root


def test_pull_list_status_remove(cri: CriClient, small_image: testbed.PushedImage) -> None:
    image_ref = cri.pull_image(small_image.ref)
    assert image_ref == small_image.image.image_id

    listed = {i.id: i for i in cri.list_images()}
    img = listed[small_image.image.image_id]
    assert small_image.ref in img.repo_tags
    assert any(d.endswith(small_image.image.manifest_digest) for d in img.repo_digests)
    assert img.size_bytes == small_image.image.compressed_size  # containerd: compressed size
    assert img.pinned is False  # containerd pins only the sandbox image, from 1.6.22

    by_name = cri.image_status(small_image.ref)
    assert by_name is not None and by_name.id == img.id
    by_id = cri.image_status(img.id)
    assert by_id is not None and by_id.repo_tags == img.repo_tags

    cri.remove_image(small_image.ref)
    assert cri.image_status(small_image.ref) is None
    cri.remove_image(small_image.ref)  # idempotent


def test_image_fs_info_counts_snapshots(
    cri: CriClient, containerd: testbed.Containerd, small_image: testbed.PushedImage
) -> None:
    cri.pull_image(small_image.ref)
    fs = cri.image_fs_info()
    assert len(fs) == 1
    assert fs[0].mountpoint.startswith(str(containerd.root))
    assert "snapshotter" in fs[0].mountpoint
    # The figure lags: containerd refreshes its snapshot usage in the background.
    assert fs[0].used_bytes is not None and fs[0].timestamp_ns > 0


def test_pull_unknown_image_is_not_found(
    cri: CriClient, registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> None:
    ref = f"{registry.host}/{unique_repo('missing')}:nope"
    t0 = time.monotonic()
    with pytest.raises(ImageNotFound) as e:
        cri.pull_image(ref)
    assert time.monotonic() - t0 < 10
    assert str(e.value).startswith(f"unix://{cri.endpoint.removeprefix('unix://')}: ")
    assert "ImageService/PullImage" in str(e.value)
    assert "\n" not in str(e.value)


def test_list_containers_empty(cri: CriClient) -> None:
    assert cri.list_containers() == []
    assert cri.list_pod_sandboxes() == []


def test_run_stop_remove_pod_and_container(
    cri: CriClient,
    pods: testbed.Pods,
    registry: testbed.Registry,
    busybox: bytes,
    unique_repo: Callable[[str], str],
) -> None:
    image = testbed.build_busybox_image(busybox, seed=7)
    ref = registry.push(image, unique_repo("pod"), "1")
    assert cri.pull_image(ref) == image.image_id
    pod = pods.run(ref)

    (sandbox,) = (s for s in cri.list_pod_sandboxes() if s.id == pod.sandbox_id)
    assert sandbox.ready and sandbox.name == pod.sandbox.name
    (c,) = (c for c in cri.list_containers() if c.id == pod.container_id)
    assert c.state is ContainerState.RUNNING and c.pod_sandbox_id == pod.sandbox_id
    # containerd 1.6: `image` is what CreateContainer was given, `image_ref` the image id;
    # the newer `image_id` field is left empty.
    assert (c.image, c.image_ref, c.image_id) == (ref, image.image_id, None)

    cri.stop_container(pod.container_id)
    cri.stop_container(pod.container_id)  # idempotent
    (c,) = (c for c in cri.list_containers() if c.id == pod.container_id)
    assert c.state is ContainerState.EXITED  # stopped, not removed: still listed

    cri.remove_container(pod.container_id)
    cri.remove_container(pod.container_id)  # idempotent
    assert pod.container_id not in {c.id for c in cri.list_containers()}
    with pytest.raises(ContainerNotFound) as e:
        cri.start_container(pod.container_id)
    assert "RuntimeService/StartContainer" in str(e.value) and "\n" not in str(e.value)

    pods.close()
    assert pod.sandbox_id not in {s.id for s in cri.list_pod_sandboxes()}
    cri.remove_pod_sandbox(pod.sandbox_id)  # idempotent
    cri.remove_image(ref)
