"""The kubelet policy against the scenarios of the kubelet's own image_gc_manager_test.go.

Each tests/data/gc/kubelet_*.json is a snapshot with the plan the kubelet's test asserts
(``_expect``), or the error it expects (``_expect_error``); ``_source`` names the test.
``kubelet_src_*.json`` cases come from reading image_gc_manager.go itself (``_source``
names file, function and lines; ``_before`` says what mlnode did before issue 8).
Optional keys: ``_expect_exit`` (default 0 if satisfied, else 1) and ``_expect_human``
(phrases the human output must contain, whitespace-insensitive).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from gc_helpers import invoke, ts

from mlnode.gc import (
    GO_ZERO_TIME,
    FilesystemState,
    GcImage,
    GcPolicy,
    InvalidCapacity,
    InvalidGcInput,
    plan_kubelet,
    plan_ml,
)

DATA = Path(__file__).parent / "data" / "gc"
SCENARIOS = sorted(DATA.glob("kubelet_*.json"))
NOW = ts("2024-05-01T12:00:00+00:00")


def test_scenarios_exist() -> None:
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_kubelet_scenario(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["_source"]
    result = invoke("--snapshot", str(path), "--policy", "kubelet", "--output", "json")
    if "_expect_error" in doc:
        assert result.exit_code == doc["_expect_exit"], result.output
        assert doc["_expect_error"] in result.output
        assert str(path) in result.output
        return
    expect = doc["_expect"]
    assert json.loads(result.stdout) == expect
    exit_code = doc.get("_expect_exit", 0 if expect["satisfied"] else 1)
    assert result.exit_code == exit_code, result.output
    if "_expect_human" in doc:
        human = invoke("--snapshot", str(path), "--policy", "kubelet")
        assert human.exit_code == exit_code, human.output
        assert "Traceback" not in human.output
        flat = " ".join(human.output.split())
        for phrase in doc["_expect_human"]:
            assert phrase in flat, human.output


def test_source_cases_name_their_lines() -> None:
    cases = [p for p in SCENARIOS if p.stem.startswith("kubelet_src_")]
    assert len(cases) >= 15
    for path in cases:
        doc = json.loads(path.read_text())
        assert "image_gc_manager.go" in doc["_source"] or "kubelet.go" in doc["_source"], path


def _img(image_id: str, size: int, **kw: object) -> GcImage:
    kw.setdefault("first_detected", GO_ZERO_TIME)
    return GcImage(id=image_id, size_bytes=size, **kw)  # type: ignore[arg-type]


def test_capacity_zero_is_the_kubelets_error_after_the_age_pass() -> None:
    # image_gc_manager.go GarbageCollect: freeOldImages runs, then "invalid capacity 0".
    stale = _img("stale", 7, last_used=NOW - timedelta(days=2))
    fresh = _img("fresh", 9, last_used=NOW - timedelta(hours=1))
    policy = GcPolicy(minimum_age_seconds=0, maximum_age_seconds=86400)
    plan = plan_kubelet(
        [stale, fresh], FilesystemState(capacity_bytes=0, available_bytes=0), policy, now=NOW
    )
    assert plan.error == "invalid capacity 0 on image filesystem"
    assert [(r.id, r.reason) for r in plan.removed] == [("stale", "age")]
    assert not plan.satisfied and plan.triggered and plan.bytes_freed == 7
    assert [k.id for k in plan.kept] == ["fresh"]
    empty = plan_kubelet(
        [], FilesystemState(capacity_bytes=0, available_bytes=0), GcPolicy(), now=NOW
    )
    assert empty.error is not None and empty.removed == () and not empty.satisfied


def test_ml_policy_still_refuses_capacity_zero() -> None:
    with pytest.raises(InvalidCapacity, match="invalid capacity 0 on image filesystem"):
        plan_ml([], FilesystemState(capacity_bytes=0, available_bytes=0), GcPolicy(), now=NOW)


def test_available_over_capacity_is_clamped_not_refused() -> None:
    fs = FilesystemState(capacity_bytes=1000, available_bytes=1500)
    assert fs.over_reported and fs.usage_percent == 0
    assert fs.clamped() == FilesystemState(capacity_bytes=1000, available_bytes=1000)
    for planner in (plan_kubelet, plan_ml):
        plan = planner([_img("a", 10)], fs, GcPolicy(), now=NOW)
        assert plan.available_bytes == 1000 and plan.usage_percent == 0 and plan.satisfied
        assert any("larger than capacity" in e for e in plan.explanations)


@pytest.mark.parametrize(
    ("high", "low", "message"),
    [
        (-1, 0, "between 0 and 100"),
        (101, 0, "between 0 and 100"),
        (90, -1, "between 0 and 100"),
        (90, 101, "between 0 and 100"),
        (1, 2, "must be less than"),
        (80, 80, "must be less than"),
    ],
)
def test_policy_validation_TestValidateImageGCPolicy(high: int, low: int, message: str) -> None:
    # TestValidateImageGCPolicy checks range and low > high; the kubelet's config
    # validation also rejects low == high, and mlnode follows the stricter rule.
    with pytest.raises(InvalidGcInput, match=message):
        GcPolicy(high_threshold_percent=high, low_threshold_percent=low)


def test_policy_max_age_must_exceed_min_age() -> None:
    with pytest.raises(InvalidGcInput, match="greater than minimum_age_seconds"):
        GcPolicy(minimum_age_seconds=120, maximum_age_seconds=60)


def test_go_int64_arithmetic_on_huge_filesystems() -> None:
    # capacity*(100-low) overflows int64 above ~92 PB; Go wraps, and so does the model.
    cap = 2**62
    fs = FilesystemState(capacity_bytes=cap, available_bytes=0)
    plan = plan_kubelet(
        [_img("a", 1, last_used=NOW - timedelta(hours=1))],
        fs,
        GcPolicy(high_threshold_percent=90, low_threshold_percent=80, minimum_age_seconds=0),
        now=NOW,
    )
    wrapped = ((cap * 20 + 2**63) % 2**64) - 2**63
    expected = -(abs(wrapped) // 100) if wrapped < 0 else wrapped // 100
    assert plan.bytes_to_free == expected


def test_explanations_and_kept_reasons() -> None:
    images = [
        _img("used", 10, in_use=True),
        _img("pinned", 10, pinned=True),
        _img("pulling", 10, being_pulled=True),
        _img("young", 10, first_detected=NOW - timedelta(seconds=30)),
        _img("old", 10, last_used=NOW - timedelta(days=1)),
    ]
    plan = plan_kubelet(
        images,
        FilesystemState(capacity_bytes=1000, available_bytes=100),
        GcPolicy(high_threshold_percent=85, low_threshold_percent=80, minimum_age_seconds=120),
        now=NOW,
    )
    assert [r.id for r in plan.removed] == ["old"]
    reasons = {k.id: k.reason for k in plan.kept}
    assert reasons == {
        "used": "in use by a container",
        "pinned": "pinned by the runtime",
        "pulling": "being pulled",
        "young": "younger than the minimum age",
    }
    assert not plan.satisfied
    assert any("FreeDiskSpaceFailed" in e for e in plan.explanations)


def test_ml_policy_capacity_zero_snapshot_is_one_line_exit_2() -> None:
    path = DATA / "kubelet_src_capacity_0_after_age_pass.json"
    result = invoke("--snapshot", str(path), "--policy", "ml")
    assert result.exit_code == 2
    assert result.output == (
        "mlnode: error: filesystem.capacity_bytes: invalid capacity 0 on image filesystem\n"
    )
