"""``mlnode progress``: byte progress of every download in flight on the node.

Reads containerd's ``Content.ListStatuses`` in a namespace (default ``k8s.io``), which
lists the ingests of every pull: the kubelet's CRI pulls, ``ctr``'s and ``mlnode
pull``'s; and the node mirror's status (``--mirror URL``, default: discovered), which
lists every blob it is fetching or serving, whoever pulls. A blob both know is one row
with both numbers. Rates come from two samples ``--interval`` apart (a one-shot run
samples twice). ``--watch`` keeps sampling until interrupted (or ``--count`` samples).

JSON (``--output json``): one document per sample, one per line; the schema is in
README.md and docs/pull.md (``mlnode.progress/v1``: ``downloads`` rows with
``source`` containerd | mirror | both and a ``mirror`` object per row, and a top-level
``mirror`` saying which mirror was read and whether it answered).

A mirror that does not answer is one line (the table's caption, or ``mirror.error`` in
JSON), not an error: containerd's ingests are still shown. The unpack phase after a
download is not visible here (containerd shows no ingest then). Exit codes: 0, 2 bad
option, 3 runtime unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from mlnode.cli._common import OutputFormat, emit_json_line, finite_float, run, stdout
from mlnode.cli._mirror_url import MirrorUrlOption, mirror_url_option
from mlnode.cli._options import NamespaceOption, OutputOption, RuntimeEndpointOption
from mlnode.errors import MlnodeError, UsageError
from mlnode.ops.progress import (
    Download,
    MirrorView,
    Row,
    join_mirror,
    locate_mirror,
    read_view,
    sample_downloads,
    sample_to_json,
)
from mlnode.ops.pull_session import runtime_config
from mlnode.runtime.containerd import DEFAULT_NAMESPACE, ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.discovery import discover_runtime
from mlnode.units import format_bytes

__all__ = ["register"]

WatchOption = Annotated[
    bool, typer.Option("--watch", "-w", help="Keep sampling until interrupted.")
]
IntervalOption = Annotated[
    float,
    typer.Option(
        "--interval",
        metavar="SECONDS",
        parser=finite_float,
        help="Seconds between samples (default 1).",
    ),
]
CountOption = Annotated[
    int | None, typer.Option("--count", help="With --watch: stop after this many samples.")
]


Sample = tuple[list[Download], MirrorView]
_COLUMNS = ("blob", "image", "containerd", "percent", "rate", "eta", "mirror")


def _rate(value: float | None) -> str:
    return "" if value is None else f"{format_bytes(int(value))}/s"


def _cells(r: Row) -> tuple[str, ...]:
    d, m = r.download, r.mirror
    blob = d.status.ref if d is not None else f"{r.digest}"
    image = "" if m is None else (m.image or f"{m.registry}/{m.repository}")
    if d is not None:
        total = d.status.total_bytes
        containerd = (
            f"{format_bytes(d.status.offset_bytes)} / {format_bytes(total) if total else '?'}"
        )
        percent = "" if d.percent is None else f"{d.percent:.1f}%"
        rate, eta = d.rate_bytes_per_second, d.eta_seconds
    else:
        containerd, percent = "", ""
        rate = m.rate_bytes_per_second if m is not None else None
        eta = m.eta_seconds if m is not None else None
    mirror = ""
    if m is not None:
        mirror = (
            f"{m.state} {format_bytes(m.upstream_bytes)}/{format_bytes(m.size_bytes)} "
            f"upstream, {format_bytes(m.served_bytes)} served"
            + (f", {_rate(m.rate_bytes_per_second)}" if d is not None else "")
            + (f" ({m.error})" if m.error else "")
        )
    eta_text = "" if eta is None else f"{eta:.0f}s"
    return blob, image, containerd, percent, _rate(rate), eta_text, mirror


def _table(downloads: Sequence[Download], mirror: MirrorView, namespace: str) -> Table:
    where = f"containerd namespace {namespace}"
    if mirror.status is not None:
        where += f", mirror {mirror.url}"
    table = Table(title=f"downloads in flight ({where})")
    # without a mirror's status, the columns containerd's ingests fill (as before mirrors)
    plain = ("blob", "containerd", "percent", "rate", "eta")
    columns = _COLUMNS if mirror.status is not None else plain
    for col in columns:
        table.add_column(col, justify="left" if col in ("blob", "image", "mirror") else "right")
    rows = join_mirror(downloads, mirror.blobs)
    for r in rows:
        cells = dict(zip(_COLUMNS, _cells(r), strict=True))
        table.add_row(*(cells[c] for c in columns))
    caption = [] if rows else ["no downloads in flight"]
    if mirror.url is not None and mirror.status is None:
        caption.append(f"mirror unreachable: {mirror.error}")
    table.caption = "; ".join(caption) or None
    return table


def _show_json(namespace: str, interval: float) -> Callable[[Sample], None]:
    def show(sample: Sample) -> None:
        downloads, mirror = sample
        emit_json_line(
            sample_to_json(
                downloads,
                namespace=namespace,
                interval_seconds=round(interval, 3),
                at=datetime.now(UTC),
                mirror=mirror,
            )
        )

    return show


def _show_each(
    samples: Iterator[list[Download]],
    mirror_url: str | None,
    stop_after: int | None,
    show: Callable[[Sample], None],
) -> None:
    """Show samples (each with the mirror's status read right after containerd's) until
    ``stop_after`` were shown (None: until interrupted)."""
    for shown, downloads in enumerate(samples, 1):
        show((downloads, read_view(mirror_url)))
        if stop_after is not None and shown >= stop_after:
            return


def _find_mirror(explicit: str | None, socket_path: Path) -> str | None:
    def config_path() -> Path | None:
        try:
            with CriClient(socket_path) as cri:
                return runtime_config(cri)[1]
        except MlnodeError:  # no CRI, or it says nothing: try the default address only
            return None

    return locate_mirror(explicit, config_path)


def register(app: typer.Typer) -> None:
    @app.command("progress")
    def progress_cmd(
        runtime_endpoint: RuntimeEndpointOption = None,
        namespace: NamespaceOption = DEFAULT_NAMESPACE,
        watch: WatchOption = False,
        interval: IntervalOption = 1.0,
        count: CountOption = None,
        mirror: MirrorUrlOption = None,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Byte progress of every pull in flight on the node, including the kubelet's."""

        def body() -> None:
            if interval <= 0:
                raise UsageError("must be more than 0", option="--interval")
            explicit = mirror_url_option(mirror)
            stop_after = count if watch else 1
            found = discover_runtime(runtime_endpoint)
            with ContainerdClient(found.socket_path, namespace=namespace) as ctrd:
                ctrd.list_statuses()  # an unreachable runtime fails before the mirror is sought
                url = _find_mirror(explicit, found.socket_path)
                samples = sample_downloads(
                    ctrd.list_statuses, interval, monotonic=time.monotonic, sleep=time.sleep
                )
                if output is OutputFormat.JSON:
                    _show_each(samples, url, stop_after, _show_json(namespace, interval))
                elif watch and stdout.is_terminal:
                    with Live(console=stdout, auto_refresh=False) as live:
                        _show_each(
                            samples,
                            url,
                            stop_after,
                            lambda s: live.update(_table(*s, namespace), refresh=True),
                        )
                else:
                    _show_each(
                        samples, url, stop_after, lambda s: stdout.print(_table(*s, namespace))
                    )

        run(body)
