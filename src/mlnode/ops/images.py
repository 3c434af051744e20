"""The node's images as the kubelet's GC sees them, plus the disk (``mlnode images``).

:func:`build_report` is pure: it combines what the runtime listed over CRI (images and
containers in any state, like the kubelet's ``GetPods(all=true)``), the first-detected /
last-used times mlnode records (:mod:`mlnode.ops.image_state`), the image filesystem
measured by ``statvfs``, containerd's downloads in flight, and the node mirror's cache
(:mod:`mlnode.ops.mirror_cache`: complete vs partial blobs and their disk bytes).
:func:`collect_report` asks the runtime for those and measures the disks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlnode.errors import UsageError
from mlnode.gc import ImageRecord
from mlnode.ops.gc_runtime import digests_from_ingest_refs
from mlnode.ops.mirror_cache import MirrorCacheUsage, measure_cache
from mlnode.runtime.containerd import DEFAULT_NAMESPACE, ContainerdClient, IngestStatus
from mlnode.runtime.cri import CriClient, CriContainer, CriImage, ImageFsUsage, RuntimeVersion
from mlnode.runtime.discovery import discover_runtime
from mlnode.runtime.fs import FilesystemUsage, image_filesystem
from mlnode.versions import RuntimeKind

__all__ = [
    "SCHEMA",
    "ImageRow",
    "ImagesReport",
    "build_report",
    "collect_report",
    "images_in_use",
    "report_to_json",
]

SCHEMA = "mlnode.images/v1"


@dataclass(frozen=True)
class ImageRow:
    image: CriImage
    in_use: bool
    first_detected: datetime | None
    last_used: datetime | None


@dataclass(frozen=True)
class ImagesReport:
    endpoint: str
    runtime: RuntimeVersion
    images: tuple[ImageRow, ...]
    image_filesystem: FilesystemUsage
    runtime_image_fs: tuple[ImageFsUsage, ...]
    downloads: tuple[IngestStatus, ...]
    namespace: str | None
    #: The node mirror's cache, when one was asked for (``--mirror-cache``).
    mirror_cache: MirrorCacheUsage | None = None

    def to_json(self) -> dict[str, Any]:
        return report_to_json(self)


def images_in_use(images: Iterable[CriImage], containers: Iterable[CriContainer]) -> frozenset[str]:
    """Ids of images some container refers to by id, tag or digest reference."""
    refs: set[str] = set()
    for c in containers:
        refs |= c.image_keys()
    return frozenset(i.id for i in images if i.id in refs or any(n in refs for n in i.names))


def build_report(
    *,
    endpoint: str,
    runtime: RuntimeVersion,
    images: Sequence[CriImage],
    containers: Sequence[CriContainer],
    filesystem: FilesystemUsage,
    runtime_image_fs: Sequence[ImageFsUsage] = (),
    downloads: Sequence[IngestStatus] = (),
    namespace: str | None = None,
    image_records: Mapping[str, ImageRecord] | None = None,
    mirror_cache: MirrorCacheUsage | None = None,
) -> ImagesReport:
    """Pure: combine what the runtime said, and the mirror cache's numbers.
    ``image_records`` (by image id) come from :mod:`mlnode.ops.image_state`; images
    without a record show ``-`` / null."""
    used = images_in_use(images, containers)
    records = image_records or {}
    rows = []
    for img in sorted(images, key=lambda i: (-i.size_bytes, i.names, i.id)):
        rec = records.get(img.id)
        rows.append(
            ImageRow(
                image=img,
                in_use=img.id in used,
                first_detected=rec.first_detected if rec else None,
                last_used=rec.last_used if rec else None,
            )
        )
    return ImagesReport(
        endpoint=endpoint,
        runtime=runtime,
        images=tuple(rows),
        image_filesystem=filesystem,
        runtime_image_fs=tuple(runtime_image_fs),
        downloads=tuple(sorted(downloads, key=lambda d: d.ref)),
        namespace=namespace,
        mirror_cache=mirror_cache,
    )


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def report_to_json(report: ImagesReport) -> dict[str, Any]:
    """The report as ``mlnode.images/v1`` (docs/runtime.md)."""
    fs = report.image_filesystem
    return {
        "schema": SCHEMA,
        "runtime": {
            "endpoint": report.endpoint,
            "name": report.runtime.runtime_name,
            "version": report.runtime.runtime_version,
            "cri_api_version": report.runtime.runtime_api_version,
        },
        "images": [
            {
                "id": r.image.id,
                "repo_tags": list(r.image.repo_tags),
                "repo_digests": list(r.image.repo_digests),
                "size_bytes": r.image.size_bytes,
                "pinned": r.image.pinned,
                "in_use": r.in_use,
                "first_detected": _iso(r.first_detected),
                "last_used": _iso(r.last_used),
            }
            for r in report.images
        ],
        "image_filesystem": {
            "path": str(fs.path),
            "capacity_bytes": fs.capacity_bytes,
            "available_bytes": fs.available_bytes,
            "used_bytes": fs.used_bytes,
            "usage_percent": fs.usage_percent() if fs.capacity_bytes > 0 else None,
        },
        "runtime_image_fs": [
            {"mountpoint": u.mountpoint, "used_bytes": u.used_bytes, "inodes_used": u.inodes_used}
            for u in report.runtime_image_fs
        ],
        "downloads": [
            {
                "ref": d.ref,
                "offset_bytes": d.offset_bytes,
                "total_bytes": d.total_bytes,
                "started_at": _iso(d.started_at),
                "updated_at": _iso(d.updated_at),
            }
            for d in report.downloads
        ],
        "namespace": report.namespace,
        "mirror_cache": report.mirror_cache.to_json() if report.mirror_cache else None,
    }


def collect_report(
    runtime_endpoint: str | None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image_fs: Path | None = None,
    image_records: Mapping[str, ImageRecord] | None = None,
    root: Path = Path("/"),
    mirror_cache: Path | None = None,
) -> ImagesReport:
    """Ask the runtime (and, on containerd, its content store) and measure the disk; with
    ``mirror_cache``, count the node mirror's cache there too (absent: no mirror)."""
    found = discover_runtime(runtime_endpoint, root=root)
    with CriClient(found.socket_path) as cri:
        version = cri.version()
        kind = found.kind
        if kind is None and "containerd" in version.runtime_name.lower():
            kind = RuntimeKind.CONTAINERD
        fs_dir = image_fs
        if fs_dir is None and kind is RuntimeKind.CONTAINERD:
            fs_dir = cri.status(verbose=True).containerd_root_dir()  # what it runs with
        fs_dir = fs_dir or found.root_dir
        if fs_dir is None:
            raise UsageError(
                "cannot tell which filesystem holds the runtime's images", option="--image-fs"
            )
        images = cri.list_images()
        containers = cri.list_containers()
        runtime_fs = cri.image_fs_info()
    downloads: list[IngestStatus] = []
    if kind is RuntimeKind.CONTAINERD:
        with ContainerdClient(found.socket_path, namespace=namespace) as ctrd:
            downloads = ctrd.list_statuses()
    cache = None
    if mirror_cache is not None:
        in_flight = digests_from_ingest_refs(d.ref for d in downloads)
        cache = measure_cache(mirror_cache, image_fs=fs_dir, in_flight=in_flight)
    return build_report(
        endpoint=found.uri,
        runtime=version,
        images=images,
        containers=containers,
        filesystem=image_filesystem(fs_dir),
        runtime_image_fs=runtime_fs,
        downloads=downloads,
        namespace=namespace if kind is RuntimeKind.CONTAINERD else None,
        image_records=image_records,
        mirror_cache=cache,
    )
