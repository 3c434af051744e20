"""CriClient against a real containerd 1.6 (see conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import testbed

from mlnode.errors import ImageNotFound
from mlnode.runtime.cri import CriClient

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
