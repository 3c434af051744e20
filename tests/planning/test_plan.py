"""The planner's arithmetic on concrete profiles, and its invariants on any profile."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from mlnode.planning.plan import (
    GC_PERIOD_SECONDS,
    ML_DEFAULTS,
    Plan,
    make_plan,
    plan_to_json,
)
from mlnode.planning.profile import NodeProfile, ProfileInput, resolve_profile
from mlnode.versions import Version, parse_runtime

GiB = 1024**3
TiB = 1024**4


def profile(**kw: Any) -> NodeProfile:
    return resolve_profile([ProfileInput(**kw, sources={k: "test" for k in kw})])


def thresholds(plan: Plan) -> tuple[int | None, int | None]:
    s = plan.settings
    return s.image_gc_high_threshold_percent, s.image_gc_low_threshold_percent


ONE_TIB = dict(
    image_disk_capacity_bytes=TiB,
    largest_image_bytes=15 * GiB,
    concurrent_pulls=2,
    kubernetes_version=Version(1, 30),
    runtime=parse_runtime("containerd@1.7.13"),
)


def test_one_tib_disk_two_pulls_of_15_gib() -> None:
    plan = make_plan(profile(**ONE_TIB))
    n = plan.numbers
    # t_pull = 15 GiB × 2 / 125 MB/s + 30 GiB / 150 MB/s
    assert n.download_seconds == pytest.approx(15 * GiB * 2 / 125e6)
    assert n.unpack_seconds == pytest.approx(30 * GiB / 150e6)
    assert n.images_per_pull_slot_per_period == 1.0  # a pull takes longer than 5 min
    # peak per pull = compressed blob + unpacked snapshot
    assert n.peak_footprint_bytes == 45 * GiB
    growth = math.ceil(10 * GiB * GC_PERIOD_SECONDS / 3600)
    assert n.need_bytes == 2 * 45 * GiB + growth
    # high = floor(100 − 15 − 8.87) = 76; low = 76 − ceil(45/1024·100 = 4.39) = 71
    assert plan.feasible and plan.reason is None
    assert thresholds(plan) == (76, 71)
    assert (100 - 15 - 76) / 100 * TiB >= n.need_bytes
    s = plan.settings
    assert s.image_minimum_gc_age_seconds == 720.0  # 1.5 × 472 s → 12 min
    assert s.image_maximum_gc_age_seconds == 7 * 24 * 3600.0
    assert s.image_pull_progress_deadline_seconds == 300.0
    assert s.serialize_image_pulls is False
    assert s.max_parallel_image_pulls == 2
    high_line = next(j for j in plan.justifications if j.setting.endswith("high_threshold_percent"))
    assert "headroom = 100 − 15 (imagefs.available eviction) − 76 = 9% of 1.0 TiB" in str(high_line)


def test_placement_lists_homes_and_files() -> None:
    plan = make_plan(profile(**ONE_TIB))
    assert plan.placement is not None
    by_name = {h.name: h for h in plan.homes}
    assert by_name["imageGCHighThresholdPercent"].value == 76
    assert by_name["imageMinimumGCAge"].value == "12m0s"
    deadline = next(h for h in plan.homes if h.setting == "image_pull_progress_deadline_seconds")
    assert deadline.target == "containerd"
    assert "image_pull_progress_timeout" in deadline.name
    assert deadline.file == "/etc/containerd/config.toml (version = 2)"
    assert any("KubeletConfiguration" in f for f in plan.files)


def test_tiny_shared_disk_is_infeasible_and_says_how_big() -> None:
    p = profile(image_disk_capacity_bytes=100 * GiB, shared_with_os=True, concurrent_pulls=2)
    plan = make_plan(p)
    assert not plan.feasible
    assert plan.reason is not None and "no GC thresholds fit a 100.0 GiB" in plan.reason
    assert thresholds(plan) == (None, None)
    minimum = plan.minimum_capacity_bytes
    assert minimum is not None and minimum > 100 * GiB
    assert make_plan(dataclasses.replace(p, image_disk_capacity_bytes=minimum)).feasible
    assert not make_plan(dataclasses.replace(p, image_disk_capacity_bytes=minimum - GiB)).feasible
    assert plan_to_json(plan)["feasible"] is False


def test_high_stays_below_the_eviction_line() -> None:
    plan = make_plan(profile(image_disk_capacity_bytes=100 * TiB, largest_image_bytes=GiB))
    high, _ = thresholds(plan)
    assert high is not None and high < 85


def test_eviction_percent_moves_high() -> None:
    base = profile(image_disk_capacity_bytes=2 * TiB)
    h15, _ = thresholds(make_plan(base))
    h10, _ = thresholds(make_plan(dataclasses.replace(base, imagefs_eviction_percent=10.0)))
    assert h15 is not None and h10 == h15 + 5


def test_fast_link_lands_more_than_one_image_per_slot() -> None:
    p = profile(
        image_disk_capacity_bytes=2 * TiB,
        link_bandwidth_bytes_per_second=10e9 / 8,
        unpack_bytes_per_second=1e9,
        concurrent_pulls=1,
    )
    n = make_plan(p).numbers
    assert n.pull_seconds < GC_PERIOD_SECONDS
    assert n.images_per_pull_slot_per_period == pytest.approx(GC_PERIOD_SECONDS / n.pull_seconds)
    assert n.need_bytes > 45 * GiB


def test_discard_unpacked_layers_shrinks_resident_not_peak() -> None:
    keep = make_plan(profile(**ONE_TIB)).numbers
    drop = make_plan(profile(**ONE_TIB, discard_unpacked_layers=True)).numbers
    assert drop.peak_footprint_bytes == keep.peak_footprint_bytes == 45 * GiB
    assert drop.resident_footprint_bytes == 30 * GiB
    assert keep.resident_footprint_bytes == 45 * GiB


def test_crio_keeps_only_unpacked_layers() -> None:
    kw = {**ONE_TIB, "runtime": parse_runtime("crio@1.33.0")}
    assert make_plan(profile(**kw)).numbers.resident_footprint_bytes == 30 * GiB


def test_old_kubelet_serializes_and_counts_one_pull() -> None:
    kw = {**ONE_TIB, "kubernetes_version": Version(1, 26), "concurrent_pulls": 3}
    plan = make_plan(profile(**kw))
    assert plan.settings.serialize_image_pulls is True
    assert plan.settings.max_parallel_image_pulls is None
    assert plan.numbers.effective_concurrent_pulls == 1
    assert any("cannot cap parallel pulls" in w for w in plan.warnings)


def test_one_pull_serializes() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "concurrent_pulls": 1}))
    assert plan.settings.serialize_image_pulls is True
    assert plan.settings.max_parallel_image_pulls is None


@pytest.mark.parametrize(
    ("k8s", "expected"),
    [(None, None), (Version(1, 28), None), (Version(1, 29), None), (Version(1, 30), 604800.0)],
)
def test_maximum_gc_age_only_where_the_gate_is_on(k8s: Version | None, expected: float) -> None:
    plan = make_plan(profile(**{**ONE_TIB, "kubernetes_version": k8s}))
    assert plan.settings.image_maximum_gc_age_seconds == expected
    line = next(j for j in plan.justifications if j.setting == "image_maximum_gc_age_seconds")
    if expected is None:
        assert line.value == "unset"
    else:
        assert expected > (plan.settings.image_minimum_gc_age_seconds or 0)


def test_containerd_16_has_no_deadline_and_warns() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "runtime": parse_runtime("containerd@1.6.20")}))
    assert plan.settings.image_pull_progress_deadline_seconds is None
    assert any("no pull progress deadline" in w and "Upgrade" in w for w in plan.warnings)


def test_containerd_17_early_default_is_raised_to_the_floor() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "runtime": parse_runtime("containerd@1.7.2")}))
    assert plan.settings.image_pull_progress_deadline_seconds == 300.0


def test_deadline_never_below_runtime_default_and_stall_counts() -> None:
    plan = make_plan(profile(**ONE_TIB, registry_stall_seconds=200.0))
    assert plan.settings.image_pull_progress_deadline_seconds == 600.0  # 3 × 200 s


def test_containerd_21_deadline_covers_a_giant_layer_download() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "runtime": parse_runtime("containerd@2.1.0")}))
    # 3 × 15 GiB / (125 MB/s ÷ 2 pulls) = 773 s → 13 min
    assert plan.settings.image_pull_progress_deadline_seconds == 780.0


def test_crio_default_off_is_left_off() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "runtime": parse_runtime("crio@1.33.0")}))
    assert plan.settings.image_pull_progress_deadline_seconds is None
    line = next(
        j for j in plan.justifications if j.setting == "image_pull_progress_deadline_seconds"
    )
    assert "off" in line.formula


def test_crio_10s_default_is_raised_past_layer_unpack() -> None:
    plan = make_plan(profile(**{**ONE_TIB, "runtime": parse_runtime("crio@1.31.3")}))
    # 3 × 30 GiB / 150 MB/s = 644 s → 11 min
    assert plan.settings.image_pull_progress_deadline_seconds == 660.0
    home = next(h for h in plan.homes if h.setting == "image_pull_progress_deadline_seconds")
    assert home.name == "[crio.image] pull_progress_timeout"


def test_unknown_versions_skip_placement_with_a_warning() -> None:
    plan = make_plan(profile(image_disk_capacity_bytes=TiB))
    assert plan.placement is None and plan.homes == ()
    assert any("unknown" in w for w in plan.warnings)


def test_ml_defaults_all_have_reasons() -> None:
    assert all(d.reason and d.shown for d in ML_DEFAULTS)
    assert {d.key for d in ML_DEFAULTS} >= {
        "largest_image_bytes",
        "unpack_ratio",
        "link_bandwidth_bytes_per_second",
        "concurrent_pulls",
        "other_writers_growth_bytes_per_hour",
    }


# ---------------------------------------------------------------------------------------
# Properties

profiles = st.builds(
    lambda cap, image, ratio, pulls, bw, growth, evict, other, shared, runtime, k8s: dict(
        image_disk_capacity_bytes=cap,
        largest_image_bytes=image,
        unpack_ratio=ratio,
        concurrent_pulls=pulls,
        link_bandwidth_bytes_per_second=bw,
        other_writers_growth_bytes_per_hour=growth,
        imagefs_eviction_percent=evict,
        other_data_bytes=other,
        shared_with_os=shared,
        runtime=runtime,
        kubernetes_version=k8s,
    ),
    st.integers(20 * GiB, 50 * TiB),
    st.integers(100 * 1024**2, 60 * GiB),
    st.floats(1.0, 4.0),
    st.integers(1, 8),
    st.floats(10e6, 10e9),
    st.integers(0, 200 * GiB),
    st.sampled_from([0.0, 5.0, 10.0, 15.0, 20.0, 33.3]),
    st.integers(0, 200 * GiB),
    st.booleans(),
    st.none()
    | st.sampled_from(
        ["containerd@1.6.20", "containerd@1.7.13", "containerd@2.1.0", "crio@1.31.3", "docker"]
    ).map(parse_runtime),
    st.sampled_from([None, Version(1, 26), Version(1, 30)]),
)


@settings(max_examples=300, deadline=None)
@given(profiles)
@example(  # 256 MiB is 1.0000000001 % of this disk: the gap must be 2 %, not 1 %
    dict(
        image_disk_capacity_bytes=26843545574,
        largest_image_bytes=134217728,
        unpack_ratio=1.0,
        concurrent_pulls=1,
        link_bandwidth_bytes_per_second=10000000.0,
        other_writers_growth_bytes_per_hour=0,
        imagefs_eviction_percent=0.0,
        other_data_bytes=0,
        shared_with_os=False,
        runtime=None,
        kubernetes_version=None,
    )
)
def test_feasible_plans_satisfy_every_constraint(kw: dict[str, Any]) -> None:
    assume(kw["largest_image_bytes"] <= kw["image_disk_capacity_bytes"])
    p = profile(**kw)
    plan = make_plan(p)
    high, low = thresholds(plan)
    if not plan.feasible:
        assert plan.reason and high is None and low is None
        return
    assert high is not None and low is not None
    assert 0 <= low < high <= 100
    c = p.image_disk_capacity_bytes
    n = plan.numbers
    e = Fraction(p.imagefs_eviction_percent)  # exact: a float check rounds at the edges
    assert high < 100 - e
    assert (100 - e - high) * c >= 100 * n.need_bytes
    assert (high - low) * c >= 100 * n.resident_footprint_bytes
    assert 100 * n.unremovable_bytes < high * c
    age = plan.settings.image_minimum_gc_age_seconds
    assert age is not None and age >= 120 and age >= 1.5 * n.pull_seconds
    max_age = plan.settings.image_maximum_gc_age_seconds
    assert max_age is None or max_age > age


@settings(max_examples=300, deadline=None)
@given(profiles, st.floats(1.0, 5.0))
def test_a_bigger_image_never_raises_the_high_threshold(kw: dict[str, Any], k: float) -> None:
    assume(kw["largest_image_bytes"] * k <= kw["image_disk_capacity_bytes"])
    small = make_plan(profile(**kw))
    big = make_plan(profile(**{**kw, "largest_image_bytes": int(kw["largest_image_bytes"] * k)}))
    if big.feasible:
        assert small.feasible
        hs, hb = thresholds(small)[0], thresholds(big)[0]
        assert hs is not None and hb is not None and hb <= hs


@settings(max_examples=200, deadline=None)
@given(profiles)
def test_minimum_capacity_is_the_boundary(kw: dict[str, Any]) -> None:
    assume(kw["largest_image_bytes"] <= kw["image_disk_capacity_bytes"])
    p = profile(**kw)
    plan = make_plan(p)
    if plan.feasible or plan.minimum_capacity_bytes is None:
        return
    m = plan.minimum_capacity_bytes
    assert make_plan(dataclasses.replace(p, image_disk_capacity_bytes=m)).feasible
