"""The knowledge base: every image-related setting of the kubelet and the runtimes, as data.

Each row cites where the fact was read (see ``../shared/reference/kubelet-facts.md`` for
the full citations; [main] = kubernetes/kubernetes main, [1.28] / [1.20] = release trees,
[api] = kubernetes/kubelet ``config/v1beta1/types.go`` across tags). A reviewer audits
these tables, not code paths: the linter, the planner and the renderers only look up rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mlnode.knowledge.spans import Span, v
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "CONFIG_DIR_SUPPORT",
    "EVICTION_HARD_DEFAULTS",
    "FEATURE_GATES",
    "KUBELET_SETTINGS",
    "REMOVED_FLAGS",
    "RUNTIME_SETTINGS",
    "ConfigDirSupport",
    "EvictionDefaults",
    "FeatureGateStage",
    "KubeletSetting",
    "RemovedFlag",
    "RuntimeSetting",
    "ValueKind",
    "config_dir_support",
    "eviction_hard_defaults",
    "kubelet_setting",
    "kubelet_setting_by_field",
    "kubelet_setting_by_flag",
    "removed_flag",
    "runtime_settings_for",
]


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


@dataclass(frozen=True)
class RuntimeSetting:
    """Where a runtime keeps an image setting, for the versions in ``span``."""

    key: str  # the ImageSettings attribute
    runtime: RuntimeKind
    span: Span
    kind: ValueKind
    # TOML table path (containerd, CRI-O) or "" for a command-line flag (cri-dockerd).
    table: tuple[str, ...]
    name: str  # the TOML key or the flag name
    default: Any  # in ImageSettings units
    config_version: int | None  # containerd's `version = N` that this table belongs to
    summary: str
    source: str


_CRI_V2 = ("plugins", "io.containerd.grpc.v1.cri")
_CRI_V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")

RUNTIME_SETTINGS: tuple[RuntimeSetting, ...] = (
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CONTAINERD,
        span=Span(since=v("1.7.0"), until=v("1.7.10")),
        kind=ValueKind.DURATION,
        table=_CRI_V2,
        name="image_pull_progress_timeout",
        default=60.0,
        config_version=2,
        summary="cancel a pull when no byte was read from the registry for this long (0 = off)",
        source="containerd v1.7.0 pkg/cri/config/config.go; default 1m until v1.7.10",
    ),
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CONTAINERD,
        span=Span(since=v("1.7.10"), until=v("2.0.0")),
        kind=ValueKind.DURATION,
        table=_CRI_V2,
        name="image_pull_progress_timeout",
        default=300.0,
        config_version=2,
        summary="cancel a pull when no byte was read from the registry for this long (0 = off)",
        source="containerd v1.7.10 pkg/cri/config/config.go (default 5m, containerd#9347)",
    ),
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CONTAINERD,
        span=Span(since=v("2.0.0")),
        kind=ValueKind.DURATION,
        table=_CRI_V3_IMAGES,
        name="image_pull_progress_timeout",
        default=300.0,
        config_version=3,
        summary="cancel a pull when no byte was read from the registry for this long (0 = off)",
        source="containerd v2.0.0 docs/cri/config.md; the v2 key is migrated"
        " (plugins/cri/images/plugin.go)",
    ),
    RuntimeSetting(
        key="max_concurrent_downloads",
        runtime=RuntimeKind.CONTAINERD,
        span=Span(until=v("2.0.0")),
        kind=ValueKind.INT,
        table=_CRI_V2,
        name="max_concurrent_downloads",
        default=3,
        config_version=2,
        summary="layers downloaded at once within one pull",
        source="containerd integration/client/testdata/default-1.7.toml",
    ),
    RuntimeSetting(
        key="max_concurrent_downloads",
        runtime=RuntimeKind.CONTAINERD,
        span=Span(since=v("2.0.0")),
        kind=ValueKind.INT,
        table=_CRI_V3_IMAGES,
        name="max_concurrent_downloads",
        default=3,
        config_version=3,
        summary="layers downloaded at once within one pull",
        source="containerd v2.0.0 docs/cri/config.md",
    ),
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CRIO,
        span=Span(since=v("1.30.11", "1.31.3", "1.32.0"), until=v("1.30.14", "1.31.9", "1.32.4")),
        kind=ValueKind.DURATION,
        table=("crio", "image"),
        name="pull_progress_timeout",
        default=10.0,
        config_version=None,
        summary="cancel a pull when no progress event arrives for this long (0 = off)",
        source="cri-o server/image_pull.go consumeImagePullProgress; tags v1.30.11/v1.31.3/v1.32.0",
    ),
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CRIO,
        span=Span(since=v("1.30.14", "1.31.9", "1.32.4")),
        kind=ValueKind.DURATION,
        table=("crio", "image"),
        name="pull_progress_timeout",
        default=0.0,
        config_version=None,
        summary="cancel a pull when no progress event arrives for this long (0 = off)",
        source="cri-o tags v1.30.14/v1.31.9/v1.32.4/v1.33.0 (default 0, disabled)",
    ),
    RuntimeSetting(
        key="image_pull_progress_deadline_seconds",
        runtime=RuntimeKind.CRI_DOCKERD,
        span=Span(),
        kind=ValueKind.DURATION,
        table=(),
        name="image-pull-progress-deadline",
        default=60.0,
        config_version=None,
        summary="cri-dockerd's own flag, as dockershim's was",
        source="Mirantis/cri-dockerd cmd/options (default 1m)",
    ),
)


@dataclass(frozen=True)
class FeatureGateStage:
    """A feature gate's stage from ``since`` on (until the next row for the same gate)."""

    gate: str
    since: Version
    stage: str  # alpha | beta | GA
    default: bool
    locked: bool  # GA gates locked to true refuse to be turned off
    source: str


