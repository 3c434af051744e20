"""A pull that does not fit frees room with the ml GC first, against the real containerd.

The image filesystem is measured by a function the test controls (a pull and the GC it
triggers share it), so "does not fit" and "fits once the old image is gone" are exact;
everything else (images, removal, the pull itself) is the real runtime.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import testbed

from mlnode.gc import ObservedImage
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.pull import Puller, PullOptions, gc_free_space
from mlnode.registry.client import RegistryClient
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.fs import FilesystemUsage

pytestmark = pytest.mark.runtime
MiB = 1024 * 1024
_seeds = itertools.count(7000)


def _push(registry: testbed.Registry, repo: str, size: int) -> tuple[str, testbed.OciImage]:
    image = testbed.build_image([size], seed=next(_seeds))
    return registry.push(image, repo, "1"), image


def _fake_fs(
    cri: CriClient, old_id: str, short_by: int, need: Callable[[], int]
) -> Callable[[], FilesystemUsage]:
    """Available = what the pull needs minus ``short_by``, plus room once ``old_id`` is gone."""

    def measure() -> FilesystemUsage:
        gone = old_id not in {i.id for i in cri.list_images()}
        available = need() - short_by + (2 * short_by if gone else 0)
        return FilesystemUsage(Path("/fake"), 100 * 1024 * MiB, available, 0)

    return measure


def _puller(
    containerd: testbed.Containerd,
    cri: CriClient,
    ctrd: ContainerdClient,
    registry_client: RegistryClient,
    measure: Callable[[], FilesystemUsage],
    state: Path,
    events: list[dict[str, Any]],
) -> Puller:
    return Puller(
        registry=registry_client,
        containerd=ctrd,
        cri=cri,
        filesystem=measure,
        options=PullOptions(reserve_bytes=0, unpack_factor=2.0),
        emit=events.append,
        free_space=gc_free_space(
            cri, ctrd, Path("/fake"), state_file=state, emit=events.append, measure=measure
        ),
    )


def test_pull_runs_gc_to_make_room_and_keeps_what_it_must(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    unique_repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    old_ref, old = _push(registry, unique_repo("old"), 3 * MiB)
    recent_ref, recent = _push(registry, unique_repo("recent"), 3 * MiB)
    new_ref, new = _push(registry, unique_repo("new"), 2 * MiB)
    for ref in (old_ref, recent_ref):
        cri.pull_image(ref)
    sizes = {i.id: i.size_bytes for i in cri.list_images()}
    # mlnode has known the old image for an hour (old enough to collect); the recent one
    # was first seen just now, so the minimum GC age protects it.
    state = tmp_path / "state.json"
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    ImageStateFile(state).observe([ObservedImage(old.image_id, sizes[old.image_id])], [], hour_ago)
    need = new.compressed_size * 3  # compressed + unpack factor 2, no reserve
    measure = _fake_fs(cri, old.image_id, short_by=1 * MiB, need=lambda: need)
    events: list[dict[str, Any]] = []
    with RegistryClient(hosts_dir=containerd.certs_d) as rc:
        result = _puller(containerd, cri, ctrd, rc, measure, state, events).pull(new_ref)

    gc = [e for e in events if e["event"] == "gc"]
    assert len(gc) == 1 and gc[0]["removed"] == [old.image_id], gc
    ids = {i.id for i in cri.list_images()}
    assert old.image_id not in ids
    assert recent.image_id in ids
    assert new.image_id in ids
    assert result is not None
    cri.remove_image(recent_ref)
    cri.remove_image(new_ref)


def test_pull_refuses_when_gc_cannot_free_enough(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    unique_repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    from mlnode.errors import InsufficientSpace

    recent_ref, recent = _push(registry, unique_repo("recent"), 3 * MiB)
    new_ref, new = _push(registry, unique_repo("new"), 2 * MiB)
    cri.pull_image(recent_ref)
    need = new.compressed_size * 3
    # Only removing the (protected) recent image would make room.
    measure = _fake_fs(cri, recent.image_id, short_by=1 * MiB, need=lambda: need)
    events: list[dict[str, Any]] = []
    with (
        RegistryClient(hosts_dir=containerd.certs_d) as rc,
        pytest.raises(InsufficientSpace, match="does not fit"),
    ):
        _puller(containerd, cri, ctrd, rc, measure, tmp_path / "s.json", events).pull(new_ref)
    assert recent.image_id in {i.id for i in cri.list_images()}
    assert cri.image_status(new_ref) is None
    cri.remove_image(recent_ref)
