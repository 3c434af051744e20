"""The kubelet's validation, reproduced: vectors from its validation_test.go.

The expected strings are those the kubelet's own tests assert (kubernetes
pkg/kubelet/apis/config/validation/validation_test.go), each prefixed with
"invalid configuration: ". The baseline is the test file's: high 85, low 80, burst 10, qps 5.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlnode.knowledge.validation import startup_failure_message, validate_kubelet
from mlnode.versions import Version

BASE: dict[str, Any] = {
    "image_gc_high_threshold_percent": 85,
    "image_gc_low_threshold_percent": 80,
    "registry_burst": 10,
    "registry_pull_qps": 5,
}

VECTORS = [
    (
        {"image_gc_high_threshold_percent": 101},
        "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, "
        "inclusive",
    ),
    (
        {"image_gc_low_threshold_percent": -1},
        "imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between 0 and 100, "
        "inclusive",
    ),
    (
        {"image_gc_high_threshold_percent": 0, "image_gc_low_threshold_percent": 0},
        "imageGCLowThresholdPercent (--image-gc-low-threshold) 0 must be less than "
        "imageGCHighThresholdPercent (--image-gc-high-threshold) 0",
    ),
    (
        {"image_gc_high_threshold_percent": 0, "image_gc_low_threshold_percent": 1},
        "imageGCLowThresholdPercent (--image-gc-low-threshold) 1 must be less than "
        "imageGCHighThresholdPercent (--image-gc-high-threshold) 0",
    ),
    (
        {"node_status_max_images": -2},
        "nodeStatusMaxImages (--node-status-max-images) -2 must be -1 or greater",
    ),
    ({"registry_burst": -1}, "registryBurst (--registry-burst) -1 must not be a negative number"),
    (
        {"registry_pull_qps": -1},
        "registryPullQPS (--registry-qps) -1 must not be a negative number",
    ),
    ({"max_parallel_image_pulls": 0}, "maxParallelImagePulls 0 must be a positive number"),
    (
        {"max_parallel_image_pulls": 3, "serialize_image_pulls": True},
        "maxParallelImagePulls cannot be larger than 1 unless SerializeImagePulls "
        "(--serialize-image-pulls) is set to false",
    ),
]


@pytest.mark.parametrize(("override", "expected"), VECTORS)
def test_kubelet_test_vectors_1_32(override: dict[str, Any], expected: str) -> None:
    failures = validate_kubelet({**BASE, **override}, Version(1, 32), {})
    messages = [f.message for f in failures]
    assert "invalid configuration: " + expected in messages


def test_baseline_is_valid_in_every_known_version() -> None:
    for minor in range(20, 36):
        assert validate_kubelet(BASE, Version(1, minor), {}) == []


def test_max_parallel_one_with_serialize_is_valid() -> None:
    settings = {**BASE, "max_parallel_image_pulls": 1, "serialize_image_pulls": True}
    assert validate_kubelet(settings, Version(1, 30), {}) == []


def test_unset_serialize_follows_max_parallel_from_1_27() -> None:
    # defaults.go: serializeImagePulls unset and maxParallelImagePulls >= 2 -> false.
    assert validate_kubelet({**BASE, "max_parallel_image_pulls": 4}, Version(1, 27), {}) == []


def test_max_gc_age_rules_with_gate() -> None:
    gates = {"ImageMaximumGCAge": True}
    neg = validate_kubelet({**BASE, "image_maximum_gc_age_seconds": -1e-9}, Version(1, 30), gates)
    assert [f.message for f in neg] == [
        "invalid configuration: imageMaximumGCAge -1ns must not be negative"
    ]
    low = validate_kubelet(
        {**BASE, "image_maximum_gc_age_seconds": 60, "image_minimum_gc_age_seconds": 120},
        Version(1, 30),
        gates,
    )
    assert [f.message for f in low] == [
        "invalid configuration: imageMaximumGCAge 1m0s must be greater than imageMinimumGCAge 2m0s"
    ]


def test_max_gc_age_gate_wording_changed_in_1_30() -> None:
    settings = {**BASE, "image_maximum_gc_age_seconds": 3600}
    m129 = validate_kubelet(settings, Version(1, 29), {})[0].message
    m130 = validate_kubelet(settings, Version(1, 30), {})[0].message
    assert m129.endswith("configuration option ImageMaximumGCAge")
    assert m130.endswith("configuration option imageMaximumGCAge")


def test_max_gc_age_not_checked_before_1_29() -> None:
    settings = {**BASE, "image_maximum_gc_age_seconds": -5}
    assert validate_kubelet(settings, Version(1, 28), {}) == []


def test_capitalised_wording_in_1_20() -> None:
    failures = validate_kubelet(
        {**BASE, "image_gc_high_threshold_percent": 101}, Version(1, 20), {}
    )
    assert failures[0].message.startswith("invalid configuration: ImageGCHighThresholdPercent ")


def test_node_status_max_images_value_only_from_1_24() -> None:
    settings = {**BASE, "node_status_max_images": -2}
    assert validate_kubelet(settings, Version(1, 23), {})[0].message == (
        "invalid configuration: nodeStatusMaxImages (--node-status-max-images) must be -1 or "
        "greater"
    )


def test_zero_burst_and_zero_min_age_are_defaulted_not_rejected() -> None:
    settings = {
        **BASE,
        "registry_burst": 0,
        "image_minimum_gc_age_seconds": 0,
        "image_maximum_gc_age_seconds": 60,
    }
    failures = validate_kubelet(settings, Version(1, 30), {"ImageMaximumGCAge": True})
    # min age 0 becomes 2m, so a 1m maximum is below it.
    assert [f.rule for f in failures] == ["max-gc-age-above-min"]


def test_startup_message_aggregates_like_the_kubelet() -> None:
    failures = validate_kubelet(
        {**BASE, "image_gc_high_threshold_percent": 101, "registry_burst": -1}, Version(1, 28), {}
    )
    text = startup_failure_message(failures, Version(1, 28))
    assert text.startswith(
        "failed to validate kubelet configuration, error: [invalid configuration: "
    )
    assert text.endswith("must not be a negative number]")
