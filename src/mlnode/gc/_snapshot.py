"""The ``mlnode gc --snapshot FILE`` input: one JSON document describing a node at a moment.

Schema (keys marked * are required; docs/gc.md has the full description)::

    {
      "now"*: RFC 3339,
      "filesystem"*: {"capacity_bytes"*: int, "available_bytes"*: int},
      "policy"*: {
        "high_threshold_percent"*: int, "low_threshold_percent"*: int,
        "minimum_age_seconds"*: number, "maximum_age_seconds"*: number,
        "kubelet_uptime_seconds": number | null,     # default null: "long enough"
        "headroom_bytes": int | null,                # ml policy only
        "largest_image_bytes": int | null,           # ml policy only
        "keep": [glob, ...]                          # ml policy only
      },
      "images"*: [{
        "id"*: str, "size_bytes"*: int, "pinned"*: bool, "in_use"*: bool,
        "last_used"*: RFC 3339 | null, "first_detected"*: RFC 3339,
        "being_pulled": bool,                        # default false
        "names": [str, ...]                          # default []
      }, ...]
    }

Keys starting with ``_`` (``"_source"``, ``"_comment"``) are ignored anywhere; any other
unknown key is an error, so a typo cannot silently change a plan. Every error is one
line naming the file and the key (``FILE:LINE:COL`` for malformed JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mlnode.errors import InputError
from mlnode.formats.textcheck import nesting_error, text_problem
from mlnode.gc._model import FilesystemState, GcImage, GcPolicy, InvalidGcInput

__all__ = ["GcSnapshot", "SnapshotError", "load_snapshot", "parse_snapshot", "parse_timestamp"]

T = TypeVar("T")


class SnapshotError(InputError):
    """A snapshot we cannot use; renders as ``FILE:LINE:COL: message`` when the spot is known."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if path is not None and line is not None and column is not None:
            super().__init__(f"{path}:{line}:{column}: {message}")
            self.path = Path(path)
            self.line = line
        else:
            super().__init__(message, path=path, line=line)
        self.column = column


@dataclass(frozen=True, kw_only=True)
class GcSnapshot:
    """A node's images and image filesystem at ``now``, with the policy to plan under."""

    now: datetime
    filesystem: FilesystemState
    policy: GcPolicy
    images: tuple[GcImage, ...]


_TOP_KEYS = {"now": True, "filesystem": True, "policy": True, "images": True}
_FS_KEYS = {"capacity_bytes": True, "available_bytes": True}
_POLICY_KEYS = {
    "high_threshold_percent": True,
    "low_threshold_percent": True,
    "minimum_age_seconds": True,
    "maximum_age_seconds": True,
    "kubelet_uptime_seconds": False,
    "headroom_bytes": False,
    "largest_image_bytes": False,
    "keep": False,
}
_IMAGE_KEYS = {
    "id": True,
    "size_bytes": True,
    "pinned": True,
    "in_use": True,
    "last_used": True,
    "first_detected": True,
    "being_pulled": False,
    "names": False,
}


