"""The kubelet settings table: every image-related flag and KubeletConfiguration field.

Each row cites where the fact was read (see ``../shared/reference/kubelet-facts.md`` for
the full citations; [main] = kubernetes/kubernetes main, [1.28] / [1.20] = release trees,
[api] = kubernetes/kubelet ``config/v1beta1/types.go`` across tags). Read through
:mod:`mlnode.knowledge.table`, which holds the lookups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mlnode.knowledge.spans import Span, v
from mlnode.versions import Version

__all__ = ["KUBELET_SETTINGS", "KubeletSetting", "ValueKind"]


class ValueKind(enum.StrEnum):
    PERCENT = "percent"  # integer 0..100
    INT = "int"
    BOOL = "bool"
    DURATION = "duration"  # Go duration; stored in seconds
    SIGNAL_MAP = "signal-map"  # evictionHard: signal -> quantity or percentage


@dataclass(frozen=True)
class KubeletSetting:
    """One kubelet setting: its flag, its KubeletConfiguration field and their histories."""

    key: str  # the ImageSettings attribute
    kind: ValueKind
    unit: str
    default: Any  # in ImageSettings units (seconds for durations); None = unset / no limit
    field: str | None  # KubeletConfiguration (kubelet.config.k8s.io/v1beta1) field
    field_span: Span
    flag: str | None  # without the leading dashes
    flag_span: Span
    flag_deprecated_since: Version | None
    feature_gate: str | None
    summary: str
    source: str


# The flag of every field-backed setting carries the kubelet's deprecation notice ("should be
# set via the config file specified by the Kubelet's --config flag") in every version we know;
# the flags still work and override the file ([1.28] AddKubeletConfigFlags).
_CONFIG_FLAG_DEPRECATED = Version(1, 20)

KUBELET_SETTINGS: tuple[KubeletSetting, ...] = (
    KubeletSetting(
        key="image_gc_high_threshold_percent",
        kind=ValueKind.PERCENT,
        unit="percent of the image filesystem used",
        default=85,
        field="imageGCHighThresholdPercent",
        field_span=Span(),
        flag="image-gc-high-threshold",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="image GC starts when usage (100 - floor(available*100/capacity)) reaches this",
        source="[1.28] v1beta1/defaults.go; [main] images/image_gc_manager.go GarbageCollect",
    ),
    KubeletSetting(
        key="image_gc_low_threshold_percent",
        kind=ValueKind.PERCENT,
        unit="percent of the image filesystem used",
        default=80,
        field="imageGCLowThresholdPercent",
        field_span=Span(),
        flag="image-gc-low-threshold",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="image GC frees down to this usage",
        source="[1.28] v1beta1/defaults.go; [main] images/image_gc_manager.go GarbageCollect",
    ),
    KubeletSetting(
        key="image_minimum_gc_age_seconds",
        kind=ValueKind.DURATION,
        unit="seconds",
        default=120.0,
        field="imageMinimumGCAge",
        field_span=Span(),
        flag="minimum-image-ttl-duration",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="an unused image younger than this (since first detected) is never collected",
        source="[api] types.go imageMinimumGCAge; [1.28] v1beta1/defaults.go",
    ),
    KubeletSetting(
        key="image_maximum_gc_age_seconds",
        kind=ValueKind.DURATION,
        unit="seconds",
        default=0.0,
        field="imageMaximumGCAge",
        field_span=Span(since=v("1.29")),
        flag=None,
        flag_span=Span(),
        flag_deprecated_since=None,
        feature_gate="ImageMaximumGCAge",
        summary="an image unused for longer than this is collected whatever the disk usage",
        source="KEP-4210; kubernetes#121275 (v1.29); pkg/features/kube_features.go",
    ),
    KubeletSetting(
        key="image_pull_progress_deadline_seconds",
        kind=ValueKind.DURATION,
        unit="seconds",
        default=60.0,
        field=None,
        field_span=Span(until=v("1.20")),  # never a config field
        flag="image-pull-progress-deadline",
        flag_span=Span(until=v("1.24")),
        flag_deprecated_since=Version(1, 21),
        feature_gate=None,
        summary="dockershim only: cancel a pull after this long without a progress message",
        source="cmd/kubelet/app/options/container_runtime.go; kubernetes#98730 (1.21 deprecation),"
        " #106907 (removed 1.24)",
    ),
    KubeletSetting(
        key="serialize_image_pulls",
        kind=ValueKind.BOOL,
        unit="",
        default=True,
        field="serializeImagePulls",
        field_span=Span(),
        flag="serialize-image-pulls",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="pull one image at a time (one 15 GB pull blocks every other pull on the node);"
        " from 1.27 unset means false when maxParallelImagePulls >= 2",
        source="[1.28] v1beta1/defaults.go; images/puller.go",
    ),
    KubeletSetting(
        key="max_parallel_image_pulls",
        kind=ValueKind.INT,
        unit="pulls",
        default=None,
        field="maxParallelImagePulls",
        field_span=Span(since=v("1.27")),
        flag=None,
        flag_span=Span(),
        flag_deprecated_since=None,
        feature_gate=None,
        summary="at most this many pulls at once when serializeImagePulls is false",
        source="kubernetes#115220 (1.27); KEP-3673",
    ),
    KubeletSetting(
        key="registry_pull_qps",
        kind=ValueKind.INT,
        unit="pulls per second (0 = unlimited)",
        default=5,
        field="registryPullQPS",
        field_span=Span(),
        flag="registry-qps",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="token bucket on pull starts; excess pulls fail with 'pull QPS exceeded'",
        source="[1.28] v1beta1/defaults.go; images/helpers.go",
    ),
    KubeletSetting(
        key="registry_burst",
        kind=ValueKind.INT,
        unit="pulls",
        default=10,
        field="registryBurst",
        field_span=Span(),
        flag="registry-burst",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="burst of the pull token bucket (used only when registryPullQPS > 0);"
        " 0 is replaced by the default 10",
        source="[1.28] v1beta1/defaults.go",
    ),
    KubeletSetting(
        key="eviction_hard",
        kind=ValueKind.SIGNAL_MAP,
        unit="signal -> quantity or percentage",
        default={
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
            "imagefs.available": "15%",
        },
        field="evictionHard",
        field_span=Span(),
        flag="eviction-hard",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="hard eviction thresholds; setting any key zeroes the unset default keys"
        " unless mergeDefaultEvictionSettings is true (1.33+); defaults per version in"
        " EVICTION_HARD_DEFAULTS",
        source="[1.28] v1beta1/defaults.go; [api] mergeDefaultEvictionSettings",
    ),
    KubeletSetting(
        key="merge_default_eviction_settings",
        kind=ValueKind.BOOL,
        unit="",
        default=False,
        field="mergeDefaultEvictionSettings",
        field_span=Span(since=v("1.33")),
        flag=None,
        flag_span=Span(),
        flag_deprecated_since=None,
        feature_gate=None,
        summary="keep the default eviction thresholds for signals evictionHard does not set",
        source="[api] types.go mergeDefaultEvictionSettings (v1.33)",
    ),
    KubeletSetting(
        key="runtime_request_timeout_seconds",
        kind=ValueKind.DURATION,
        unit="seconds",
        default=120.0,
        field="runtimeRequestTimeout",
        field_span=Span(),
        flag="runtime-request-timeout",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="timeout of CRI calls except PullImage (the kubelet sets no pull deadline);"
        " also caps GC's RemoveImage",
        source="[1.28] cri/remote/remote_image.go PullImage uses WithCancel only; kubelet.go",
    ),
    KubeletSetting(
        key="node_status_max_images",
        kind=ValueKind.INT,
        unit="images (-1 = no cap)",
        default=50,
        field="nodeStatusMaxImages",
        field_span=Span(),
        flag="node-status-max-images",
        flag_span=Span(),
        flag_deprecated_since=_CONFIG_FLAG_DEPRECATED,
        feature_gate=None,
        summary="how many images node.status.images reports (largest first)",
        source="[1.28] v1beta1/defaults.go; nodestatus/setters.go Images()",
    ),
)
