"""The ml policy, and properties both planners must keep (hypothesis)."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gc_helpers import invoke, ts
from hypothesis import given, settings
from hypothesis import strategies as st

from mlnode.gc import (
    GO_ZERO_TIME,
    FilesystemState,
    GcImage,
    GcPlan,
    GcPolicy,
    PolicyName,
    fewest_lru_cover,
    plan,
    plan_kubelet,
    plan_ml,
    plan_to_json,
)

NOW = ts("2024-05-01T12:00:00+00:00")
GiB = 1024**3


def img(image_id: str, size: int, *, hours_ago: float | None = None, **kw: Any) -> GcImage:
    kw.setdefault("first_detected", NOW - timedelta(days=30))
    last = NOW - timedelta(hours=hours_ago) if hours_ago is not None else None
    return GcImage(id=image_id, size_bytes=size, last_used=last, **kw)


def policy(**kw: Any) -> GcPolicy:
    base: dict[str, Any] = {
        "high_threshold_percent": 85,
        "low_threshold_percent": 80,
        "minimum_age_seconds": 120,
        "maximum_age_seconds": 0,
    }
    base.update(kw)
    return GcPolicy(**base)


def fs(capacity: int, available: int) -> FilesystemState:
    return FilesystemState(capacity_bytes=capacity, available_bytes=available)


def ids(p: GcPlan) -> list[str]:
    return [r.id for r in p.removed]


# --- scenarios -------------------------------------------------------------------------


def test_nothing_to_do_below_high_with_headroom() -> None:
    p = plan_ml([img("a", 10 * GiB, hours_ago=5)], fs(1000 * GiB, 500 * GiB), policy(), now=NOW)
    assert p.removed == () and p.satisfied and not p.triggered and p.bytes_to_free == 0


def test_headroom_triggers_below_high_threshold() -> None:
    # 25% used, well below 85%, but only 30 GiB free and a 40 GiB image on the node.
    images = [img("big", 40 * GiB, hours_ago=1, in_use=True), img("old", 20 * GiB, hours_ago=48)]
    p = plan_ml(images, fs(120 * GiB, 30 * GiB), policy(), now=NOW)
    assert p.triggered and p.headroom_bytes == 40 * GiB
    assert p.bytes_to_free == 10 * GiB
    assert ids(p) == ["old"] and p.satisfied


def test_explicit_headroom_and_declared_largest_image() -> None:
    images = [img("a", 5 * GiB, hours_ago=10), img("b", 5 * GiB, hours_ago=9)]
    p = plan_ml(images, fs(100 * GiB, 50 * GiB), policy(largest_image_bytes=55 * GiB), now=NOW)
    assert p.headroom_bytes == 55 * GiB and ids(p) == ["a"]
    p = plan_ml(images, fs(100 * GiB, 50 * GiB), policy(headroom_bytes=58 * GiB), now=NOW)
    assert p.headroom_bytes == 58 * GiB and ids(p) == ["a", "b"] and p.satisfied


def test_fewer_images_than_the_kubelet() -> None:
    # 86% used, low target 200 bytes available: 60 needed. LRU: a (30) then b (65).
    # The kubelet removes both; ml only b.
    fsys = fs(1000, 140)
    pol = policy(headroom_bytes=0)
    images = [img("a", 30, hours_ago=10), img("b", 65, hours_ago=9), img("c", 500, hours_ago=1)]
    k = plan_kubelet(images, fsys, pol, now=NOW)
    m = plan_ml(images, fsys, pol, now=NOW)
    assert ids(k) == ["a", "b"]
    assert ids(m) == ["b"]
    assert k.bytes_to_free == m.bytes_to_free == 60 and m.satisfied


def test_never_reaches_past_the_lru_prefix() -> None:
    # Four cold small images are needed; one recently used big one would do alone,
    # but ml never removes an image more recently used than the kubelet would.
    images = [img(f"s{i}", 3, hours_ago=100 - i) for i in range(4)]
    images.append(img("recent-big", 50, hours_ago=0.5))
    chosen = fewest_lru_cover(sorted(images, key=lambda i: i.last_used or GO_ZERO_TIME), 10)
    assert [i.id for i in chosen] == ["s0", "s1", "s2", "s3"]


def test_fewest_cover_prefers_oldest_among_minimal() -> None:
    order = [img("a", 6, hours_ago=9), img("b", 6, hours_ago=8), img("c", 6, hours_ago=7)]
    assert [i.id for i in fewest_lru_cover(order, 12)] == ["a", "b"]
    order = [img("a", 2, hours_ago=9), img("b", 9, hours_ago=8), img("c", 9, hours_ago=7)]
    assert [i.id for i in fewest_lru_cover(order, 12)] == ["b", "c"]
    assert fewest_lru_cover(order, 0) == []
    assert [i.id for i in fewest_lru_cover(order, 100)] == ["a", "b", "c"]


def test_keep_patterns_match_names_and_ids() -> None:
    images = [
        img("sha256:aaa", 50, hours_ago=10, names=("nvcr.io/nvidia/pytorch:24.05",)),
        img("sha256:bbb", 50, hours_ago=9, names=("docker.io/library/busybox:1",)),
        img("sha256:ccc", 50, hours_ago=8),
    ]
    p = plan_ml(
        images,
        fs(1000, 100),
        policy(headroom_bytes=0, keep_patterns=("nvcr.io/nvidia/*", "sha256:cc*")),
        now=NOW,
    )
    assert ids(p) == ["sha256:bbb"]
    kept = {k.id: k.reason for k in p.kept}
    assert kept["sha256:aaa"] == "matches --keep nvcr.io/nvidia/*"
    assert kept["sha256:ccc"] == "matches --keep sha256:cc*"
    assert not p.satisfied


def test_headroom_unreachable_removes_nothing() -> None:
    images = [img("a", 10, hours_ago=10), img("b", 10, hours_ago=9)]
    p = plan_ml(images, fs(1000, 500), policy(headroom_bytes=600), now=NOW)
    assert p.triggered and p.removed == () and not p.satisfied and p.bytes_to_free == 100
    assert any("would not make room" in e for e in p.explanations)


def test_over_high_and_unreachable_frees_towards_low_target() -> None:
    images = [img("a", 40, hours_ago=10), img("b", 40, hours_ago=9), img("c", 200, hours_ago=1)]
    # 90% used; low target 200 available (need 100); headroom 400 (need 300) unreachable
    # with 280 eligible bytes: free towards the low target only.
    p = plan_ml(images, fs(1000, 100), policy(headroom_bytes=400), now=NOW)
    assert ids(p) == ["c"] and not p.satisfied and p.bytes_to_free == 300


def test_protections() -> None:
    images = [
        img("in-use", 100, hours_ago=50, in_use=True),
        img("pinned", 100, hours_ago=50, pinned=True),
        img("pulling", 100, hours_ago=None, being_pulled=True),
        img("young", 100, first_detected=NOW - timedelta(seconds=60)),
        img("future", 100, hours_ago=-1),
    ]
    p = plan_ml(images, fs(1000, 10), policy(headroom_bytes=0), now=NOW)
    assert p.removed == () and not p.satisfied
    assert {k.id for k in p.kept} == {i.id for i in images}


def test_max_age_ages_never_used_images_from_first_detection() -> None:
    pol = policy(minimum_age_seconds=120, maximum_age_seconds=3600, headroom_bytes=0)
    images = [
        img("fresh-unused", 700, first_detected=NOW - timedelta(minutes=30)),
        img("old-unused", 100, first_detected=NOW - timedelta(hours=2)),
        img("stale", 100, hours_ago=3),
    ]
    m = plan_ml(images, fs(1000, 600), pol, now=NOW)
    k = plan_kubelet(images, fs(1000, 600), pol, now=NOW)
    assert sorted(ids(m)) == ["old-unused", "stale"]
    assert all(r.reason == "age" for r in m.removed)
    assert "fresh-unused" in ids(k)  # the kubelet counts never-used as infinitely old


def test_plan_dispatch_and_json_shape() -> None:
    images = [img("a", 450, hours_ago=3)]
    p = plan(PolicyName.KUBELET, images, fs(1000, 50), policy(minimum_age_seconds=0), now=NOW)
    assert plan_to_json(p) == {
        "bytes_to_free": 150,
        "removed": [{"id": "a", "size_bytes": 450, "reason": "space"}],
        "bytes_freed": 450,
        "satisfied": True,
    }
    assert plan(PolicyName.ML, images, fs(1000, 50), policy(), now=NOW).policy is PolicyName.ML


# --- the CLI with the ml policy ----------------------------------------------------------


def _snapshot(tmp_path: Path, **over: Any) -> Path:
    doc: dict[str, Any] = {
        "now": "2024-05-01T12:00:00Z",
        "filesystem": {"capacity_bytes": 1000 * GiB, "available_bytes": 100 * GiB},
        "policy": {
            "high_threshold_percent": 85,
            "low_threshold_percent": 80,
            "minimum_age_seconds": 120,
            "maximum_age_seconds": 0,
        },
        "images": [
            {
                "id": "sha256:old",
                "size_bytes": 120 * GiB,
                "pinned": False,
                "in_use": False,
                "last_used": "2024-04-01T00:00:00Z",
                "first_detected": "2024-03-01T00:00:00Z",
                "names": ["nvcr.io/nvidia/pytorch:24.01"],
            },
            {
                "id": "sha256:mid",
                "size_bytes": 30 * GiB,
                "pinned": False,
                "in_use": False,
                "last_used": "2024-04-15T00:00:00Z",
                "first_detected": "2024-03-01T00:00:00Z",
            },
            {
                "id": "sha256:run",
                "size_bytes": 40 * GiB,
                "pinned": False,
                "in_use": True,
                "last_used": "2024-05-01T11:59:00Z",
                "first_detected": "2024-03-01T00:00:00Z",
            },
        ],
    }
    doc.update(over)
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    return path


def test_cli_ml_json(tmp_path: Path) -> None:
    r = invoke("--snapshot", str(_snapshot(tmp_path)), "--output", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "bytes_to_free": 100 * GiB,
        "removed": [{"id": "sha256:old", "size_bytes": 120 * GiB, "reason": "space"}],
        "bytes_freed": 120 * GiB,
        "satisfied": True,
    }


def test_cli_flags_override_snapshot(tmp_path: Path) -> None:
    snap = str(_snapshot(tmp_path))
    r = invoke("--snapshot", snap, "-o", "json", "--keep", "nvcr.io/*")
    assert r.exit_code == 1  # 30 GiB eligible, 100 GiB needed
    assert [x["id"] for x in json.loads(r.stdout)["removed"]] == ["sha256:mid"]
    # 90% used is below --high 95, but the largest image (120 GiB) does not fit in 100 GiB.
    r = invoke("--snapshot", snap, "-o", "json", "--high", "95", "--low", "90")
    assert json.loads(r.stdout)["bytes_to_free"] == 20 * GiB and r.exit_code == 0
    r = invoke(
        "--snapshot", snap, "-o", "json", "--high", "95", "--low", "90", "--headroom-bytes", "0"
    )
    assert json.loads(r.stdout)["removed"] == [] and r.exit_code == 0
    r = invoke(
        "--snapshot",
        snap,
        "-o",
        "json",
        "--high",
        "95",
        "--low",
        "90",
        "--headroom-bytes",
        "125GiB",
        "--keep",
        "nvcr.io/*",
    )
    out = json.loads(r.stdout)
    assert out["bytes_to_free"] == 25 * GiB and r.exit_code == 0
    assert [x["id"] for x in out["removed"]] == ["sha256:mid"]
    r = invoke(
        "--snapshot",
        snap,
        "-o",
        "json",
        "--maximum-age",
        "168h",
        "--high",
        "95",
        "--low",
        "90",
        "--headroom-bytes",
        "0",
    )
    assert [(x["id"], x["reason"]) for x in json.loads(r.stdout)["removed"]] == [
        ("sha256:old", "age"),
        ("sha256:mid", "age"),
    ]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--low", "90"], "--low"),
        (["--high", "101"], "--high"),
        (["--minimum-age", "soon"], "--minimum-age"),
        (["--minimum-age", "10m", "--maximum-age", "5m"], "--maximum-age"),
        (["--headroom-bytes", "lots"], "--headroom-bytes"),
    ],
)
def test_cli_bad_flags_exit_2(tmp_path: Path, args: list[str], flag: str) -> None:
    r = invoke("--snapshot", str(_snapshot(tmp_path)), *args)
    assert r.exit_code == 2
    assert flag in r.output and r.output.count("\n") == 1


def test_cli_human_output(tmp_path: Path) -> None:
    r = invoke("--snapshot", str(_snapshot(tmp_path)))
    assert r.exit_code == 0
    assert "Would remove" in r.output and "nvcr.io/nvidia/pytorch:24.01" in r.output
    assert "target satisfied" in r.output and "in use by a container" in r.output


# --- properties ------------------------------------------------------------------------

_times = st.one_of(
    st.none(),
    st.integers(min_value=-7200, max_value=30 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
)


_first_detected = st.one_of(
    st.just(GO_ZERO_TIME),
    st.integers(min_value=0, max_value=40 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
)
_image_fields = st.tuples(
    st.integers(min_value=0, max_value=400),  # size
    st.booleans(),  # pinned
    st.booleans(),  # in use
    st.sampled_from([False, False, False, True]),  # being pulled
    _times,
    _first_detected,
)


def _to_images(rows: list[tuple[int, bool, bool, bool, Any, Any]]) -> list[GcImage]:
    return [
        GcImage(
            id=f"img-{k}",
            size_bytes=size,
            pinned=pinned,
            in_use=in_use,
            being_pulled=pulling,
            last_used=last,
            first_detected=first,
            names=(f"repo/app-{k % 3}:v{k}",),
        )
        for k, (size, pinned, in_use, pulling, last, first) in enumerate(rows)
    ]


def _images() -> st.SearchStrategy[list[GcImage]]:
    return st.lists(_image_fields, max_size=9).map(_to_images)


@st.composite
def _policies(draw: st.DrawFn) -> GcPolicy:
    high = draw(st.integers(min_value=1, max_value=100))
    low = draw(st.integers(min_value=0, max_value=high - 1))
    min_age = draw(st.sampled_from([0, 60, 120, 3600]))
    max_age = draw(st.sampled_from([0, 0, 7200, 86400, 7 * 86400]))
    if max_age and max_age <= min_age:
        max_age = 0
    return GcPolicy(
        high_threshold_percent=high,
        low_threshold_percent=low,
        minimum_age_seconds=min_age,
        maximum_age_seconds=max_age,
        kubelet_uptime_seconds=draw(st.one_of(st.none(), st.sampled_from([0, 3600, 10**6]))),
        headroom_bytes=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=600))),
        keep_patterns=draw(st.sampled_from([(), ("repo/app-1:*",)])),
    )


@st.composite
def _filesystems(draw: st.DrawFn) -> FilesystemState:
    capacity = draw(st.integers(min_value=1, max_value=2000))
    return fs(capacity, draw(st.integers(min_value=0, max_value=capacity)))


def _common_invariants(p: GcPlan, images: list[GcImage]) -> None:
    by_id = {i.id: i for i in images}
    removed = [by_id[r.id] for r in p.removed]
    assert len({i.id for i in removed}) == len(removed)
    assert not any(i.in_use or i.pinned or i.being_pulled for i in removed)
    assert p.bytes_freed == sum(r.size_bytes for r in p.removed)
    assert p.satisfied == (p.bytes_freed >= p.bytes_to_free)
    assert all(r.size_bytes == by_id[r.id].size_bytes for r in p.removed)
    assert {r.id for r in p.removed}.isdisjoint(k.id for k in p.kept)
    assert {r.id for r in p.removed} | {k.id for k in p.kept} == set(by_id)


@settings(max_examples=300, deadline=None)
@given(_images(), _filesystems(), _policies())
def test_properties_kubelet(images: list[GcImage], fsys: FilesystemState, pol: GcPolicy) -> None:
    p = plan_kubelet(images, fsys, pol, now=NOW)
    _common_invariants(p, images)
    if pol.maximum_age_seconds == 0:
        assert all(r.reason == "space" for r in p.removed)
        high = pol.high_threshold_percent
        if high == 100 or fsys.usage_percent < high:
            assert p.removed == () and p.satisfied and p.bytes_to_free == 0
    by_id = {i.id: i for i in images}
    space = [by_id[r.id] for r in p.removed if r.reason == "space"]
    for i in space:
        assert (i.last_used or GO_ZERO_TIME) < NOW
        assert NOW - i.first_detected >= pol.minimum_age
    # space removals come in eviction order and stop as soon as the amount is reached
    keys = [((i.last_used or GO_ZERO_TIME), i.first_detected, i.id) for i in space]
    assert keys == sorted(keys)
    age_bytes = sum(r.size_bytes for r in p.removed if r.reason == "age")
    amount = p.bytes_to_free - age_bytes
    if len(space) > 1:
        assert sum(i.size_bytes for i in space[:-1]) < amount


def _reference_kubelet_space(
    images: list[GcImage], fsys: FilesystemState, pol: GcPolicy
) -> tuple[int, list[str]]:
    """An independent straight reading of GarbageCollect/freeSpace (no max age)."""
    cap, avail = fsys.capacity_bytes, fsys.available_bytes
    if pol.high_threshold_percent == 100:
        return 0, []
    usage = 100 - (avail * 100) // cap
    if usage < pol.high_threshold_percent:
        return 0, []
    amount = cap * (100 - pol.low_threshold_percent) // 100 - avail
    order = sorted(
        (i for i in images if not (i.in_use or i.pinned or i.being_pulled)),
        key=lambda i: (i.last_used or GO_ZERO_TIME, i.first_detected, i.id),
    )
    freed, out = 0, []
    for i in order:
        if (i.last_used or GO_ZERO_TIME) >= NOW:
            continue
        if NOW - i.first_detected < pol.minimum_age:
            continue
        out.append(i.id)
        freed += i.size_bytes
        if freed >= amount:
            break
    return amount, out


@settings(max_examples=300, deadline=None)
@given(_images(), _filesystems(), _policies())
def test_kubelet_matches_reference(
    images: list[GcImage], fsys: FilesystemState, pol: GcPolicy
) -> None:
    pol = GcPolicy(
        high_threshold_percent=pol.high_threshold_percent,
        low_threshold_percent=pol.low_threshold_percent,
        minimum_age_seconds=pol.minimum_age_seconds,
    )
    amount, removed = _reference_kubelet_space(images, fsys, pol)
    p = plan_kubelet(images, fsys, pol, now=NOW)
    assert p.bytes_to_free == amount
    assert ids(p) == removed


def _min_cover_count(sizes: list[int], need: int) -> int:
    for k in range(len(sizes) + 1):
        if any(sum(c) >= need for c in itertools.combinations(sizes, k)):
            return k
    return len(sizes)


@settings(max_examples=300, deadline=None)
@given(_images(), _filesystems(), _policies())
def test_properties_ml(images: list[GcImage], fsys: FilesystemState, pol: GcPolicy) -> None:
    p = plan_ml(images, fsys, pol, now=NOW)
    _common_invariants(p, images)
    by_id = {i.id: i for i in images}
    for r in p.removed:
        i = by_id[r.id]
        assert NOW - i.first_detected >= pol.minimum_age
        assert (i.last_used or GO_ZERO_TIME) < NOW
        assert not (pol.keep_patterns and any(n.startswith("repo/app-1:") for n in i.names))
    if pol.maximum_age_seconds == 0:
        headroom = p.headroom_bytes or 0
        if fsys.usage_percent < pol.high_threshold_percent and fsys.available_bytes >= headroom:
            assert p.removed == () and p.satisfied and not p.triggered

    # Space removals: never more images than needed.
    space = [by_id[r.id] for r in p.removed if r.reason == "space"]
    if space:
        age_bytes = sum(r.size_bytes for r in p.removed if r.reason == "age")
        need = p.bytes_to_free - age_bytes
        freed = sum(i.size_bytes for i in space)
        if freed >= need:
            # every removed image is necessary ...
            assert all(freed - i.size_bytes < need for i in space)
            # ... and no smaller set from the same LRU prefix would do
            kept_ids = {k.id for k in p.kept if k.reason == "not needed"}
            pool = sorted(
                [i for i in images if i.id in kept_ids or i in space],
                key=lambda i: (i.last_used or GO_ZERO_TIME, i.first_detected, i.id),
            )
            prefix, total = [], 0
            for i in pool:
                prefix.append(i.size_bytes)
                total += i.size_bytes
                if total >= need:
                    break
            assert len(space) == _min_cover_count(prefix, need)


@settings(max_examples=200, deadline=None)
@given(_images(), _filesystems(), _policies())
def test_ml_never_removes_more_images_than_kubelet(
    images: list[GcImage], fsys: FilesystemState, pol: GcPolicy
) -> None:
    # Same inputs, no age pass, no headroom, no keep: ml removes a subset-sized set.
    pol = GcPolicy(
        high_threshold_percent=pol.high_threshold_percent,
        low_threshold_percent=pol.low_threshold_percent,
        minimum_age_seconds=pol.minimum_age_seconds,
        headroom_bytes=0,
    )
    if pol.high_threshold_percent == 100:
        return
    k = plan_kubelet(images, fsys, pol, now=NOW)
    m = plan_ml(images, fsys, pol, now=NOW)
    assert len(m.removed) <= len(k.removed)
    if k.satisfied:
        assert m.satisfied
