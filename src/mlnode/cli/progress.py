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

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from mlnode.cli._common import OutputFormat, OutputOption, run, stdout
from mlnode.errors import UsageError
from mlnode.runtime.containerd import DEFAULT_NAMESPACE, ContainerdClient, IngestStatus
from mlnode.runtime.discovery import discover_runtime
from mlnode.units import format_bytes

__all__ = ["SCHEMA", "Download", "downloads_from_samples", "register", "sample_to_json"]

SCHEMA = "mlnode.progress/v1"


@dataclass(frozen=True)
class Download:
    status: IngestStatus
    rate_bytes_per_second: float | None

    @property
    def digest(self) -> str | None:
        _, sep, rest = self.status.ref.partition("-")
        candidate = rest if sep else self.status.ref
        return candidate if ":" in candidate else None

    @property
    def percent(self) -> float | None:
        total = self.status.total_bytes
        return round(100.0 * self.status.offset_bytes / total, 1) if total > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate_bytes_per_second
        left = self.status.total_bytes - self.status.offset_bytes
        if not rate or rate <= 0 or self.status.total_bytes <= 0:
            return None
        return round(left / rate, 1)


def downloads_from_samples(
    previous: Mapping[str, IngestStatus] | None,
    current: Sequence[IngestStatus],
    interval_seconds: float,
) -> list[Download]:
    """Pair each current ingest with the previous sample of the same ref for a rate."""
    out: list[Download] = []
    for s in sorted(current, key=lambda x: x.ref):
        before = previous.get(s.ref) if previous else None
        rate = None
        if before is not None and interval_seconds > 0 and s.offset_bytes >= before.offset_bytes:
            rate = (s.offset_bytes - before.offset_bytes) / interval_seconds
        out.append(Download(s, rate))
    return out


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z") if ts else None


def sample_to_json(
    downloads: Sequence[Download], *, namespace: str, interval_seconds: float, at: datetime
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "namespace": namespace,
        "sampled_at": _iso(at),
        "interval_seconds": interval_seconds,
        "downloads": [
            {
                "ref": d.status.ref,
                "digest": d.digest,
                "offset_bytes": d.status.offset_bytes,
                "total_bytes": d.status.total_bytes,
                "percent": d.percent,
                "rate_bytes_per_second": (
                    None if d.rate_bytes_per_second is None else round(d.rate_bytes_per_second)
                ),
                "eta_seconds": d.eta_seconds,
                "started_at": _iso(d.status.started_at),
                "updated_at": _iso(d.status.updated_at),
            }
            for d in downloads
        ],
    }


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


def register(app: typer.Typer) -> None:
    @app.command("progress")
    def progress_cmd(
        runtime_endpoint: Annotated[
            str | None,
            typer.Option("--runtime-endpoint", help="containerd socket (default: discover)."),
        ] = None,
        namespace: Annotated[
            str, typer.Option("--namespace", help="containerd namespace (the kubelet's: k8s.io).")
        ] = DEFAULT_NAMESPACE,
        watch: Annotated[
            bool, typer.Option("--watch", "-w", help="Keep sampling until interrupted.")
        ] = False,
        interval: Annotated[
            float, typer.Option("--interval", help="Seconds between samples (default 1).")
        ] = 1.0,
        count: Annotated[
            int | None,
            typer.Option("--count", help="With --watch: stop after this many samples."),
        ] = None,
        output: OutputFormat = OutputOption,
    ) -> None:
        """Byte progress of every pull in flight on the node, including the kubelet's."""

        def body() -> None:
            if interval <= 0:
                raise UsageError("must be more than 0", option="--interval")
            found = discover_runtime(runtime_endpoint)
            with ContainerdClient(found.socket_path, namespace=namespace) as ctrd:
                previous = {s.ref: s for s in ctrd.list_statuses()}
                t_prev = time.monotonic()
                samples = 0
                live: Live | None = None
                if watch and output is OutputFormat.HUMAN and stdout.is_terminal:
                    live = Live(console=stdout, auto_refresh=False)
                    live.start()
                try:
                    while True:
                        time.sleep(interval)
                        current = ctrd.list_statuses()
                        now = time.monotonic()
                        downloads = downloads_from_samples(previous, current, now - t_prev)
                        previous, t_prev = {s.ref: s for s in current}, now
                        samples += 1
                        if output is OutputFormat.JSON:
                            doc = sample_to_json(
                                downloads,
                                namespace=namespace,
                                interval_seconds=round(interval, 3),
                                at=datetime.now(UTC),
                            )
                            sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
                            sys.stdout.flush()
                        elif live is not None:
                            live.update(_table(downloads, namespace), refresh=True)
                        else:
                            stdout.print(_table(downloads, namespace))
                        if not watch or (count is not None and samples >= count):
                            return
                finally:
                    if live is not None:
                        live.stop()

        run(body)