def parse_timestamp(value: object, key: str = "timestamp") -> datetime:
    """An RFC 3339 timestamp with a UTC offset, as an aware UTC datetime.

    Fractions beyond microseconds are truncated (Python's resolution). Raises
    :class:`~mlnode.gc.InvalidGcInput` naming ``key``.
    """
    if not isinstance(value, str):
        raise InvalidGcInput(key, f"must be an RFC 3339 timestamp string, got {_show(value)}")
    text = value.strip()
    if len(text) < 19 or text[10] not in "Tt":
        raise InvalidGcInput(
            key, f"must be an RFC 3339 timestamp like 2024-05-01T12:00:00Z, got {text!r}"
        )
    try:
        parsed = datetime.fromisoformat(text[:10] + "T" + text[11:].replace("z", "Z"))
    except ValueError as e:
        raise InvalidGcInput(key, f"not an RFC 3339 timestamp: {text!r} ({e})") from e
    if parsed.tzinfo is None:
        raise InvalidGcInput(key, f"needs a UTC offset such as Z or +00:00: {text!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as e:
        raise InvalidGcInput(key, f"out of range: {text!r}") from e


def _show(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _obj(value: object, key: str, spec: Mapping[str, bool]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidGcInput(key, f"must be a JSON object, got {_show(value)}")
    where = f"{key}." if key else ""
    for name, required in spec.items():
        if required and name not in value:
            raise InvalidGcInput(f"{where}{name}", "missing")
    for name in value:
        if name not in spec and not name.startswith("_"):
            raise InvalidGcInput(f"{where}{name}", f"unknown key (known: {', '.join(spec)})")
    return value


def _int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidGcInput(key, f"must be an integer, got {_show(value)}")
    if value < 0:
        raise InvalidGcInput(key, f"must not be negative, got {value}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidGcInput(key, f"must be a number, got {_show(value)}")
    if not math.isfinite(value) or value < 0:
        raise InvalidGcInput(key, f"must be a finite number >= 0, got {value}")
    return float(value)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidGcInput(key, f"must be true or false, got {_show(value)}")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidGcInput(key, f"must be a list of strings, got {_show(value)}")
    return tuple(value)


def _optional(value: object, key: str, convert: Callable[[object, str], T]) -> T | None:
    return None if value is None else convert(value, key)


def _build(key: str, make: Callable[..., T], **kwargs: Any) -> T:
    """Run a dataclass constructor, naming the key that its validation rejected."""
    try:
        return make(**kwargs)
    except InvalidGcInput as e:
        raise InvalidGcInput(f"{key}.{e.key}" if key else e.key, e.message) from e


def _parse(data: object) -> GcSnapshot:
    top = _obj(data, "", _TOP_KEYS)
    now = parse_timestamp(top["now"], "now")

    fs_raw = _obj(top["filesystem"], "filesystem", _FS_KEYS)
    capacity = _int(fs_raw["capacity_bytes"], "filesystem.capacity_bytes")
    available = _int(fs_raw["available_bytes"], "filesystem.available_bytes")
    # capacity 0 and available > capacity are readings the kubelet acts on (an error after
    # its age pass; a clamp), so they are the planners' business, not refused here.
    filesystem = _build(
        "filesystem", FilesystemState, capacity_bytes=capacity, available_bytes=available
    )

    p = _obj(top["policy"], "policy", _POLICY_KEYS)
    values = {
        "high_threshold_percent": _int(
            p["high_threshold_percent"], "policy.high_threshold_percent"
        ),
        "low_threshold_percent": _int(p["low_threshold_percent"], "policy.low_threshold_percent"),
        "minimum_age_seconds": _number(p["minimum_age_seconds"], "policy.minimum_age_seconds"),
        "maximum_age_seconds": _number(p["maximum_age_seconds"], "policy.maximum_age_seconds"),
        "kubelet_uptime_seconds": _optional(
            p.get("kubelet_uptime_seconds"), "policy.kubelet_uptime_seconds", _number
        ),
        "headroom_bytes": _optional(p.get("headroom_bytes"), "policy.headroom_bytes", _int),
        "largest_image_bytes": _optional(
            p.get("largest_image_bytes"), "policy.largest_image_bytes", _int
        ),
        "keep_patterns": _strings(p.get("keep", []), "policy.keep"),
    }
    policy = _build("policy", GcPolicy, **values)

    raw_images = top["images"]
    if not isinstance(raw_images, list):
        raise InvalidGcInput("images", f"must be a JSON list, got {_show(raw_images)}")
    images: list[GcImage] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_images):
        key = f"images[{n}]"
        i = _obj(raw, key, _IMAGE_KEYS)
        image_id = i["id"]
        if not isinstance(image_id, str) or not image_id:
            raise InvalidGcInput(f"{key}.id", f"must be a non-empty string, got {_show(image_id)}")
        if image_id in seen:
            raise InvalidGcInput(f"{key}.id", f"duplicate image id {image_id!r}")
        seen.add(image_id)
        fields: dict[str, Any] = {
            "id": image_id,
            "size_bytes": _int(i["size_bytes"], f"{key}.size_bytes"),
            "pinned": _bool(i["pinned"], f"{key}.pinned"),
            "in_use": _bool(i["in_use"], f"{key}.in_use"),
            "being_pulled": _bool(i.get("being_pulled", False), f"{key}.being_pulled"),
            "last_used": _optional(i["last_used"], f"{key}.last_used", parse_timestamp),
            "first_detected": parse_timestamp(i["first_detected"], f"{key}.first_detected"),
            "names": _strings(i.get("names", []), f"{key}.names"),
        }
        images.append(_build(key, GcImage, **fields))
    return GcSnapshot(now=now, filesystem=filesystem, policy=policy, images=tuple(images))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidGcInput(k, "appears twice in one object")
        out[k] = v
    return out


def parse_snapshot(data: object, *, source: Path | str = "<snapshot>") -> GcSnapshot:
    """Validate an already-decoded snapshot; errors name ``source`` and the key."""
    try:
        return _parse(data)
    except InvalidGcInput as e:
        raise SnapshotError(str(e), path=source) from e


def load_snapshot(path: Path) -> GcSnapshot:
    """Read and validate a snapshot file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot read: {e.strerror or e}", path=path) from e
    except UnicodeDecodeError as e:
        raise SnapshotError(f"not UTF-8 text: {e.reason}", path=path) from e
    problem = text_problem(text)  # NUL bytes, nesting no snapshot has (json would recurse)
    if problem is not None:
        raise SnapshotError(problem[1], path=path, line=problem[0])
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        deep = nesting_error(path, text)
        raise SnapshotError(str(deep).split(": ", 2)[-1], path=path, line=deep.line) from None
    except json.JSONDecodeError as e:
        raise SnapshotError(
            f"invalid JSON: {e.msg}", path=path, line=e.lineno, column=e.colno
        ) from e
    except InvalidGcInput as e:
        raise SnapshotError(str(e), path=path) from e
    return parse_snapshot(data, source=path)
