"""The kubelet's own validation of the image-related fields, version by version.

Rules are rows: the version span in which the kubelet checks them, a predicate over the
effective (defaulted, merged) configuration, and the kubelet's message. The kubelet runs
these on the merged result of config file, drop-ins and flags, and refuses to start with
"failed to validate kubelet configuration, error: ..." when any fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlnode.knowledge.spans import Span, v
from mlnode.knowledge.table import kubelet_setting
from mlnode.units import format_go_duration
from mlnode.versions import Version

__all__ = [
    "VALIDATION_RULES",
    "ValidationFailure",
    "ValidationRule",
    "defaulted",
    "startup_failure_message",
    "validate_kubelet",
]

Effective = Mapping[str, Any]  # ImageSettings keys -> typed values, defaults applied


@dataclass(frozen=True)
class ValidationFailure:
    rule: str
    keys: tuple[str, ...]  # ImageSettings keys involved
    message: str  # the kubelet's wording


Message = Callable[[Effective], str]


@dataclass(frozen=True)
class ValidationRule:
    rule: str
    keys: tuple[str, ...]
    span: Span
    violated: Callable[[Effective, Mapping[str, bool]], bool]
    # The kubelet's wording changed over time; the first entry whose span holds wins.
    messages: tuple[tuple[Span, Message], ...]
    source: str

    def message_for(self, effective: Effective, version: Version) -> str:
        for span, message in self.messages:
            if span.contains(version):
                return PREFIX + message(effective)
        raise AssertionError(f"no wording for {self.rule} in {version}")


def _dur(seconds: Any) -> str:
    return format_go_duration(float(seconds))


def _gate(gates: Mapping[str, bool], name: str) -> bool:
    return bool(gates.get(name, False))


PREFIX = "invalid configuration: "
ALL = Span()
# Field names in messages were capitalised up to 1.20 ([1.20] mirror, kubernetes#92967) and
# lower-case from 1.22 (kubeedge v1.12.0 vendors 1.22.6). 1.21 is unread: taken as lower-case.
CAPS = Span(until=v("1.21"))
LOWER = Span(since=v("1.21"))
_SRC = "pkg/kubelet/apis/config/validation/validation.go"
_H = "image_gc_high_threshold_percent"
_L = "image_gc_low_threshold_percent"

VALIDATION_RULES: tuple[ValidationRule, ...] = (
    ValidationRule(
        "gc-high-range",
        (_H,),
        ALL,
        lambda c, g: not 0 <= c[_H] <= 100,
        (
            (
                CAPS,
                lambda c: (
                    f"ImageGCHighThresholdPercent (--image-gc-high-threshold) {c[_H]}"
                    " must be between 0 and 100, inclusive"
                ),
            ),
            (
                LOWER,
                lambda c: (
                    f"imageGCHighThresholdPercent (--image-gc-high-threshold) {c[_H]}"
                    " must be between 0 and 100, inclusive"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "gc-low-range",
        (_L,),
        ALL,
        lambda c, g: not 0 <= c[_L] <= 100,
        (
            (
                CAPS,
                lambda c: (
                    f"ImageGCLowThresholdPercent (--image-gc-low-threshold) {c[_L]}"
                    " must be between 0 and 100, inclusive"
                ),
            ),
            (
                LOWER,
                lambda c: (
                    f"imageGCLowThresholdPercent (--image-gc-low-threshold) {c[_L]}"
                    " must be between 0 and 100, inclusive"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "gc-low-below-high",
        (_L, _H),
        ALL,
        lambda c, g: c[_L] >= c[_H],
        (
            (
                CAPS,
                lambda c: (
                    f"ImageGCLowThresholdPercent (--image-gc-low-threshold) {c[_L]} must"
                    f" be less than ImageGCHighThresholdPercent (--image-gc-high-threshold) {c[_H]}"
                ),
            ),
            (
                LOWER,
                lambda c: (
                    f"imageGCLowThresholdPercent (--image-gc-low-threshold) {c[_L]} must"
                    f" be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {c[_H]}"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "max-gc-age-gate",
        ("image_maximum_gc_age_seconds",),
        Span(since=v("1.29")),
        lambda c, g: c["image_maximum_gc_age_seconds"] != 0 and not _gate(g, "ImageMaximumGCAge"),
        (
            (
                Span(until=v("1.30")),
                lambda c: (
                    "ImageMaximumGCAge feature gate is required for"
                    " Kubelet configuration option ImageMaximumGCAge"
                ),
            ),
            (
                Span(since=v("1.30")),
                lambda c: (
                    "ImageMaximumGCAge feature gate is required for"
                    " Kubelet configuration option imageMaximumGCAge"
                ),
            ),
        ),
        _SRC + " (1.29.6: option ImageMaximumGCAge; 1.30.7+: imageMaximumGCAge)",
    ),
    ValidationRule(
        "max-gc-age-negative",
        ("image_maximum_gc_age_seconds",),
        Span(since=v("1.29")),
        lambda c, g: c["image_maximum_gc_age_seconds"] < 0,
        (
            (
                ALL,
                lambda c: (
                    f"imageMaximumGCAge {_dur(c['image_maximum_gc_age_seconds'])}"
                    " must not be negative"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "max-gc-age-above-min",
        ("image_maximum_gc_age_seconds", "image_minimum_gc_age_seconds"),
        Span(since=v("1.29")),
        lambda c, g: 0 < c["image_maximum_gc_age_seconds"] <= c["image_minimum_gc_age_seconds"],
        (
            (
                ALL,
                lambda c: (
                    f"imageMaximumGCAge {_dur(c['image_maximum_gc_age_seconds'])} must be"
                    f" greater than imageMinimumGCAge {_dur(c['image_minimum_gc_age_seconds'])}"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "max-parallel-positive",
        ("max_parallel_image_pulls",),
        Span(since=v("1.27")),
        lambda c, g: (
            c["max_parallel_image_pulls"] is not None and c["max_parallel_image_pulls"] < 1
        ),
        (
            (
                ALL,
                lambda c: (
                    f"maxParallelImagePulls {c['max_parallel_image_pulls']}"
                    " must be a positive number"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "max-parallel-needs-parallel",
        ("max_parallel_image_pulls", "serialize_image_pulls"),
        Span(since=v("1.27")),
        lambda c, g: (
            bool(c["serialize_image_pulls"])
            and c["max_parallel_image_pulls"] is not None
            and c["max_parallel_image_pulls"] > 1
        ),
        (
            (
                ALL,
                lambda c: (
                    "maxParallelImagePulls cannot be larger than 1 unless "
                    "SerializeImagePulls (--serialize-image-pulls) is set to false"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "node-status-max-images",
        ("node_status_max_images",),
        ALL,
        lambda c, g: c["node_status_max_images"] < -1,
        (
            (
                CAPS,
                lambda c: "NodeStatusMaxImages (--node-status-max-images) must be -1 or greater",
            ),
            (
                Span(since=v("1.21"), until=v("1.24")),
                lambda c: "nodeStatusMaxImages (--node-status-max-images) must be -1 or greater",
            ),
            (
                Span(since=v("1.24")),
                lambda c: (
                    "nodeStatusMaxImages (--node-status-max-images)"
                    f" {c['node_status_max_images']} must be -1 or greater"
                ),
            ),
        ),
        _SRC + " (value added in 1.24, kubernetes#105360)",
    ),
    ValidationRule(
        "registry-qps",
        ("registry_pull_qps",),
        ALL,
        lambda c, g: c["registry_pull_qps"] < 0,
        (
            (
                CAPS,
                lambda c: (
                    f"RegistryPullQPS (--registry-qps) {c['registry_pull_qps']}"
                    " must not be a negative number"
                ),
            ),
            (
                LOWER,
                lambda c: (
                    f"registryPullQPS (--registry-qps) {c['registry_pull_qps']}"
                    " must not be a negative number"
                ),
            ),
        ),
        _SRC,
    ),
    ValidationRule(
        "registry-burst",
        ("registry_burst",),
        ALL,
        lambda c, g: c["registry_burst"] < 0,
        (
            (
                CAPS,
                lambda c: (
                    f"RegistryBurst (--registry-burst) {c['registry_burst']}"
                    " must not be a negative number"
                ),
            ),
            (
                LOWER,
                lambda c: (
                    f"registryBurst (--registry-burst) {c['registry_burst']}"
                    " must not be a negative number"
                ),
            ),
        ),
        _SRC,
    ),
)


def defaulted(settings: Mapping[str, Any], version: Version) -> dict[str, Any]:
    """The kubelet's v1beta1 defaulting applied to the image settings that are unset."""
    out: dict[str, Any] = {}
    for key in (
        "image_gc_high_threshold_percent",
        "image_gc_low_threshold_percent",
        "image_minimum_gc_age_seconds",
        "image_maximum_gc_age_seconds",
        "max_parallel_image_pulls",
        "registry_pull_qps",
        "registry_burst",
        "node_status_max_images",
        "eviction_hard",
        "runtime_request_timeout_seconds",
    ):
        value = settings.get(key)
        out[key] = kubelet_setting(key).default if value is None else value
    # defaults.go replaces a zero imageMinimumGCAge with 2m and a zero registryBurst with 10.
    for key in ("image_minimum_gc_age_seconds", "registry_burst"):
        if not out[key]:
            out[key] = kubelet_setting(key).default
    serialize = settings.get("serialize_image_pulls")
    if serialize is None:
        parallel = out["max_parallel_image_pulls"]
        # From 1.27 an unset serializeImagePulls follows maxParallelImagePulls.
        serialize = not (version.at_least(Version(1, 27)) and parallel is not None and parallel > 1)
    out["serialize_image_pulls"] = serialize
    return out


def validate_kubelet(
    settings: Mapping[str, Any], version: Version, feature_gates: Mapping[str, bool]
) -> list[ValidationFailure]:
    """Run the kubelet's checks for ``version`` over the merged settings (ImageSettings keys).

    ``feature_gates`` must be the effective gates (defaults for ``version`` overlaid with
    the configured ones).
    """
    effective = defaulted(settings, version)
    failures = []
    for rule in VALIDATION_RULES:
        if rule.span.contains(version) and rule.violated(effective, feature_gates):
            failures.append(
                ValidationFailure(rule.rule, rule.keys, rule.message_for(effective, version))
            )
    return failures


def startup_failure_message(failures: list[ValidationFailure], version: Version) -> str:
    """What the kubelet logs before exiting when validation fails (server.go)."""
    errors = [f.message for f in failures]
    text = errors[0] if len(errors) == 1 else "[" + ", ".join(dict.fromkeys(errors)) + "]"
    if version.at_least(Version(1, 24)):
        return f"failed to validate kubelet configuration, error: {text}"
    return f"Failed to validate kubelet configuration: {text}"
