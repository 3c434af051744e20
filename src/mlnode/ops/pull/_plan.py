"""The pure part of a pull: ingest refs, lease ids, chunk ranges, the space plan, backoff,
and the options and result values. No I/O here."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import InvalidValue, UsageError
from mlnode.registry.manifest import BlobDescriptor, Platform, host_platform
from mlnode.runtime.fs import FilesystemUsage
from mlnode.units import format_bytes

__all__ = [
    "DEFAULT_UNPACK_FACTOR",
    "LEASE_EXPIRE_SECONDS",
    "LEASE_IMAGE_LABEL",
    "LEASE_PREFIX",
    "WRITE_MESSAGE_BYTES",
    "BlobPlan",
    "EventSink",
    "FreeSpace",
    "PullOptions",
    "PullResult",
    "SpacePlan",
    "backoff_seconds",
    "choose_chunk_bytes",
    "chunk_ranges",
    "default_reserve",
    "ingest_ref",
    "lease_id_for",
    "plan_space",
]

MiB = 1024 * 1024
GiB = 1024 * MiB

#: Unpacked size estimate for a compressed layer: compressed size × this factor.
#: The exact figure (gzip's ISIZE trailer, mod 2**32) needs the blob's last bytes and is
#: wrong above 4 GiB, so mlnode estimates. Typical ML layers (CUDA libraries, Python
#: wheels) unpack to 1.5-2.5×, model weights to about 1×: 2.0 errs on the safe side.
DEFAULT_UNPACK_FACTOR = 2.0
#: How long containerd keeps a pull's partial data (the lease expiry), from the first try.
LEASE_EXPIRE_SECONDS = 7 * 24 * 3600.0
LEASE_PREFIX = "mlnode-pull-"
LEASE_IMAGE_LABEL = "io.mlnode.pull.image"
_RESERVE_FRACTION = 0.05
_RESERVE_CAP = 10 * GiB
WRITE_MESSAGE_BYTES = 4 * MiB

EventSink = Callable[[dict[str, Any]], None]
#: GC hook: (bytes that must be available, patterns to protect) → bytes freed.
FreeSpace = Callable[[int, Sequence[str]], int]


# --- pure planning -------------------------------------------------------------------


def ingest_ref(role: str, digest: str) -> str:
    """containerd's ref key: ``layer-sha256:<hex>``, ``config-…``, ``manifest-…``, ``index-…``."""
    return f"{role}-{digest}"


def lease_id_for(manifest_digest: str) -> str:
    """A lease id stable per manifest, so a restarted mlnode reuses it (≤ 76 chars)."""
    return LEASE_PREFIX + manifest_digest.partition(":")[2][:32]


def default_reserve(capacity_bytes: int) -> int:
    """5 % of the filesystem's capacity or 10 GiB, whichever is smaller."""
    return min(int(capacity_bytes * _RESERVE_FRACTION), _RESERVE_CAP)


def choose_chunk_bytes(remaining: int, connections: int, max_chunk_bytes: int) -> int:
    """Range size for a split fetch: about 8 ranges per connection, 1 MiB to the max."""
    if connections <= 0:
        raise InvalidValue("connections must be positive")
    want = math.ceil(remaining / (connections * 8)) if remaining > 0 else max_chunk_bytes
    return max(min(want, max_chunk_bytes), min(MiB, max_chunk_bytes))


def chunk_ranges(start: int, total: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """Consecutive inclusive ``(first, last)`` byte ranges covering ``[start, total)``."""
    if chunk_bytes <= 0:
        raise InvalidValue("chunk_bytes must be positive")
    if start < 0 or start > total:
        raise InvalidValue(f"start {start} outside 0..{total}")
    return [(s, min(s + chunk_bytes, total) - 1) for s in range(start, total, chunk_bytes)]


@dataclass(frozen=True)
class BlobPlan:
    """One blob of the image and how much of it containerd holds already."""

    role: str
    descriptor: BlobDescriptor
    committed: bool = False
    ingest_offset_bytes: int = 0

    @property
    def remaining_bytes(self) -> int:
        if self.committed:
            return 0
        return self.descriptor.size - min(self.ingest_offset_bytes, self.descriptor.size)


@dataclass(frozen=True)
class SpacePlan:
    """The free-space check: ``required = download + unpack estimate + reserve``."""

    path: Path
    capacity_bytes: int
    available_bytes: int
    download_bytes: int
    unpack_estimate_bytes: int
    reserve_bytes: int
    unpack_factor: float
    #: The node mirror's cache bytes GC may free (complete blobs not in flight): freeable
    #: before any image, already counted as used in ``available_bytes``.
    mirror_cache_reclaimable_bytes: int = 0

    @property
    def required_bytes(self) -> int:
        return self.download_bytes + self.unpack_estimate_bytes + self.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes >= self.required_bytes

    @property
    def shortfall_bytes(self) -> int:
        return max(0, self.required_bytes - self.available_bytes)

    @property
    def freeable_bytes(self) -> int:
        """Bytes GC can free without removing an image: the mirror cache's reclaimable."""
        return self.mirror_cache_reclaimable_bytes

    @property
    def cache_suffices(self) -> bool:
        """Whether freeing the mirror's cache alone would make the pull fit."""
        return self.available_bytes + self.freeable_bytes >= self.required_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "capacity_bytes": self.capacity_bytes,
            "available_bytes": self.available_bytes,
            "download_bytes": self.download_bytes,
            "unpack_estimate_bytes": self.unpack_estimate_bytes,
            "unpack_factor": self.unpack_factor,
            "reserve_bytes": self.reserve_bytes,
            "required_bytes": self.required_bytes,
            "mirror_cache_reclaimable_bytes": self.mirror_cache_reclaimable_bytes,
            "fits": self.fits,
        }

    def describe(self) -> str:
        # without layers (the mirror's room check passes one total that already holds its
        # unpack estimate) there is nothing unpacked to estimate: say "incoming"
        incoming = (
            f"{format_bytes(self.download_bytes)} to download + "
            f"{format_bytes(self.unpack_estimate_bytes)} unpacked, estimated as "
            f"{self.unpack_factor:g}× the compressed layers"
            if self.unpack_estimate_bytes
            else f"{format_bytes(self.download_bytes)} incoming"
        )
        return (
            f"{format_bytes(self.required_bytes)} needed on {self.path} "
            f"({incoming}, + {format_bytes(self.reserve_bytes)} reserve), "
            f"{format_bytes(self.available_bytes)} available"
            + (
                f" (+ {format_bytes(self.mirror_cache_reclaimable_bytes)} reclaimable "
                "from the mirror cache)"
                if self.mirror_cache_reclaimable_bytes
                else ""
            )
        )


