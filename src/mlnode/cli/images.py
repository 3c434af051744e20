"""``mlnode images``: the node's images as the kubelet's GC sees them, plus the disk.

Lists every image the runtime reports over CRI with its compressed size, pinned flag and
whether a container (in any state, like the kubelet's ``GetPods(all=true)``) uses it; the
first-detected / last-used times that mlnode records (``--state-file``, written by
``mlnode gc``); and the image filesystem from ``statvfs`` of the runtime's root, because
CRI ``ImageFsInfo`` leaves out containerd's content store. On containerd it also lists
downloads in flight (``Content.ListStatuses``), and it counts the node mirror's cache
(``--mirror-cache``: complete and partial blobs, disk bytes, what GC may reclaim).
Read-only. JSON schema: docs/runtime.md. Exit codes: 0 ok, 2 bad option or state file,
3 runtime unreachable. The report itself is built in :mod:`mlnode.ops.images`; this
module prints it.
"""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.cli._common import OutputFormat, emit_json, run, stdout
from mlnode.cli._options import (
    ImageFsOption,
    MirrorCacheOption,
    NamespaceOption,
    OutputOption,
    RuntimeEndpointOption,
    StateFileOption,
)
from mlnode.ops.image_state import DEFAULT_STATE_FILE, ImageStateFile
from mlnode.ops.images import ImagesReport, collect_report
from mlnode.ops.mirror_cache import MirrorCacheUsage
from mlnode.runtime.containerd import DEFAULT_NAMESPACE
from mlnode.units import format_bytes

__all__ = ["register"]


def _size(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def mirror_line(m: MirrorCacheUsage) -> str:
    """The mirror cache's one line, printed next to the image filesystem's."""
    if not m.present:
        return f"Mirror cache {m.directory}: none (no mirror cache on this node)"
    line = (
        f"Mirror cache {m.directory}: {m.blobs} blob(s), {_size(m.disk_bytes)} on disk; "
        f"{m.complete_blobs} complete ({_size(m.complete_disk_bytes)}, "
        f"{_size(m.reclaimable_bytes)} reclaimable by mlnode gc), "
        f"{m.partial_blobs} partial ({_size(m.partial_present_bytes)} of "
        f"{_size(m.partial_size_bytes)} present, {_size(m.partial_disk_bytes)} on disk)"
    )
    if m.on_image_filesystem is False:
        line += "; on another filesystem than the images (GC does not free it for them)"
    return line


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
    if report.mirror_cache is not None:
        stdout.print(mirror_line(report.mirror_cache), markup=False)
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
        runtime_endpoint: RuntimeEndpointOption = None,
        namespace: NamespaceOption = DEFAULT_NAMESPACE,
        state_file: StateFileOption = DEFAULT_STATE_FILE,
        image_fs: ImageFsOption = None,
        mirror_cache: MirrorCacheOption = DEFAULT_CACHE_DIR,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """List the node's images: size, pinned, in use, last used, and the image disk."""

        def body() -> None:
            records = ImageStateFile(state_file).load().images
            report = collect_report(
                runtime_endpoint,
                namespace=namespace,
                image_fs=image_fs,
                image_records=records,
                mirror_cache=mirror_cache,
            )
            if output is OutputFormat.JSON:
                emit_json(report.to_json())
            else:
                _render(report)

        run(body)
