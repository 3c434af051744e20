"""``mlnode progress``: byte progress of every download in flight on the node.

Reads containerd's ``Content.ListStatuses`` in a namespace (default ``k8s.io``), which
lists the ingests of every pull: the kubelet's CRI pulls, ``ctr``'s and ``mlnode
pull``'s. Rates come from two samples ``--interval`` apart (a one-shot run samples
twice). ``--watch`` keeps sampling until interrupted (or ``--count`` samples).

JSON (``--output json``): one document per sample, one per line::

    {"schema": "mlnode.progress/v1", "namespace": "k8s.io", "sampled_at": RFC 3339,
     "interval_seconds": float,
     "downloads": [{"ref": "layer-sha256:…", "digest": "sha256:…" | null,
                    "offset_bytes": int, "total_bytes": int, "percent": float | null,
                    "rate_bytes_per_second": int | null, "eta_seconds": float | null,
                    "started_at": RFC 3339 | null, "updated_at": RFC 3339 | null}]}

The unpack phase after a download is not visible here (containerd shows no ingest
then). Exit codes: 0, 2 bad option, 3 runtime unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from mlnode.cli._common import OutputFormat, emit_json_line, finite_float, run, stdout
from mlnode.cli._options import NamespaceOption, OutputOption, RuntimeEndpointOption
from mlnode.errors import UsageError
from mlnode.ops.progress import Download, sample_downloads, sample_to_json
from mlnode.runtime.containerd import DEFAULT_NAMESPACE, ContainerdClient
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


def _table(downloads: Sequence[Download], namespace: str) -> Table:
    table = Table(title=f"downloads in flight (containerd namespace {namespace})")
    for col in ("ref", "progress", "percent", "rate", "eta"):
        table.add_column(col, justify="left" if col == "ref" else "right")
    for d in downloads:
        total = d.status.total_bytes
        table.add_row(
            d.status.ref,
            f"{format_bytes(d.status.offset_bytes)} / {format_bytes(total) if total else '?'}",
            "" if d.percent is None else f"{d.percent:.1f}%",
            ""
            if d.rate_bytes_per_second is None
            else f"{format_bytes(int(d.rate_bytes_per_second))}/s",
            "" if d.eta_seconds is None else f"{d.eta_seconds:.0f}s",
        )
    if not downloads:
        table.caption = "no downloads in flight"
    return table


def _show_json(namespace: str, interval: float) -> Callable[[Sequence[Download]], None]:
    def show(downloads: Sequence[Download]) -> None:
        emit_json_line(
            sample_to_json(
                downloads,
                namespace=namespace,
                interval_seconds=round(interval, 3),
                at=datetime.now(UTC),
            )
        )

    return show


def _show_each(
    samples: Iterator[list[Download]],
    stop_after: int | None,
    show: Callable[[Sequence[Download]], None],
) -> None:
    """Show samples until ``stop_after`` were shown (None: until interrupted)."""
    for shown, downloads in enumerate(samples, 1):
        show(downloads)
        if stop_after is not None and shown >= stop_after:
            return


def register(app: typer.Typer) -> None:
    @app.command("progress")
    def progress_cmd(
        runtime_endpoint: RuntimeEndpointOption = None,
        namespace: NamespaceOption = DEFAULT_NAMESPACE,
        watch: WatchOption = False,
        interval: IntervalOption = 1.0,
        count: CountOption = None,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Byte progress of every pull in flight on the node, including the kubelet's."""

        def body() -> None:
            if interval <= 0:
                raise UsageError("must be more than 0", option="--interval")
            stop_after = count if watch else 1
            found = discover_runtime(runtime_endpoint)
            with ContainerdClient(found.socket_path, namespace=namespace) as ctrd:
                samples = sample_downloads(
                    ctrd.list_statuses, interval, monotonic=time.monotonic, sleep=time.sleep
                )
                if output is OutputFormat.JSON:
                    _show_each(samples, stop_after, _show_json(namespace, interval))
                elif watch and stdout.is_terminal:
                    with Live(console=stdout, auto_refresh=False) as live:
                        _show_each(
                            samples,
                            stop_after,
                            lambda d: live.update(_table(d, namespace), refresh=True),
                        )
                else:
                    _show_each(samples, stop_after, lambda d: stdout.print(_table(d, namespace)))

        run(body)
