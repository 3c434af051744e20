"""The node mirror's cache next to a real containerd 1.6.20: ``mlnode images`` counts it,
``mlnode gc`` (ml policy) frees its complete blobs before any image.

containerd's root and the mirror's cache share a tmpfs of their own (mounted by the test,
unmounted after), so the image filesystem's numbers move only with what this test does:
no other process on the machine writes there, and the bytes GC frees are measured.
The cache is a real :class:`~mlnode.blobcache.BlobCache` holding complete and partial
blobs, written the way the mirror writes them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import testbed
from typer.testing import CliRunner

from mlnode.blobcache import BlobCache
from mlnode.cli.app import app
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024
BLOB = 8 * MiB


@pytest.fixture(scope="module")
def disk(runtime_workdir: Path, registry: testbed.Registry) -> Iterator[Path]:
    """A 256 MiB tmpfs for containerd's root and the mirror cache, unmounted after."""
    mnt = runtime_workdir / "mirror-disk"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "mlnode-test", str(mnt)],
        check=True,
    )
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="module")
def node_ctr(disk: Path, registry: testbed.Registry) -> Iterator[testbed.Containerd]:
    with testbed.running_containerd(disk / "containerd", trust=[registry.host]) as ctr:
        yield ctr


@pytest.fixture
def cache(disk: Path, request: pytest.FixtureRequest) -> Iterator[BlobCache]:
    c = BlobCache(disk / f"mirror-{request.node.name}"[:100])
    c.ensure()
    yield c
    for e in c.entries():
        c.remove(e.digest)


def put_blob(cache: BlobCache, n: int, *, size: int, present: int) -> str:
    """A blob as the mirror leaves it: ``present`` bytes from 0, complete when all."""
    digest = f"sha256:{n:064x}"
    f = cache.open(
        digest, size_bytes=size, registry="127.0.0.1:5000", repository="t/x", private=False
    )
    try:
        f.write_at(0, os.urandom(present))
        if present == size:
            f.mark_complete()
        else:
            f.checkpoint()
    finally:
        f.close()
    return digest


def available(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def gc(ctr: testbed.Containerd, cache: BlobCache, state: Path, headroom: int) -> dict[str, Any]:
    r = CliRunner().invoke(
        app,
        [
            "gc",
            "--policy",
            "ml",
            "--runtime-endpoint",
            ctr.endpoint,
            "--state-file",
            str(state),
            "--mirror-cache",
            str(cache.directory),
            "--minimum-age",
            "0",
            "--high",
            "100",
            "--low",
            "99",
            "--headroom-bytes",
            str(headroom),
            "--output",
            "json",
        ],
    )
    assert r.exit_code in (0, 1), r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def images(ctr: testbed.Containerd, cache: BlobCache, state: Path) -> dict[str, Any]:
    args = ["images", "--runtime-endpoint", ctr.endpoint, "--state-file", str(state)]
    r = CliRunner().invoke(app, [*args, "--mirror-cache", str(cache.directory), "-o", "json"])
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


@pytest.fixture
def pulled(
    node_ctr: testbed.Containerd, registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> Iterator[testbed.PushedImage]:
    image = testbed.build_image([4 * MiB], seed=9100)
    ref = registry.push(image, unique_repo("mc"), "1")
    with CriClient(node_ctr.socket) as cri:
        cri.pull_image(ref)
        yield testbed.PushedImage(ref, image)
        cri.remove_image(ref)


def test_images_counts_complete_and_partial_blobs(
    node_ctr: testbed.Containerd, cache: BlobCache, tmp_path: Path
) -> None:
    put_blob(cache, 1, size=BLOB, present=BLOB)
    put_blob(cache, 2, size=2 * BLOB, present=BLOB // 2)
    doc = images(node_ctr, cache, tmp_path / "state.json")["mirror_cache"]
    assert doc["present"] is True and doc["on_image_filesystem"] is True
    assert doc["blobs"] == 2
    assert doc["complete"] == {"blobs": 1, "size_bytes": BLOB, "disk_bytes": BLOB}
    assert doc["partial"]["blobs"] == 1 and doc["partial"]["present_bytes"] == BLOB // 2
    assert doc["partial"]["disk_bytes"] == BLOB // 2  # sparse: only what is present
    assert doc["disk_bytes"] == cache.total_disk_bytes() == BLOB + BLOB // 2
    assert doc["reclaimable_bytes"] == BLOB
    absent = BlobCache(tmp_path / "no-mirror")
    assert images(node_ctr, absent, tmp_path / "state.json")["mirror_cache"]["present"] is False


def test_gc_frees_the_cache_first_and_no_image_while_it_suffices(
    node_ctr: testbed.Containerd, cache: BlobCache, pulled: testbed.PushedImage, tmp_path: Path
) -> None:
    old = put_blob(cache, 1, size=BLOB, present=BLOB)  # least recently accessed
    new = put_blob(cache, 2, size=BLOB, present=BLOB)
    partial = put_blob(cache, 3, size=4 * BLOB, present=2 * BLOB)
    before = available(node_ctr.root)
    doc = gc(node_ctr, cache, tmp_path / "state.json", headroom=before + BLOB // 2)
    assert doc["removed"] == [{"id": old, "size_bytes": BLOB, "reason": "mirror-cache"}]
    assert doc["satisfied"] is True and doc["not_removed"] == []
    assert {e.digest for e in cache.entries()} == {new, partial}
    assert available(node_ctr.root) - before >= BLOB - MiB  # the bytes really came back
    with CriClient(node_ctr.socket) as cri:
        assert pulled.image.image_id in {i.id for i in cri.list_images()}


def test_gc_takes_images_only_for_what_the_cache_cannot_cover(
    node_ctr: testbed.Containerd, cache: BlobCache, pulled: testbed.PushedImage, tmp_path: Path
) -> None:
    blob = put_blob(cache, 1, size=BLOB, present=BLOB)
    partial = put_blob(cache, 2, size=4 * BLOB, present=2 * BLOB)
    before = available(node_ctr.root)
    doc = gc(node_ctr, cache, tmp_path / "state.json", headroom=before + BLOB + MiB)
    reasons = [(r["id"], r["reason"]) for r in doc["removed"]]
    assert reasons == [(blob, "mirror-cache"), (pulled.image.image_id, "space")]
    assert [e.digest for e in cache.entries()] == [partial]  # partial blobs stay
    with CriClient(node_ctr.socket) as cri:
        assert pulled.image.image_id not in {i.id for i in cri.list_images()}
