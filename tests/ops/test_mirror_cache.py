"""The node mirror's cache in ``mlnode images`` and ``mlnode gc`` (fakes, real BlobCache)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gc_helpers import FakeRuntime, invoke, runtime_images
from typer.testing import CliRunner

from mlnode.blobcache import BlobCache
from mlnode.cli.app import app
from mlnode.gc import ObservedImage
from mlnode.ops import gc_session
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.images import build_report, report_to_json
from mlnode.ops.mirror_cache import measure_cache, reclaimable_bytes, same_filesystem
from mlnode.runtime.cri import CriImage, RuntimeVersion
from mlnode.runtime.fs import FilesystemUsage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BLOB = 64 * 1024


def put_blob(cache: BlobCache, n: int, *, complete: bool, size: int = BLOB) -> str:
    digest = f"sha256:{n:064x}"
    f = cache.open(digest, size_bytes=size, registry="r.test", repository="team/x", private=False)
    try:
        f.write_at(0, b"x" * (size if complete else size // 4))
        if complete:
            f.mark_complete()
        else:
            f.checkpoint()
    finally:
        f.close()
    return digest


@pytest.fixture
def cache(tmp_path: Path) -> BlobCache:
    c = BlobCache(tmp_path / "mirror")
    put_blob(c, 1, complete=True)
    put_blob(c, 2, complete=True)
    put_blob(c, 3, complete=False, size=4 * BLOB)
    return c


def test_absent_dir_is_no_mirror(tmp_path: Path) -> None:
    m = measure_cache(tmp_path / "nope")
    assert not m.present and m.blobs == 0
    assert m.to_json()["present"] is False
    assert not (tmp_path / "nope").exists()  # reading never creates it


def test_counts_complete_and_partial(cache: BlobCache, tmp_path: Path) -> None:
    entries = {e.digest: e for e in cache.entries()}
    one, two, three = (f"sha256:{n:064x}" for n in (1, 2, 3))
    m = measure_cache(cache.directory, image_fs=tmp_path, in_flight=frozenset({two}))
    assert (m.complete_blobs, m.partial_blobs, m.blobs) == (2, 1, 3)
    assert m.complete_size_bytes == 2 * BLOB
    assert m.complete_disk_bytes == entries[one].disk_bytes + entries[two].disk_bytes
    assert m.partial_present_bytes == BLOB and m.partial_size_bytes == 4 * BLOB
    assert m.partial_disk_bytes == entries[three].disk_bytes
    assert m.disk_bytes == cache.total_disk_bytes()
    # reclaimable: complete and not in flight (blob 2 is being ingested)
    assert m.reclaimable_bytes == entries[one].disk_bytes > 0
    assert reclaimable_bytes(cache, frozenset({two})) == m.reclaimable_bytes
    assert m.on_image_filesystem is True and same_filesystem(cache.directory, tmp_path)


def _report(mirror_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_report(
        endpoint="unix:///run/containerd/containerd.sock",
        runtime=RuntimeVersion("0.1.0", "containerd", "v1.6.20", "v1"),
        images=[CriImage("sha256:" + "a" * 64, ("reg/img:1",), (), 1000, False)],
        containers=[],
        filesystem=FilesystemUsage(tmp_path, 10_000_000, 5_000_000, 5_000_000),
        mirror_cache=measure_cache(mirror_dir, image_fs=tmp_path),
    )


def test_images_json_and_human(
    cache: BlobCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _report(cache.directory, tmp_path)
    doc = report_to_json(report)["mirror_cache"]
    assert doc["dir"] == str(cache.directory) and doc["present"] is True
    assert doc["blobs"] == 3 and doc["complete"]["blobs"] == 2 and doc["partial"]["blobs"] == 1
    assert doc["disk_bytes"] == cache.total_disk_bytes()
    seen: dict[str, object] = {}

    def fake_collect(*a: object, **k: object) -> object:
        seen.update(k)
        return report

    monkeypatch.setattr("mlnode.cli.images.collect_report", fake_collect)
    monkeypatch.setenv("COLUMNS", "200")
    state = str(tmp_path / "state.json")
    r = CliRunner().invoke(
        app, ["images", "--state-file", state, "--mirror-cache", str(cache.directory)]
    )
    assert r.exit_code == 0, r.output
    assert seen["mirror_cache"] == cache.directory
    assert f"Mirror cache {cache.directory}: 3 blob(s)" in r.stdout
    assert "2 complete" in r.stdout and "1 partial" in r.stdout
    r = CliRunner().invoke(app, ["images", "--state-file", state, "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["mirror_cache"]["blobs"] == 3


def test_images_absent_cache_is_shown_not_an_error(tmp_path: Path) -> None:
    report = _report(tmp_path / "none", tmp_path)
    assert report_to_json(report)["mirror_cache"]["present"] is False
    from mlnode.cli.images import mirror_line

    assert mirror_line(report.mirror_cache).endswith("none (no mirror cache on this node)")  # type: ignore[arg-type]


# --- mlnode gc (ml policy) with a mirror cache -------------------------------------------


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    # 100 blobs of disk, 0 free; one old 600-byte image; target: BLOB bytes available
    rt = FakeRuntime(runtime_images([("a", 600)]), capacity_bytes=100 * BLOB, available_bytes=0)
    ImageStateFile(tmp_path / "state.json").observe(
        [ObservedImage("a", 600)], frozenset(), NOW - timedelta(days=2)
    )
    monkeypatch.setattr(gc_session, "open_runtime", lambda endpoint, image_fs: rt)
    monkeypatch.setattr(gc_session, "clock", lambda: NOW)
    return rt


def _gc(tmp_path: Path, cache: BlobCache, *extra: str):  # type: ignore[no-untyped-def]
    return invoke(
        "--state-file",
        str(tmp_path / "state.json"),
        "--high",
        "100",
        "--low",
        "99",
        "--headroom-bytes",
        str(BLOB),
        "--mirror-cache",
        str(cache.directory),
        *extra,
    )


def test_gc_dry_run_lists_cache_blobs_first(
    tmp_path: Path, cache: BlobCache, live: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    r = _gc(tmp_path, cache, "--dry-run", "-o", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["reason"] for x in out["removed"]] == ["mirror-cache"]
    assert out["removed"][0]["id"] in {f"sha256:{n:064x}" for n in (1, 2)}
    assert len(cache.entries()) == 3 and live.removed == []  # dry run: nothing removed
    r = _gc(tmp_path, cache, "--dry-run")
    assert "mirror cache r.test/team/x@sha256:" in r.stdout
    assert "2 complete blob(s)" in r.stdout and "1 partial or in flight" in r.stdout


def test_gc_live_frees_the_cache_and_no_image(
    tmp_path: Path, cache: BlobCache, live: FakeRuntime
) -> None:
    r = _gc(tmp_path, cache, "-o", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [x["reason"] for x in out["removed"]] == ["mirror-cache"] and out["satisfied"]
    assert live.removed == []
    left = cache.entries()
    assert len(left) == 2 and sum(not e.complete for e in left) == 1  # the partial stays


def test_gc_skips_a_blob_containerd_is_ingesting(
    tmp_path: Path, cache: BlobCache, live: FakeRuntime
) -> None:
    live.pulling = {f"sha256:{1:064x}", f"sha256:{2:064x}"}
    planned = json.loads(_gc(tmp_path, cache, "--dry-run", "-o", "json").stdout)
    assert all(x["reason"] != "mirror-cache" for x in planned["removed"])  # not even planned
    r = _gc(tmp_path, cache, "-o", "json")
    out = json.loads(r.stdout)
    assert all(x["reason"] != "mirror-cache" for x in out["removed"])
    assert len(cache.entries()) == 3


def test_gc_kubelet_policy_never_touches_the_cache(
    tmp_path: Path, cache: BlobCache, live: FakeRuntime
) -> None:
    r = _gc(tmp_path, cache, "--policy", "kubelet", "-o", "json")
    out = json.loads(r.stdout)
    assert all(x["reason"] != "mirror-cache" for x in out["removed"])
    assert len(cache.entries()) == 3


def test_execute_rechecks_each_blob_just_before_removing_it(
    tmp_path: Path, cache: BlobCache, live: FakeRuntime
) -> None:
    from mlnode.gc import PolicyName as P
    from mlnode.gc import plan
    from mlnode.ops.gc_runtime import collect, execute, mirror_blobs

    one, two = f"sha256:{1:064x}", f"sha256:{2:064x}"
    got = collect(live, now=NOW, state_file=ImageStateFile(tmp_path / "state.json"))
    policy = gc_session.room_policy(4 * BLOB, ())
    the_plan = plan(
        P.ML, got.images, got.filesystem, policy, now=NOW, mirror=mirror_blobs(cache, frozenset())
    )
    assert {r.id for r in the_plan.removed if r.reason == "mirror-cache"} == {one, two}
    live.pulling = {one}  # containerd started ingesting blob 1 after the plan
    doc = cache.read_map(two)
    assert doc is not None
    cache.paths(two)[1].write_text(json.dumps({**doc, "complete": False}))  # 2 went partial
    run = execute(live, the_plan, dry_run=False, cache=cache)
    why = {o.removal.id: (o.outcome, o.detail) for o in run.outcomes}
    assert why[one] == ("skipped", "being pulled now")
    assert why[two][0] == "skipped" and "no longer complete" in why[two][1]
    assert {one, two} <= {e.digest for e in cache.entries()}


def test_unreadable_cache_is_one_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlnode.errors import InputError

    c = BlobCache(tmp_path / "mirror")
    c.ensure()

    def refuse(self: BlobCache) -> list[object]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(BlobCache, "entries", refuse)
    with pytest.raises(
        InputError, match=r"mirror: cannot read the mirror cache: Permission denied"
    ):
        measure_cache(c.directory)


def test_live_space_keeper_measures_the_real_filesystem(tmp_path: Path) -> None:
    from mlnode.errors import InsufficientSpace
    from mlnode.ops.space import live_space_keeper
    from mlnode.testing import FakeImageService, FakePullStatuses

    keeper = live_space_keeper(
        FakeImageService(),
        FakePullStatuses(),
        tmp_path,
        cache_dir=tmp_path / "no-mirror",
        state_file=None,
        reserve_bytes=0,
    )
    assert keeper.cache is None  # no such directory: no mirror
    assert "nothing freed" in keeper.ensure_room(1, what="one byte")
    with pytest.raises(InsufficientSpace, match="image"):
        keeper.ensure_room(2**62, what="an exabyte")