FEATURE_GATES: tuple[FeatureGateStage, ...] = (
    FeatureGateStage(
        "ImageMaximumGCAge", Version(1, 29), "alpha", False, False, "pkg/features/kube_features.go"
    ),
    FeatureGateStage(
        "ImageMaximumGCAge", Version(1, 30), "beta", True, False, "pkg/features/kube_features.go"
    ),
    FeatureGateStage(
        "ImageMaximumGCAge",
        Version(1, 35),
        "GA",
        True,
        False,
        "KEP-4210 stage/stable, kubernetes/website#52820 (1.35 docs); source unverified",
    ),
)


@dataclass(frozen=True)
class ConfigDirSupport:
    """Whether and how the kubelet's ``--config-dir`` drop-in directory works."""

    span: Span
    supported: bool
    env_required: str | None
    merge: str  # "mergo" (maps merged, later wins) or "json-merge-patch" (RFC 7386)
    requires_type_meta: bool  # each drop-in must carry apiVersion and kind
    source: str


CONFIG_DIR_SUPPORT: tuple[ConfigDirSupport, ...] = (
    ConfigDirSupport(
        Span(until=v("1.28")),
        False,
        None,
        "",
        False,
        "KEP-3983: --config-dir added in v1.28 (alpha); options.go 1.28.6",
    ),
    ConfigDirSupport(
        Span(since=v("1.28"), until=v("1.29")),
        True,
        "KUBELET_CONFIG_DROPIN_DIR_ALPHA",
        "mergo",
        False,
        "[1.28] cmd/kubelet/app/server.go mergeKubeletConfigurations (mergo.WithOverride)",
    ),
    ConfigDirSupport(
        Span(since=v("1.29"), until=v("1.30")),
        True,
        "KUBELET_CONFIG_DROPIN_DIR_ALPHA",
        "json-merge-patch",
        False,
        "1.29.6 server.go (jsonpatch.MergePatch); kubernetes.io kubelet-config-file (1.28-1.29)",
    ),
    ConfigDirSupport(
        Span(since=v("1.30"), until=v("1.32")),
        True,
        None,
        "json-merge-patch",
        False,
        "1.30.7 options.go help text has no env note; kubernetes/website 4c7f663 (beta 1.30)",
    ),
    ConfigDirSupport(
        Span(since=v("1.32")),
        True,
        None,
        "json-merge-patch",
        True,
        "1.32.10 server.go: 'failed to load kubelet dropin file, path: %s, no apiVersion/kind'",
    ),
)


