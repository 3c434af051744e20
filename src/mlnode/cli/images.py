"""``mlnode images``: the node's images as the kubelet's GC sees them, plus the disk.

Lists every image the runtime reports over CRI with its compressed size, pinned flag and
whether a container (in any state, like the kubelet's ``GetPods(all=true)``) uses it; the
first-detected / last-used times that mlnode records (``--state-file``, written by
``mlnode gc``); and the image filesystem from ``statvfs`` of the runtime's root, because
CRI ``ImageFsInfo`` leaves out containerd's content store. On containerd it also lists
downloads in flight (``Content.ListStatuses``). Read-only. JSON schema: docs/runtime.md.
Exit codes: 0 ok, 2 bad option or state file, 3 runtime unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlnode.cli._common import OutputFormat, OutputOption, emit_json, run, stdout
from mlnode.errors import UsageError
from mlnode.gc import ImageRecord
from mlnode.ops.image_state import DEFAULT_STATE_FILE, ImageStateFile
from mlnode.runtime.containerd import DEFAULT_NAMESPACE, ContainerdClient, IngestStatus
from mlnode.runtime.cri import CriClient, CriContainer, CriImage, ImageFsUsage, RuntimeVersion
from mlnode.runtime.discovery import discover_runtime
from mlnode.runtime.fs import FilesystemUsage, image_filesystem
from mlnode.units import format_bytes
from mlnode.versions import RuntimeKind

__all__ = [
    "SCHEMA",
    "ImageRow",
    "ImagesReport",
    "build_report",
    "collect_report",
    "images_in_use",
    "register",
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
) -> ImagesReport:
    """Pure: combine what the runtime said. ``image_records`` (by image id) come from
    :mod:`mlnode.ops.image_state`; images without a record show ``-`` / null."""
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
    )


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def report_to_json(report: ImagesReport) -> dict[str, Any]:
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
    }


def collect_report(
    runtime_endpoint: str | None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image_fs: Path | None = None,
    image_records: Mapping[str, ImageRecord] | None = None,
    root: Path = Path("/"),
) -> ImagesReport:
    """Ask the runtime (and, on containerd, its content store) and measure the disk."""
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
    )


def _size(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def _render(report: ImagesReport) -> None:
    table = Table(
        title=f"Images on {report.runtime.runtime_name} "
        f"{report.runtime.runtime_version} ({report.endpoint})"
    )
    table.add_column("NAME", overflow="fold", ratio=3)
    table.add_column("IMAGE ID", no_wrap=True, min_width=12)
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("PINNED", justify="center")
    table.add_column("IN USE", justify="center")
    table.add_column("FIRST DETECTED", overflow="fold")
    table.add_column("LAST USED", overflow="fold")
    for r in report.images:
        names = r.image.repo_tags or r.image.repo_digests or ("<none>",)
        table.add_row(
            "\n".join(names),
            r.image.id.removeprefix("sha256:")[:12],
            _size(r.image.size_bytes),
            "yes" if r.image.pinned else "no",
            "yes" if r.in_use else "no",
            _when(r.first_detected),
            _when(r.last_used),
        )
    stdout.print(table)
    fs = report.image_filesystem
    pct = f" ({fs.usage_percent()}% used, kubelet rounding)" if fs.capacity_bytes > 0 else ""
    stdout.print(
        f"Image filesystem {fs.path}: used {_size(fs.used_bytes)}, "
        f"available {_size(fs.available_bytes)}, capacity {_size(fs.capacity_bytes)}{pct}",
        markup=False,
    )
    for u in report.runtime_image_fs:
        stdout.print(
            f"Runtime ImageFsInfo {u.mountpoint}: {_size(u.used_bytes)} "
            "(snapshots only; containerd's content store is not counted)",
            markup=False,
        )
    for d in report.downloads:
        total = _size(d.total_bytes) if d.total_bytes else "?"
        stdout.print(f"Downloading {d.ref}: {_size(d.offset_bytes)} of {total}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("images")
    def images_cmd(
        runtime_endpoint: Annotated[
            str | None,
            typer.Option(
                "--runtime-endpoint",
                help="CRI socket, e.g. unix:///run/containerd/containerd.sock (default: discover).",
            ),
        ] = None,
        namespace: Annotated[
            str,
            typer.Option("--namespace", help="containerd namespace for downloads in flight."),
        ] = DEFAULT_NAMESPACE,
        state_file: Annotated[
            Path,
            typer.Option(
                "--state-file",
                help="mlnode's record of first-detected/last-used times (read only here).",
                dir_okay=False,
            ),
        ] = DEFAULT_STATE_FILE,
        image_fs: Annotated[
            Path | None,
            typer.Option(
                "--image-fs",
                help="A directory on the filesystem holding the images "
                "(default: the runtime's root).",
            ),
        ] = None,
        output: OutputFormat = OutputOption,
    ) -> None:
        """List the node's images: size, pinned, in use, last used, and the image disk."""

        def body() -> None:
            records = ImageStateFile(state_file).load().images
            report = collect_report(
                runtime_endpoint, namespace=namespace, image_fs=image_fs, image_records=records
            )
            if output is OutputFormat.JSON:
                emit_json(report_to_json(report))
            else:
                _render(report)

        run(body)