def plan_space(
    blobs: Sequence[BlobPlan],
    filesystem: FilesystemUsage,
    *,
    reserve_bytes: int | None = None,
    unpack_factor: float = DEFAULT_UNPACK_FACTOR,
    mirror_cache_reclaimable_bytes: int = 0,
) -> SpacePlan:
    """Whether the pull fits: compressed bytes not yet in the content store, plus every
    layer's unpacked estimate (compressed size × ``unpack_factor``, × 1 for plain-tar
    layers), plus the reserve (default :func:`default_reserve`). The mirror cache's
    reclaimable bytes are recorded as freeable (GC frees them first)."""
    unpack = 0
    for b in blobs:
        if b.role == "layer":
            factor = unpack_factor if b.descriptor.compressed else 1.0
            unpack += math.ceil(b.descriptor.size * factor)
    return SpacePlan(
        path=filesystem.path,
        capacity_bytes=filesystem.capacity_bytes,
        available_bytes=filesystem.available_bytes,
        download_bytes=sum(b.remaining_bytes for b in blobs),
        unpack_estimate_bytes=unpack,
        reserve_bytes=(
            default_reserve(filesystem.capacity_bytes) if reserve_bytes is None else reserve_bytes
        ),
        unpack_factor=unpack_factor,
        mirror_cache_reclaimable_bytes=mirror_cache_reclaimable_bytes,
    )


def backoff_seconds(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff before retry ``attempt`` (1-based): 0.5 s, 1 s, 2 s … 30 s."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


# --- options and results -------------------------------------------------------------


@dataclass(frozen=True)
class PullOptions:
    """Tuning knobs; the CLI's flags map onto these one to one."""

    connections: int = 4
    split_threshold_bytes: int = 64 * MiB
    max_chunk_bytes: int = 8 * MiB
    stall_timeout_seconds: float = 300.0
    retries: int = 5
    reserve_bytes: int | None = None
    gc: bool = True
    unpack_factor: float = DEFAULT_UNPACK_FACTOR
    platform: Platform = field(default_factory=host_platform)
    lease_expire_seconds: float = LEASE_EXPIRE_SECONDS
    runtime_wait_seconds: float = 60.0
    progress_interval_seconds: float = 0.5
    verify_digest: bool = True
    backoff_base_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.connections < 1 or self.connections > 32:
            raise UsageError("must be between 1 and 32", option="--connections")
        if self.stall_timeout_seconds <= 0:
            raise UsageError("must be more than 0", option="--stall-timeout")
        if self.retries < 0:
            raise UsageError("must be 0 or more", option="--retries")
        if self.unpack_factor < 1:
            raise UsageError("must be at least 1", option="--unpack-factor")
        if self.reserve_bytes is not None and self.reserve_bytes < 0:
            raise UsageError("must be 0 or more", option="--reserve")


@dataclass(frozen=True)
class PullResult:
    reference: str
    manifest_digest: str
    image_id: str
    total_bytes: int
    fetched_bytes: int
    fetch_seconds: float
    unpack_seconds: float
    total_seconds: float
    retries: int
    already_present: bool = False
    #: how the bytes came: "engine" (mlnode's own fetch into the content store) or
    #: "mirror" (CRI PullImage through the node mirror)
    via: str = "engine"

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.reference,
            "manifest_digest": self.manifest_digest,
            "image_id": self.image_id,
            "total_bytes": self.total_bytes,
            "fetched_bytes": self.fetched_bytes,
            "fetch_seconds": round(self.fetch_seconds, 3),
            "unpack_seconds": round(self.unpack_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "retries": self.retries,
            "already_present": self.already_present,
            "via": self.via,
        }
