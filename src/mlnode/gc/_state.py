"""When each image was first seen and last used: the record mlnode keeps across restarts.

The kubelet keeps these times in memory only, so a kubelet restart forgets them
(kubernetes#119711): up to v1.28 every image present at start counts as detected at Go's
zero time, which voids the minimum-age protection, and on every version an image used
before the restart looks never used. mlnode records them in a small JSON file instead
(read and written by :class:`mlnode.ops.image_state.ImageStateFile`).

:func:`detect` is the kubelet's ``detectImages`` as a pure function:

- an image seen for the first time gets ``first_detected = now``;
- every image referenced by a listed container (any state) gets ``last_used = now``;
- records of images no longer listed are dropped.

It also remembers ``largest_image_bytes``, the largest image size ever observed, which
the ml policy uses as a headroom floor after that image is gone.

:func:`state_to_json` / :func:`state_from_json` are the file's format::

    {"version": 1, "largest_image_bytes": int,
     "images": {"<image id>": {"first_detected": RFC 3339, "last_used": RFC 3339 | null}}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlnode.errors import InvalidValue
from mlnode.gc._model import InvalidGcInput
from mlnode.gc._snapshot import parse_timestamp

__all__ = [
    "ImageRecord",
    "ImageState",
    "ObservedImage",
    "detect",
    "state_from_json",
    "state_to_json",
]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ObservedImage:
    """An image as listed by the runtime: its id and size."""

    id: str
    size_bytes: int = 0


@dataclass(frozen=True)
class ImageRecord:
    """What mlnode remembers about one image."""

    first_detected: datetime
    last_used: datetime | None = None


@dataclass(frozen=True)
class ImageState:
    """All records, by image id, and the largest image size ever observed."""

    images: Mapping[str, ImageRecord] = field(default_factory=dict)
    largest_image_bytes: int = 0


def detect(
    state: ImageState,
    images: Iterable[ObservedImage],
    images_in_use: Iterable[str],
    now: datetime,
) -> ImageState:
    """Return the state after observing ``images`` at ``now`` (see the module docstring).

    ``images_in_use`` are the image ids referenced by the runtime's containers, all states
    included, as the kubelet's ``GetPods(all=true)`` sees them.
    """
    if now.tzinfo is None:
        raise InvalidValue("now must be timezone-aware")
    in_use = set(images_in_use)
    records: dict[str, ImageRecord] = {}
    largest = state.largest_image_bytes
    for image in images:
        old = state.images.get(image.id) or records.get(image.id)
        first = old.first_detected if old is not None else now
        last = now if image.id in in_use else (old.last_used if old is not None else None)
        records[image.id] = ImageRecord(first_detected=first, last_used=last)
        largest = max(largest, image.size_bytes)
    return ImageState(images=records, largest_image_bytes=largest)


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def state_to_json(state: ImageState) -> dict[str, Any]:
    """The state file's document for ``state`` (images sorted by id)."""
    return {
        "version": _FORMAT_VERSION,
        "largest_image_bytes": state.largest_image_bytes,
        "images": {
            image_id: {
                "first_detected": _rfc3339(rec.first_detected),
                "last_used": _rfc3339(rec.last_used) if rec.last_used is not None else None,
            }
            for image_id, rec in sorted(state.images.items())
        },
    }


def state_from_json(data: object) -> ImageState:
    """Validate a decoded state file; raises :class:`InvalidGcInput` naming the key."""
    if not isinstance(data, dict):
        raise InvalidGcInput("(top level)", "must be a JSON object")
    version = data.get("version")
    if version != _FORMAT_VERSION:
        raise InvalidGcInput("version", f"unsupported state file version {version!r}")
    largest = data.get("largest_image_bytes", 0)
    if isinstance(largest, bool) or not isinstance(largest, int) or largest < 0:
        raise InvalidGcInput("largest_image_bytes", f"must be an integer >= 0, got {largest!r}")
    raw = data.get("images")
    if not isinstance(raw, dict):
        raise InvalidGcInput("images", "must be a JSON object keyed by image id")
    records: dict[str, ImageRecord] = {}
    for image_id, rec in raw.items():
        key = f"images[{image_id!r}]"
        if not isinstance(rec, dict):
            raise InvalidGcInput(key, "must be a JSON object")
        if "first_detected" not in rec:
            raise InvalidGcInput(f"{key}.first_detected", "missing")
        first = parse_timestamp(rec["first_detected"], f"{key}.first_detected")
        last_raw = rec.get("last_used")
        last = None if last_raw is None else parse_timestamp(last_raw, f"{key}.last_used")
        records[image_id] = ImageRecord(first_detected=first, last_used=last)
    return ImageState(images=records, largest_image_bytes=largest)
