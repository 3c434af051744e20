"""The runtime settings table: where containerd, CRI-O and cri-dockerd keep image settings.

Each row cites where the fact was read (see ``../shared/reference/kubelet-facts.md`` for
the full citations; [main] = kubernetes/kubernetes main, [1.28] / [1.20] = release trees,
[api] = kubernetes/kubelet ``config/v1beta1/types.go`` across tags). Read through
:mod:`mlnode.knowledge.table`, which holds the lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlnode.knowledge._kubelet_settings import ValueKind
from mlnode.knowledge.spans import Span, v
from mlnode.versions import RuntimeKind

__all__ = ["RUNTIME_SETTINGS", "RuntimeSetting"]


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
    # what the node loses when the runtime does not read a line meant for this setting
    unread: str


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
        unread="pulls get no progress deadline from this line",
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
        unread="pulls get no progress deadline from this line",
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
        unread="pulls get no progress deadline from this line",
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
        unread="this line does not set how many layers one pull downloads at once (containerd"
        " keeps its default, 3)",
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
        unread="this line does not set how many layers one pull downloads at once (containerd"
        " keeps its default, 3)",
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
        unread="pulls get no progress deadline from this line",
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
        unread="pulls get no progress deadline from this line",
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
        unread="pulls get no progress deadline from this line",
    ),
)
