"""Which containerd config version a containerd reads, and where a CRI image key lives in
each version (the tables of the package docstring).
"""

from __future__ import annotations

from mlnode.knowledge.table import ConfigVersionOutcome, containerd_config_version
from mlnode.versions import Version

__all__ = [
    "CRI_V1",
    "CRI_V2",
    "CRI_V3_IMAGES",
    "CRI_V3_RUNTIME",
    "DEFAULT_CONFIG_PATH",
    "DROPIN_SUGGESTED_PATH",
    "GRPC_SERVER_V4",
    "V2_0",
    "V2_3",
    "config_version_for",
    "max_config_version_for",
    "table_for",
]


DEFAULT_CONFIG_PATH = "/etc/containerd/config.toml"
DROPIN_SUGGESTED_PATH = "/etc/containerd/conf.d/90-mlnode-images.toml"

CRI_V1: tuple[str, ...] = ("plugins", "cri")
CRI_V2: tuple[str, ...] = ("plugins", "io.containerd.grpc.v1.cri")
CRI_V3_IMAGES: tuple[str, ...] = ("plugins", "io.containerd.cri.v1.images")
CRI_V3_RUNTIME: tuple[str, ...] = ("plugins", "io.containerd.cri.v1.runtime")
GRPC_SERVER_V4: tuple[str, ...] = ("plugins", "io.containerd.server.v1.grpc")

V2_0 = Version(2, 0, 0)
V2_3 = Version(2, 3, 0)

_READS = (
    ConfigVersionOutcome.READ,
    ConfigVersionOutcome.DEPRECATED,
    ConfigVersionOutcome.CONVERTED,
)
_HIGHEST_CHECKED = 16  # no containerd knows a config version anywhere near this

# Image keys whose place inside the CRI table differs between version 2 (relative to
# plugins."io.containerd.grpc.v1.cri") and version 3 (relative to io.containerd.cri.v1.images),
# as configMigration moves them. Keys not listed keep their sub-path (registry.*,
# image_decryption.*, image_pull_progress_timeout, max_concurrent_downloads, ...).
_V2_TO_V3: dict[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]] = {
    ((), "sandbox_image"): (("pinned_images",), "sandbox"),
    (("containerd",), "snapshotter"): ((), "snapshotter"),
    (("containerd",), "discard_unpacked_layers"): ((), "discard_unpacked_layers"),
    (("containerd",), "disable_snapshot_annotations"): ((), "disable_snapshot_annotations"),
}
_V3_TO_V2 = {v3: v2 for v2, v3 in _V2_TO_V3.items()}
# Top-level keys of the version 2 CRI table that configMigration moves to the images plugin.
_V2_IMAGE_KEYS = frozenset(
    {
        "image_pull_progress_timeout",
        "max_concurrent_downloads",
        "image_pull_with_sync_fs",
        "stats_collect_period",
        "sandbox_image",
        "registry",
        "image_decryption",
    }
)


def config_version_for(runtime_version: Version) -> int:
    """The config ``version`` mlnode writes for this containerd: 2 for 1.x, 3 for 2.x.

    containerd 2.3 introduced version 4 but reads version 3 (it migrates it at start and
    logs "Configuration migrated from version 3"); the CRI image tables are the same in 3
    and 4, and a version 3 file still works after a rollback to 2.0–2.2, which refuse 4.
    """
    return 2 if not runtime_version.at_least(V2_0) else 3


def max_config_version_for(runtime_version: Version) -> int:
    """The highest ``version`` this containerd reads as written or converts (the rows of
    ``CONTAINERD_CONFIG_VERSIONS`` in :mod:`mlnode.knowledge.table`): 2 for 1.x, 3 for
    2.0-2.2, 4 for 2.3.

    Above it, 1.6.32+/1.7.17+ and every 2.x refuse to start; 1.6.0-1.6.31 and 1.7.0-1.7.16
    start but read the file as version 2, so a version 3 file's image tables are ignored.
    """
    return max(
        n
        for n in range(_HIGHEST_CHECKED + 1)
        if containerd_config_version(runtime_version, n).outcome in _READS
    )


def table_for(
    table: tuple[str, ...], name: str, file_version: int
) -> tuple[tuple[str, ...], str] | None:
    """Where the key ``table``/``name`` (written for any config version) lives in a file of
    ``file_version``; None when it has no home there.

    CRI image keys move between ``plugins.cri`` (1), ``plugins."io.containerd.grpc.v1.cri"``
    (2) and ``plugins."io.containerd.cri.v1.images"`` (3, 4), as configMigration moves them.
    Other keys stay where they are.
    """
    head = table[:2]
    v2 = _as_v2(table, name)
    if v2 is None:
        if head == CRI_V3_IMAGES:  # an images key that versions 1 and 2 do not have
            return (table, name) if file_version >= 3 else None
        return (table, name)
    sub, key = v2
    if file_version <= 1:
        return ((*CRI_V1, *sub), key)
    if file_version == 2:
        return ((*CRI_V2, *sub), key)
    sub3, key3 = _V2_TO_V3.get((sub, key), (sub, key))
    return ((*CRI_V3_IMAGES, *sub3), key3)


def _is_v2_image_key(sub: tuple[str, ...], name: str) -> bool:
    if (sub, name) in _V2_TO_V3:
        return True
    if sub:
        return sub[0] in ("registry", "image_decryption")
    return name in _V2_IMAGE_KEYS


def _as_v2(table: tuple[str, ...], name: str) -> tuple[tuple[str, ...], str] | None:
    """A CRI image key as (sub-path in the version 2 CRI table, name), else None."""
    head, sub = table[:2], table[2:]
    if head in (CRI_V1, CRI_V2):
        return (sub, name) if _is_v2_image_key(sub, name) else None
    if head == CRI_V3_IMAGES:
        sub2, key2 = _V3_TO_V2.get((sub, name), (sub, name))
        return (sub2, key2) if _is_v2_image_key(sub2, key2) else None
    return None
