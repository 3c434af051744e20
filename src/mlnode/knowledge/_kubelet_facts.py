"""Kubelet facts beyond its settings: feature gate stages, --config-dir support, default
evictionHard signals, and removed flags.

Each row cites where the fact was read (see ``../shared/reference/kubelet-facts.md`` for
the full citations; [main] = kubernetes/kubernetes main, [1.28] / [1.20] = release trees,
[api] = kubernetes/kubelet ``config/v1beta1/types.go`` across tags). Read through
:mod:`mlnode.knowledge.table`, which holds the lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlnode.knowledge.spans import Span, v
from mlnode.versions import Version

__all__ = [
    "CONFIG_DIR_SUPPORT",
    "EVICTION_HARD_DEFAULTS",
    "FEATURE_GATES",
    "REMOVED_FLAGS",
    "ConfigDirSupport",
    "EvictionDefaults",
    "FeatureGateStage",
    "RemovedFlag",
]


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
        True,
        "KEP-4210 stage/stable; kubernetes/website feature-gates/ImageMaximumGCAge.md @02e08b9"
        " (stable from 1.35, locked: true); kubelet source unverified",
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
