"""Byte progress of downloads in flight: rates between two samples of containerd's ingests.

Pure: :func:`downloads_from_samples` pairs a sample of ``Content.ListStatuses`` with the
previous one for a rate; :func:`sample_downloads` takes the listing, the clock and the
sleep as arguments, so a test drives it without a runtime or real seconds.
``mlnode progress`` prints what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the type: computing rates needs no runtime client (nor gRPC)
    from mlnode.runtime.containerd import IngestStatus

__all__ = ["SCHEMA", "Download", "downloads_from_samples", "sample_downloads", "sample_to_json"]

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


def sample_downloads(
    list_statuses: Callable[[], Sequence[IngestStatus]],
    interval_seconds: float,
    *,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[list[Download]]:
    """Every ``interval_seconds``, the downloads in flight with their rate since the sample
    before (the first rate is over the first interval). Runs until the caller stops."""
    previous = {s.ref: s for s in list_statuses()}
    t_prev = monotonic()
    while True:
        sleep(interval_seconds)
        current = list_statuses()
        now = monotonic()
        yield downloads_from_samples(previous, current, now - t_prev)
        previous, t_prev = {s.ref: s for s in current}, now
