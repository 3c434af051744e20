"""Writing containerd configs: a minimal file for a placement, or the placed values merged
into an existing file, keeping everything else byte for byte.
"""

from __future__ import annotations

from typing import Any

import tomlkit

from mlnode.errors import InputError, InvalidValue
from mlnode.formats._tomlscan import (
    format_table,
    key_lines,
    parse_toml,
    remove_value,
    set_value,
)
from mlnode.formats.containerd._tables import (
    DEFAULT_CONFIG_PATH,
    DROPIN_SUGGESTED_PATH,
    V2_3,
    config_version_for,
    max_config_version_for,
    table_for,
)
from mlnode.knowledge.placement import Placement
from mlnode.versions import RuntimeKind, Version

__all__ = ["merge_containerd", "render_containerd"]


def _require_containerd(placement: Placement) -> Version:
    rt = placement.runtime
    if rt.kind is not RuntimeKind.CONTAINERD or rt.version is None:
        raise InvalidValue(f"a containerd config needs a containerd placement, not {rt}")
    return rt.version


def _grouped(
    placement: Placement, file_version: int, path: str
) -> list[tuple[tuple[str, ...], list[tuple[str, Any]]]]:
    groups: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
    for pv in placement.runtime_values:
        home = table_for(pv.row.table, pv.row.name, file_version)
        if home is None:
            raise InputError(
                f"{pv.row.name} has no place in a containerd config version {file_version}",
                path=path,
            )
        table, name = home
        groups.setdefault(table, []).append((name, pv.value))
    return list(groups.items())


def render_containerd(placement: Placement) -> str:
    """A minimal config holding the placed values, for the placement's containerd."""
    version = _require_containerd(placement)
    file_version = config_version_for(version)
    out = [
        f"# containerd image settings written by mlnode for containerd {version}"
        f" (config version {file_version}).",
        "#",
    ]
    if file_version == 2:
        out += [
            f"# Where: merge these keys into {DEFAULT_CONFIG_PATH} (`mlnode apply` does, keeping",
            "# the rest of the file). Do not add this file to `imports` on containerd 1.x: an",
            "# imported plugin table replaces the main file's whole table (sandbox_image,",
            "# runtimes, registry, ...) instead of merging key by key.",
        ]
    else:
        out += [
            f"# Where: merge these keys into {DEFAULT_CONFIG_PATH} (`mlnode apply` does), or",
            f"# save this file as {DROPIN_SUGGESTED_PATH} if config.toml has",
            '# imports = ["/etc/containerd/conf.d/*.toml"] (written by `containerd config',
            "# default` since 2.2; containerd reads no drop-in directory it is not told to).",
            "# Imported files are merged key by key; the one imported last wins.",
        ]
        if version.at_least(V2_3):
            out += [
                "# containerd 2.3 reads version 3 (it migrates it to 4 at start, with a warning);",
                "# version 3 keeps this file valid on 2.0-2.2 too.",
            ]
    out += [
        "# Then restart containerd (it reads its config only at start):",
        "#   systemctl restart containerd",
        f"version = {file_version}",
    ]
    groups = _grouped(placement, file_version, "<rendered>")
    if not groups:
        out += ["", "# (no containerd setting to write for this placement)"]
    for table, items in groups:
        out += ["", f"[{format_table(table)}]"]
        for name, value in items:
            out.append(f"{format_table((name,))} = {tomlkit.item(value).as_string()}")
    return "\n".join(out) + "\n"


def merge_containerd(text: str, path: str, placement: Placement) -> str:
    """Set the placed values in an existing config, keeping everything else byte for byte.

    The table is the one the *file's* version uses on this containerd (a version 2 file on
    containerd 2.x gets the version 2 table, which 2.x migrates); the same key in the
    other CRI tables is removed, so no stale copy can shadow or confuse. A file without a
    ``version`` and without plugin settings gets ``version = N`` for this containerd; one
    with plugin settings is a version 1 file, as containerd reads it. Merging twice gives
    the same text as merging once; a value that is already right is left as written.
    """
    version = _require_containerd(placement)
    doc = parse_toml(path, text)
    data = doc.unwrap()
    lines = key_lines(text)
    raw_version = data.get("version")
    if raw_version is None:
        if any(k in data for k in ("plugins", "disabled_plugins", "required_plugins")):
            file_version = 1
        else:
            file_version = config_version_for(version)
            if placement.runtime_values:
                doc.add("version", file_version)
    elif isinstance(raw_version, int) and not isinstance(raw_version, bool):
        file_version = max(raw_version, 1)
    else:
        raise InputError(
            f"version must be an integer, not {raw_version!r}",
            path=path,
            line=lines.get(("version",)),
        )
    limit = max_config_version_for(version)
    if file_version > limit:
        raise InputError(
            f"this file says version = {file_version}, but containerd {version} reads config"
            f" versions up to {limit}; write it for the containerd that runs",
            path=path,
            line=lines.get(("version",)),
        )
    target_version = file_version if file_version <= 2 else 3
    for table, items in _grouped(placement, target_version, path):
        for name, value in items:
            set_value(doc, table, name, value, path=path, lines=lines)
            for other in (1, 2, 3):
                home = table_for(table, name, other)
                if home is not None and home != (table, name):
                    remove_value(doc, *home)
    return doc.as_string()
