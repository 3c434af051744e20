"""Downloads in flight on a node: their rates, which image they belong to, and which are
stalled (D207) or merely running (D208).

What containerd reports, read from its source and measured on 1.6.20 (the testbed:
tests/doctor/test_node_real.py). ``Content.ListStatuses`` gives, per ingest, the bytes
written so far (``offset``: the size of the ingest's data file), the expected ``total``,
``started_at`` and ``updated_at``. The local content store's status is the later of the
ingest's ``updatedat`` file and the data file's modification time, so ``updated_at`` is
the time of the last write and stays there when bytes stop: a pull stalled at byte
3,145,728 kept ``updated_at`` at its last write while ``now - updated_at`` grew one second
per second (5.1 s after 5 s of stall). So ``stalled_seconds = now - updated_at``.

One caveat, also from the source and seen on the testbed: containerd's copy loop fills a
1 MiB buffer (``io.ReadAtLeast``) before it writes, so ``offset`` and ``updated_at`` move
in steps of 1 MiB (the stalled offset above is exactly 3 MiB). A download slower than
1 MiB per ``stall_after_seconds`` looks silent between steps; a row is therefore only
called stalled when the offset also did not move between two samples (no positive rate).
The runtime's own progress timeout (1.7+) watches the bytes it reads, not this offset.

Rates come from two samples ``interval_seconds`` apart
(:func:`mlnode.ops.progress.downloads_from_samples`), and containerd's ingests are joined
with the node mirror's blobs by digest (:func:`mlnode.ops.progress.join_mirror`), so a
row knows whether the mirror is still receiving from the registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mlnode.doctor._layers import images_of_layers
from mlnode.doctor._model import Finding, PullRow
from mlnode.ops.mirror_status import DEFAULT_MIRROR_URL
from mlnode.ops.progress import Download, Row, downloads_from_samples, join_mirror
from mlnode.units import format_bytes, format_go_duration

if TYPE_CHECKING:
    from mlnode.ops.mirror_status import MirrorBlob
    from mlnode.ports import PullStatusSource
    from mlnode.runtime.containerd import IngestStatus

__all__ = [
    "BUFFER_BYTES",
    "PullSample",
    "images_of_layers",
    "pull_findings",
    "pull_rows",
    "sample_pulls",
    "short_digest",
]

BUFFER_BYTES = 1024 * 1024
"""containerd's copy buffer: an ingest's offset and updated_at move in steps of this."""

_NO_IMAGES: Mapping[str, str] = MappingProxyType({})
_SOURCE = {"both": "containerd+mirror", "containerd": "containerd", "mirror": "mirror"}


@dataclass(frozen=True)
class PullSample(PullRow):
    """A :class:`PullRow` with what the finding needs and the shared row does not carry:
    containerd's timestamps and the mirror's side of the same blob (None: no mirror row)."""

    started_at: datetime | None = None
    updated_at: datetime | None = None
    mirror_state: str | None = None
    mirror_upstream_bytes: int | None = None
    mirror_contiguous_bytes: int | None = None
    mirror_rate_bytes_per_second: float | None = None
    eta_seconds: float | None = None


def short_digest(digest: str | None) -> str:
    """``sha256:`` and the first 12 hex digits, as ``crictl`` and ``ctr`` shorten ids."""
    if not digest:
        return "(unknown digest)"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def _stalled_seconds(d: Download, now: datetime, interval_seconds: float | None) -> float | None:
    updated = d.status.updated_at
    if updated is not None:
        return max(0.0, (now - updated).total_seconds())
    if d.rate_bytes_per_second is None:
        return None
    # No timestamp (a store that gives none): silent for at least the interval, or not.
    return float(interval_seconds or 0.0) if d.rate_bytes_per_second == 0 else 0.0


def _row(r: Row, now: datetime, interval: float | None, images: Mapping[str, str]) -> PullSample:
    d, m = r.download, r.mirror
    digest = r.digest
    image = images.get(digest) if digest else None
    if image is None and m is not None:
        image = m.image or f"{m.registry}/{m.repository}"
    mirror_fields: dict[str, Any] = {}
    if m is not None:
        mirror_fields = {
            "mirror_state": m.state,
            "mirror_upstream_bytes": m.upstream_bytes,
            "mirror_contiguous_bytes": m.contiguous_bytes,
            "mirror_rate_bytes_per_second": m.rate_bytes_per_second,
        }
    if d is None:
        assert m is not None
        return PullSample(
            ref="",
            digest=digest,
            offset_bytes=m.upstream_bytes,
            total_bytes=m.size_bytes,
            rate_bytes_per_second=m.rate_bytes_per_second,
            stalled_seconds=None,  # the mirror's status says no time of its last byte
            image=image,
            source="mirror",
            eta_seconds=m.eta_seconds,
            **mirror_fields,
        )
    return PullSample(
        ref=d.status.ref,
        digest=digest,
        offset_bytes=d.status.offset_bytes,
        total_bytes=d.status.total_bytes,
        rate_bytes_per_second=d.rate_bytes_per_second,
        stalled_seconds=_stalled_seconds(d, now, interval),
        image=image,
        source=_SOURCE[r.source],
        started_at=d.status.started_at,
        updated_at=d.status.updated_at,
        eta_seconds=d.eta_seconds,
        **mirror_fields,
    )


def pull_rows(
    statuses_now: Sequence[IngestStatus],
    statuses_before: Sequence[IngestStatus] | None,
    *,
    interval_seconds: float | None,
    now: datetime,
    mirror_blobs: Sequence[MirrorBlob] = (),
    images_by_digest: Mapping[str, str] = _NO_IMAGES,
) -> tuple[PullRow, ...]:
    """One row per blob in flight: containerd's ingests (rate from the sample before, if
    any), each joined with the mirror's blob of the same digest, then the mirror's other
    blobs. ``now`` is when ``statuses_now`` was taken (UTC)."""
    before = None if statuses_before is None else {s.ref: s for s in statuses_before}
    downloads = downloads_from_samples(before, statuses_now, interval_seconds or 0.0)
    rows = join_mirror(downloads, mirror_blobs)
    return tuple(_row(r, now, interval_seconds, images_by_digest) for r in rows)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sample_pulls(
    content: PullStatusSource,
    *,
    interval_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = _utcnow,
    mirror_blobs: Sequence[MirrorBlob] = (),
    images_by_digest: Mapping[str, str] = _NO_IMAGES,
) -> tuple[PullRow, ...]:
    """Two samples of ``ListStatuses`` ``interval_seconds`` apart (one when it is 0), as rows."""
    before = content.list_statuses() if interval_seconds > 0 else None
    if before is not None:
        sleep(interval_seconds)
    current = content.list_statuses()
    return pull_rows(
        current,
        before,
        interval_seconds=interval_seconds if before is not None else None,
        now=now(),
        mirror_blobs=mirror_blobs,
        images_by_digest=images_by_digest,
    )


# --- findings ------------------------------------------------------------------------------


def _iso(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "unknown"


def _rate_text(rate: float | None) -> str:
    return "not measured (one sample)" if rate is None else f"{format_bytes(int(rate))}/s"


def _seconds(s: float) -> str:
    return format_go_duration(float(round(s)))


def _kind(row: PullRow) -> str:
    """What containerd's ingest ref says the blob is (its pulls name refs ``layer-…``,
    ``config-…``, ``manifest-…``, ``index-…``)."""
    kind = row.ref.partition("-")[0]
    return kind if kind in ("layer", "config", "manifest", "index") else "blob"


def _is_stalled(row: PullRow, stall_after_seconds: float) -> bool:
    if row.stalled_seconds is None or row.stalled_seconds < stall_after_seconds:
        return False
    if row.rate_bytes_per_second is not None and row.rate_bytes_per_second > 0:
        return False  # bytes moved between the samples: a slow link, not silence
    return row.total_bytes <= 0 or row.offset_bytes < row.total_bytes


def _bytes_text(row: PullRow) -> str:
    if row.total_bytes > 0:
        pct = 100.0 * row.offset_bytes / row.total_bytes
        return (
            f"{row.offset_bytes} of {row.total_bytes} bytes ({pct:.1f} %: "
            f"{format_bytes(row.offset_bytes)} of {format_bytes(row.total_bytes)})"
        )
    return f"{row.offset_bytes} bytes (total not known)"


def _where(row: PullRow) -> tuple[str, str]:
    """(where the stall is, in words; "registry" or "mirror") from the mirror's side.

    containerd's offset lags what it has received by up to its 1 MiB buffer (and socket
    buffers), so "the mirror has more" needs the mirror's servable prefix to be past that,
    or the blob complete; a mirror still receiving other ranges is not that."""
    state = getattr(row, "mirror_state", None)
    if state is None:
        return (
            "No node mirror lists this blob: containerd reads it from the registry itself, "
            "so the registry (or the network to it) stopped sending.",
            "registry",
        )
    contiguous = getattr(row, "mirror_contiguous_bytes", None) or 0
    if state == "complete" or (
        state != "failed" and contiguous >= row.offset_bytes + 2 * BUFFER_BYTES
    ):
        return (
            f"The node mirror can serve {contiguous} bytes of it ({state}) but containerd "
            f"has {row.offset_bytes}: the stall is between the mirror and containerd.",
            "mirror",
        )
    if state == "failed":
        return (
            "The node mirror's fetch of this blob failed: containerd waits on the mirror "
            "until its connection breaks, then tries the next host in hosts.toml.",
            "mirror",
        )
    return (
        f"The node mirror is waiting for the registry too ({state}, {contiguous} contiguous "
        "bytes from upstream): the stall is at the registry (or the network to it).",
        "registry",
    )


def _deadline_text(row: PullRow, deadline_seconds: float | None, deadline_source: str) -> str:
    if deadline_seconds is None and deadline_source.strip().lower() in ("", "unknown"):
        return (
            "The runtime's pull progress deadline is not known (its version was not read): "
            "with one, containerd cancels the pull after that much silence and the retry "
            "starts at byte 0; without one, the pull hangs until its pod is deleted."
        )
    if deadline_seconds is None or deadline_seconds <= 0:
        state = "off" if deadline_seconds == 0 else "none"
        return (
            f"The runtime has no pull progress deadline ({state}: {deadline_source}): the pull "
            "hangs until its pod is deleted, and a new pull starts the layer again at byte 0."
        )
    silent = row.stalled_seconds or 0.0
    left = deadline_seconds - silent
    when = f"in about {_seconds(left)}" if left > 0 else "now (the deadline has passed)"
    return (
        f"With the runtime's progress deadline of {_seconds(deadline_seconds)} "
        f"({deadline_source}), containerd cancels it after {_seconds(deadline_seconds)} of "
        f"silence ({when}) and the retry starts at byte 0: the {row.offset_bytes} bytes "
        "so far are fetched again."
    )


def _fix(where: str, mirror_url: str | None, wired: bool) -> str:
    watch = f"mlnode progress --mirror {mirror_url}" if mirror_url else "mlnode progress"
    if not wired:
        return (
            "nothing on the node makes a stalled registry send; watch it with "
            f"`{watch}` and check the registry. So that a retry resumes instead of starting "
            "at byte 0, run the node mirror (`mlnode mirror`) and wire the node to it: "
            f"`mlnode apply --mirror {DEFAULT_MIRROR_URL}` (it keeps fetching when containerd "
            "gives up, and serves the retry from its cache)"
        )
    if where == "registry":
        return (
            "the node mirror is wired and waits for the registry: nothing on the node makes "
            f"the registry send; watch both sides with `{watch}` and check the registry"
        )
    return (
        f"the mirror has the bytes: compare both sides with `{watch}` and read the mirror's "
        "log; a new pull of the image is served from the mirror's cache"
    )


def _stall_finding(
    node: str,
    row: PullRow,
    *,
    deadline_seconds: float | None,
    deadline_source: str,
    mirror_url: str | None,
) -> Finding:
    image = row.image or "image not known"
    silent = row.stalled_seconds or 0.0
    started = getattr(row, "started_at", None)
    updated = getattr(row, "updated_at", None)
    where, place = _where(row)
    wired = mirror_url is not None or "mirror" in row.source
    evidence = [
        f"{_kind(row)} {row.digest or '(unknown)'} of {image}",
        f"offset {_bytes_text(row)}",
        f"rate {_rate_text(row.rate_bytes_per_second)}",
        f"no byte written for {silent:.0f} s (containerd's updated_at {_iso(updated)})",
        f"started at {_iso(started)}",
    ]
    if row.ref:
        evidence.append(f"ingest ref {row.ref}")
    cause = (
        f"No byte of this {_kind(row)} reached containerd's content store for {_seconds(silent)}. "
        f"{where} {_deadline_text(row, deadline_seconds, deadline_source)} "
        f"(containerd writes in {format_bytes(BUFFER_BYTES)} steps: a very slow link looks "
        "silent between them; the offset also did not move between the two samples.)"
    )
    return Finding(
        "D207",
        f"download of {_kind(row)} {short_digest(row.digest)} of {image} stalled for "
        f"{_seconds(silent)} at {format_bytes(row.offset_bytes)}",
        cause,
        _fix(place, mirror_url, wired),
        evidence=tuple(evidence),
        node=node,
        subject=row.digest or row.ref,
    )


def _active_finding(node: str, row: PullRow) -> Finding:
    image = row.image or "image not known"
    eta = getattr(row, "eta_seconds", None)
    eta_text = "unknown" if eta is None else _seconds(eta)
    evidence = [
        f"offset {_bytes_text(row)}",
        f"rate {_rate_text(row.rate_bytes_per_second)}",
        f"ETA {eta_text}",
        f"source {row.source}",
    ]
    if row.ref:
        evidence.append(f"ingest ref {row.ref}")
    return Finding(
        "D208",
        f"downloading {short_digest(row.digest)} of {image}: "
        f"{format_bytes(row.offset_bytes)} of {format_bytes(row.total_bytes)} at "
        f"{_rate_text(row.rate_bytes_per_second)}, ETA {eta_text}",
        "a download in flight (rate over the two samples; ETA at that rate)",
        "",
        evidence=tuple(evidence),
        node=node,
        subject=row.digest or row.ref,
    )


def pull_findings(
    node: str,
    rows: Sequence[PullRow],
    *,
    deadline_seconds: float | None,
    deadline_source: str,
    stall_after_seconds: float,
    mirror_url: str | None = None,
) -> list[Finding]:
    """D207 for each download silent for at least ``stall_after_seconds`` (and not moving
    between the samples), D208 for each other one. ``deadline_seconds``: the runtime's pull
    progress deadline in effect (None: none, 0: off); ``mirror_url``: the node mirror the
    node is wired to, if any (a row the mirror also lists says so by itself)."""
    out: list[Finding] = []
    for row in rows:
        if row.source == "mirror" and getattr(row, "mirror_state", None) not in (
            "fetching",
            "verifying",
        ):
            continue  # the mirror's finished or failed blob: not a download in flight
        if _is_stalled(row, stall_after_seconds):
            out.append(
                _stall_finding(
                    node,
                    row,
                    deadline_seconds=deadline_seconds,
                    deadline_source=deadline_source,
                    mirror_url=mirror_url,
                )
            )
        else:
            out.append(_active_finding(node, row))
    return out
