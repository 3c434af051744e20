"""Where profile inputs come from besides inspection: a profile file, and the options."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnode.errors import UsageError
from mlnode.planning._documents import Document, load_document
from mlnode.planning.profile._model import ProfileInput
from mlnode.planning.profile._values import KEYS
from mlnode.units import format_bytes

__all__ = ["load_profile", "option_input"]


def load_profile(path: Path | str) -> ProfileInput:
    """Read a profile file (YAML, or JSON when it ends in ``.json``).

    Raises InputError naming ``file:line`` and the key for unknown keys, values that do not
    parse, impossible values (capacity 0, negative sizes, ``concurrent_pulls`` < 1, a
    largest image bigger than the disk, a layer bigger than its image) and keys given twice
    under both spellings.
    """
    doc = load_document(path, what="profile")
    by_name = {k.name: k for k in KEYS}
    by_field = {k.field: k for k in KEYS}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    seen_as: dict[str, str] = {}
    for raw_key, raw in doc.data.items():
        key = by_name.get(raw_key) or by_field.get(raw_key)
        if key is None:
            known = ", ".join(k.name for k in KEYS)
            raise doc.error(f"unknown key {raw_key!r} (known keys: {known})", raw_key)
        if key.field in seen_as:
            raise doc.error(
                f"{raw_key!r} repeats {seen_as[key.field]!r} (the same value spelt two ways)",
                raw_key,
            )
        seen_as[key.field] = raw_key
        if raw is None:
            raise doc.error(f"{raw_key}: no value", raw_key)
        try:
            value = key.parse(raw)
        except ValueError as e:
            raise doc.error(f"{raw_key}: {e}", raw_key) from e
        problem = key.check(value)
        if problem:
            raise doc.error(f"{raw_key}: {raw!r} {problem}", raw_key)
        values[key.field] = value
        line = doc.line(raw_key)
        sources[key.field] = f"profile {doc.path}" + (f":{line}" if line else "")

    _cross_check_file(doc, values, seen_as)
    return ProfileInput(**values, sources=sources)


def _cross_check_file(doc: Document, values: Mapping[str, Any], spelt: Mapping[str, str]) -> None:
    disk = values.get("image_disk_capacity_bytes")
    image = values.get("largest_image_bytes")
    layer = values.get("largest_layer_bytes")
    if disk is not None and image is not None and image > disk:
        key = spelt["largest_image_bytes"]
        raise doc.error(
            f"{key}: {format_bytes(image)} is larger than the image disk ({format_bytes(disk)})",
            key,
        )
    if image is not None and layer is not None and layer > image:
        key = spelt["largest_layer_bytes"]
        raise doc.error(
            f"{key}: {format_bytes(layer)} is larger than the largest image "
            f"({format_bytes(image)}); a layer is part of an image",
            key,
        )
    if "largest_image_unpacked_bytes" in values and "unpack_ratio" in values:
        key = spelt["unpack_ratio"]
        raise doc.error(
            f"give either {spelt['largest_image_unpacked_bytes']} or {key}, not both", key
        )


def option_input(
    raw: Mapping[str, tuple[str, Any]],
) -> ProfileInput:
    """Build the options layer: field → (option name, text as typed). UsageError on bad text."""
    by_field = {k.field: k for k in KEYS}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (option, text) in raw.items():
        if text is None:
            continue
        key = by_field[name]
        try:
            value = key.parse(text)
        except ValueError as e:
            raise UsageError(str(e), option=option) from e
        problem = key.check(value)
        if problem:
            raise UsageError(f"{text!r} {problem}", option=option)
        values[name] = value
        sources[name] = f"option {option}"
    return ProfileInput(**values, sources=sources)
