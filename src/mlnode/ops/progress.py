"""Byte progress of downloads in flight: rates between two samples of containerd's ingests,
joined with what the node mirror is fetching or serving.

:func:`downloads_from_samples` pairs a sample of ``Content.ListStatuses`` with the
previous one for a rate; :func:`sample_downloads` takes the listing, the clock and the
sleep as arguments, so a test drives it without a runtime or real seconds.
:func:`join_mirror` puts containerd's ingests and the mirror's blobs (its status, read by
:mod:`mlnode.ops.mirror_status`) side by side: one :class:`Row` per digest, with both
numbers where both know the blob; these are pure. :func:`read_view` and
:func:`locate_mirror` read the mirror over HTTP. ``mlnode progress`` prints the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the types: computing rates needs no runtime client (nor gRPC)
    from mlnode.ops.mirror_status import MirrorBlob, MirrorStatus
    from mlnode.runtime.containerd import IngestStatus

__all__ = [
    "SCHEMA",
    "Download",
    "MirrorView",
    "Row",
    "downloads_from_samples",
    "join_mirror",
    "locate_mirror",
    "read_view",
    "sample_downloads",
    "sample_to_json",
]

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


@dataclass(frozen=True)
class MirrorView:
    """The node mirror as one sample saw it: its status, or why there is none.

    ``url`` None: no mirror was named or found (nothing to say). ``status`` None with
    ``url`` set: the mirror did not answer; ``error`` is the one line why."""

    url: str | None = None
    status: MirrorStatus | None = None
    error: str | None = None

    @property
    def blobs(self) -> tuple[MirrorBlob, ...]:
        return self.status.blobs if self.status is not None else ()


@dataclass(frozen=True)
class Row:
    """One blob in flight: containerd's ingest, the mirror's blob, or both (same digest)."""

    download: Download | None
    mirror: MirrorBlob | None

    @property
    def digest(self) -> str | None:
        if self.download is not None and self.download.digest is not None:
            return self.download.digest
        return self.mirror.digest if self.mirror is not None else None

    @property
    def source(self) -> str:
        if self.download is not None and self.mirror is not None:
            return "both"
        return "containerd" if self.download is not None else "mirror"


def join_mirror(downloads: Sequence[Download], mirror_blobs: Sequence[MirrorBlob]) -> list[Row]:
    """containerd's ingests (in their order), each with the mirror's blob of the same
    digest if it has one, then the mirror's other blobs, oldest first."""
    newest: dict[str, MirrorBlob] = {}
    for b in sorted(mirror_blobs, key=lambda b: b.started_monotonic):
        newest[b.digest] = b  # the mirror lists a digest once; if twice, the newest
    rows = [Row(d, newest.get(d.digest) if d.digest else None) for d in downloads]
    joined = {r.mirror.digest for r in rows if r.mirror is not None}
    rows += [Row(None, b) for b in newest.values() if b.digest not in joined]
    return rows


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z") if ts else None


def _mirror_blob_json(b: MirrorBlob) -> dict[str, Any]:
    return {
        "state": b.state,
        "registry": b.registry,
        "repository": b.repository,
        "image": b.image,
        "size_bytes": b.size_bytes,
        "upstream_bytes": b.upstream_bytes,
        "contiguous_bytes": b.contiguous_bytes,
        "served_bytes": b.served_bytes,
        "clients": b.clients,
        "connections": b.connections,
        "rate_bytes_per_second": round(b.rate_bytes_per_second),
        "eta_seconds": b.eta_seconds,
        "error": b.error,
    }


def _row_json(r: Row) -> dict[str, Any]:
    d = r.download
    if d is None:
        assert r.mirror is not None
        containerd: dict[str, Any] = dict.fromkeys(
            (
                "ref",
                "offset_bytes",
                "percent",
                "rate_bytes_per_second",
                "eta_seconds",
                "started_at",
                "updated_at",
            )
        ) | {"total_bytes": r.mirror.size_bytes}
    else:
        containerd = {
            "ref": d.status.ref,
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
    return {
        "source": r.source,
        "digest": r.digest,
        **containerd,
        "mirror": None if r.mirror is None else _mirror_blob_json(r.mirror),
    }


def _mirror_json(m: MirrorView) -> dict[str, Any] | None:
    if m.url is None:
        return None
    st = m.status
    return {
        "url": m.url,
        "reachable": st is not None,
        "error": m.error,
        "pid": st.pid if st else None,
        "cache_disk_bytes": st.cache.disk_bytes if st else None,
        "cache_max_bytes": st.cache.max_bytes if st else None,
    }


def sample_to_json(
    downloads: Sequence[Download],
    *,
    namespace: str,
    interval_seconds: float,
    at: datetime,
    mirror: MirrorView | None = None,
) -> dict[str, Any]:
    """One ``mlnode.progress/v1`` document (schema: docs/pull.md, README)."""
    view = mirror or MirrorView()
    return {
        "schema": SCHEMA,
        "namespace": namespace,
        "sampled_at": _iso(at),
        "interval_seconds": interval_seconds,
        "mirror": _mirror_json(view),
        "downloads": [_row_json(r) for r in join_mirror(downloads, view.blobs)],
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


def read_view(url: str | None, read: Callable[[str], MirrorStatus] | None = None) -> MirrorView:
    """The mirror at ``url`` for one sample: its status, or the one line why not."""
    from mlnode.ops.mirror_status import MirrorStatusError, fetch_status

    if url is None:
        return MirrorView()
    try:
        return MirrorView(url, (read or fetch_status)(url))
    except MirrorStatusError as e:
        return MirrorView(url, None, str(e))


def locate_mirror(
    explicit: str | None,
    config_path: Callable[[], Path | None],
    read: Callable[[str], MirrorStatus] | None = None,
) -> str | None:
    """The mirror ``mlnode progress`` reads: ``explicit`` (``--mirror``) as given, else
    the one the node is wired to (:func:`mlnode.ops.mirror_status.discover_mirror`: a
    loopback first host in containerd's hosts.toml, else the default address), else None.
    ``config_path`` is asked only when discovering."""
    from mlnode.ops.mirror_status import discover_mirror, fetch_status

    if explicit is not None:
        return explicit
    found = discover_mirror(config_path(), read=read or fetch_status)
    return found.url if found is not None else None