def config_dir_support(version: Version) -> ConfigDirSupport:
    return next(row for row in CONFIG_DIR_SUPPORT if row.span.contains(version))


@dataclass(frozen=True)
class EvictionDefaults:
    span: Span
    signals: dict[str, str]
    source: str


# Linux defaults. The kubelet zeroes every signal an operator's evictionHard leaves out,
# unless mergeDefaultEvictionSettings (1.33+) is true.
EVICTION_HARD_DEFAULTS: tuple[EvictionDefaults, ...] = (
    EvictionDefaults(
        Span(until=v("1.30")),
        {
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
            "imagefs.available": "15%",
        },
        "[1.28] pkg/kubelet/eviction/defaults_linux.go",
    ),
    EvictionDefaults(
        Span(since=v("1.30")),
        {
            "memory.available": "100Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
            "imagefs.available": "15%",
            "imagefs.inodesFree": "5%",
        },
        "1.30.7 pkg/kubelet/eviction/defaults_linux.go (imagefs.inodesFree added)",
    ),
)


def eviction_hard_defaults(version: Version) -> dict[str, str]:
    return dict(next(r for r in EVICTION_HARD_DEFAULTS if r.span.contains(version)).signals)


@dataclass(frozen=True)
class RemovedFlag:
    """A kubelet flag that no longer exists: passing it stops the kubelet from starting."""

    flag: str
    removed_in: Version
    why: str
    fix: str
    source: str


REMOVED_FLAGS: tuple[RemovedFlag, ...] = (
    RemovedFlag(
        "image-pull-progress-deadline",
        Version(1, 24),
        "removed with dockershim",
        "set the deadline in the runtime: containerd >= 1.7 image_pull_progress_timeout, "
        "CRI-O pull_progress_timeout, or cri-dockerd --image-pull-progress-deadline",
        "kubernetes#106907; pkg/kubelet/config/flags.go present in 1.23.15, absent in 1.24.14",
    ),
    RemovedFlag(
        "container-runtime",
        Version(1, 27),
        "the only valid value was 'remote'",
        "drop the flag; keep --container-runtime-endpoint",
        "kubernetes#114017; present in 1.26.7 ('will be removed in 1.27'), absent in 1.27.7",
    ),
)


def removed_flag(flag: str, version: Version) -> RemovedFlag | None:
    name = flag.lstrip("-")
    return next(
        (r for r in REMOVED_FLAGS if r.flag == name and version.at_least(r.removed_in)), None
    )


def kubelet_setting(key: str) -> KubeletSetting:
    for row in KUBELET_SETTINGS:
        if row.key == key:
            return row
    raise KeyError(key)


def kubelet_setting_by_flag(flag: str) -> KubeletSetting | None:
    name = flag.lstrip("-")
    return next((r for r in KUBELET_SETTINGS if r.flag == name), None)


def kubelet_setting_by_field(field: str) -> KubeletSetting | None:
    return next((r for r in KUBELET_SETTINGS if r.field == field), None)


def runtime_settings_for(kind: RuntimeKind, version: Version | None) -> tuple[RuntimeSetting, ...]:
    """The runtime's rows that exist in this version (dockershim has none: it is the kubelet)."""
    if version is None:
        return ()
    return tuple(r for r in RUNTIME_SETTINGS if r.runtime is kind and r.span.contains(version))
