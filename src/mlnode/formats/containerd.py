"""containerd's ``config.toml`` (and the files it imports): read, render, merge.

Where the CRI image settings live depends on the file's ``version`` (containerd
``RELEASES.md``, "Daemon Configuration"; ``cmd/containerd/server/config/config.go``):

    version 1 (or no version key)  [plugins.cri]                          containerd ≥ 1.0
    version 2                      [plugins."io.containerd.grpc.v1.cri"]  containerd ≥ 1.3
    version 3                      [plugins."io.containerd.cri.v1.images"] containerd ≥ 2.0
    version 4                      same CRI tables as 3 (server settings  containerd ≥ 2.3
                                   move to plugins)

A missing ``version`` means 1 in every release (1.x ``GetVersion``; 2.x migrates from 0
through 1). containerd 2.x migrates older files at start-up: ``v1Migrate`` renames
``plugins.cri`` to ``plugins."io.containerd.grpc.v1.cri"``, then the CRI images plugin's
``configMigration`` copies ``image_pull_progress_timeout``, ``max_concurrent_downloads``,
``registry``, ``sandbox_image`` (→ ``pinned_images.sandbox``) and ``containerd.snapshotter``
/ ``discard_unpacked_layers`` into ``io.containerd.cri.v1.images``, overwriting a value
already there (``plugins/cri/images/plugin.go``). So in a version 1 or 2 file the grpc
table is the one that counts, also on 2.x — and on 2.3 the migration also runs for
version 3 files, so a stale grpc-table key overrides the images table there.

Imports: ``imports = [...]`` are loaded breadth-first after the file that names them,
each later file overriding earlier ones; a path with ``*`` is a glob (sorted matches),
a relative path is relative to the importing file's directory (in 1.x only for non-glob
paths: a relative glob is relative to containerd's working directory). In 1.x an imported
``[plugins."<id>"]`` table *replaces* the whole table of that plugin (``mergeConfig``:
``to.Plugins[k] = v``; checked with containerd 1.6.20); 2.x merges plugin tables key by
key. containerd reads no drop-in directory on its own: ``/etc/containerd/conf.d/*.toml``
is only read when ``config.toml`` imports it, as ``containerd config default`` writes
since v2.2.0 (commit 9ca659a, ``defaults.DefaultConfigIncludePattern``). A missing
non-glob import stops containerd from starting.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit

from mlnode.errors import InputError
from mlnode.formats._tomlscan import (
    flatten,
    format_table,
    key_lines,
    line_of,
    parse_toml,
    remove_value,
    set_value,
)
from mlnode.formats.base import DocumentKind, ParsedDocument, RuntimeValueOccurrence
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "CRI_V1",
    "CRI_V2",
    "CRI_V3_IMAGES",
    "CRI_V3_RUNTIME",
    "DEFAULT_CONFIG_PATH",
    "DROPIN_SUGGESTED_PATH",
    "config_version_for",
    "effective_containerd_values",
    "max_config_version_for",
    "merge_containerd",
    "read_containerd",
    "read_containerd_with_imports",
    "render_containerd",
    "table_for",
]

DEFAULT_CONFIG_PATH = "/etc/containerd/config.toml"
DROPIN_SUGGESTED_PATH = "/etc/containerd/conf.d/90-mlnode-images.toml"

CRI_V1: tuple[str, ...] = ("plugins", "cri")
CRI_V2: tuple[str, ...] = ("plugins", "io.containerd.grpc.v1.cri")
CRI_V3_IMAGES: tuple[str, ...] = ("plugins", "io.containerd.cri.v1.images")
CRI_V3_RUNTIME: tuple[str, ...] = ("plugins", "io.containerd.cri.v1.runtime")
_GRPC_SERVER_V4: tuple[str, ...] = ("plugins", "io.containerd.server.v1.grpc")

_V2_0 = Version(2, 0, 0)
_V2_3 = Version(2, 3, 0)

# Image keys whose place inside the CRI table differs between version 2 (relative to
# plugins."io.containerd.grpc.v1.cri") and version 3 (relative to io.containerd.cri.v1.images),
# as configMigration moves them. Keys not listed keep their sub-path (registry.*,
# image_decryption.*, image_pull_progress_timeout, max_concurrent_downloads, ...).
_V2_TO_V3: dict[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]] = {
    ((), "sandbox_image"): (("pinned_images",), "sandbox"),
    (("containerd",), "snapshotter"): ((), "snapshotter"),
    (("containerd",), "discard_unpacked_layers"): ((), "discard_unpacked_layers"),
    (("containerd",), "disable_snapshot_annotations"): ((), "disable_snapshot_annotations"),
}
_V3_TO_V2 = {v3: v2 for v2, v3 in _V2_TO_V3.items()}
# Top-level keys of the version 2 CRI table that configMigration moves to the images plugin.
_V2_IMAGE_KEYS = frozenset(
    {
        "image_pull_progress_timeout",
        "max_concurrent_downloads",
        "image_pull_with_sync_fs",
        "stats_collect_period",
        "sandbox_image",
        "registry",
        "image_decryption",
    }
)


def config_version_for(runtime_version: Version) -> int:
    """The config ``version`` mlnode writes for this containerd: 2 for 1.x, 3 for 2.x.

    containerd 2.3 introduced version 4 but reads version 3 (it migrates it at start and
    logs "Configuration migrated from version 3"); the CRI image tables are the same in 3
    and 4, and a version 3 file still works after a rollback to 2.0–2.2, which refuse 4.
    """
    return 2 if not runtime_version.at_least(_V2_0) else 3


def max_config_version_for(runtime_version: Version) -> int:
    """The highest ``version`` this containerd accepts (2.x refuses higher at start-up).

    1.x does not refuse a higher number, but it only ever reads the version 2 plugin names,
    so a version 3 file's image tables are ignored there.
    """
    if not runtime_version.at_least(_V2_0):
        return 2
    return 4 if runtime_version.at_least(_V2_3) else 3


def table_for(
    table: tuple[str, ...], name: str, file_version: int
) -> tuple[tuple[str, ...], str] | None:
    """Where the key ``table``/``name`` (written for any config version) lives in a file of
    ``file_version``; None when it has no home there.

    CRI image keys move between ``plugins.cri`` (1), ``plugins."io.containerd.grpc.v1.cri"``
    (2) and ``plugins."io.containerd.cri.v1.images"`` (3, 4), as configMigration moves them.
    Other keys stay where they are.
    """
    head = table[:2]
    v2 = _as_v2(table, name)
    if v2 is None:
        if head == CRI_V3_IMAGES:  # an images key that versions 1 and 2 do not have
            return (table, name) if file_version >= 3 else None
        return (table, name)
    sub, key = v2
    if file_version <= 1:
        return ((*CRI_V1, *sub), key)
    if file_version == 2:
        return ((*CRI_V2, *sub), key)
    sub3, key3 = _V2_TO_V3.get((sub, key), (sub, key))
    return ((*CRI_V3_IMAGES, *sub3), key3)


def _is_v2_image_key(sub: tuple[str, ...], name: str) -> bool:
    if (sub, name) in _V2_TO_V3:
        return True
    if sub:
        return sub[0] in ("registry", "image_decryption")
    return name in _V2_IMAGE_KEYS


def _as_v2(table: tuple[str, ...], name: str) -> tuple[tuple[str, ...], str] | None:
    """A CRI image key as (sub-path in the version 2 CRI table, name), else None."""
    head, sub = table[:2], table[2:]
    if head in (CRI_V1, CRI_V2):
        return (sub, name) if _is_v2_image_key(sub, name) else None
    if head == CRI_V3_IMAGES:
        sub2, key2 = _V3_TO_V2.get((sub, name), (sub, name))
        return (sub2, key2) if _is_v2_image_key(sub2, key2) else None
    return None


# -- reading ---------------------------------------------------------------------------------


def read_containerd(path: str, text: str) -> ParsedDocument:
    """Read one containerd config file: every key as a runtime value, with its line.

    Facts: ``config_version`` (1 when the key is absent, as containerd reads it),
    ``config_version_explicit``, ``imports``, ``root``, ``state``, ``grpc_address`` (the
    version 4 ``io.containerd.server.v1.grpc`` plugin's address, else ``[grpc] address``)
    and ``cri_tables`` (which CRI plugin tables the file has, e.g.
    ``['plugins."io.containerd.grpc.v1.cri"']``).
    """
    doc = parse_toml(path, text)
    data = doc.unwrap()
    lines = key_lines(text)

    raw_version = data.get("version")
    if raw_version is None:
        config_version = 1
    elif isinstance(raw_version, int) and not isinstance(raw_version, bool):
        config_version = max(raw_version, 1)  # 0 is read as 1 by every release
    else:
        raise InputError(
            f"version must be an integer (1, 2, 3 or 4), not {raw_version!r}",
            path=path,
            line=lines.get(("version",)),
        )

    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        raise InputError(
            "imports must be a list of file paths", path=path, line=lines.get(("imports",))
        )

    values = tuple(
        RuntimeValueOccurrence(
            table=table,
            name=name,
            value=value,
            origin=Origin(path, line, format_table(table) if table else "top level"),
        )
        for table, name, value, line in flatten(data, lines)
    )

    plugins = data.get("plugins")
    plugins = plugins if isinstance(plugins, Mapping) else {}
    cri_tables = [
        format_table(t)
        for t in (CRI_V1, CRI_V2, CRI_V3_IMAGES, CRI_V3_RUNTIME)
        if isinstance(plugins.get(t[1]), Mapping)
    ]
    grpc_address: Any = None
    server = plugins.get(_GRPC_SERVER_V4[1])
    if isinstance(server, Mapping) and "address" in server:
        grpc_address = server["address"]
    else:
        grpc = data.get("grpc")
        if isinstance(grpc, Mapping):
            grpc_address = grpc.get("address")

    return ParsedDocument(
        kind=DocumentKind.CONTAINERD,
        path=path,
        runtime_values=values,
        facts={
            "config_version": config_version,
            "config_version_explicit": raw_version is not None,
            "imports": list(imports),
            "root": data.get("root"),
            "state": data.get("state"),
            "grpc_address": grpc_address,
            "cri_tables": cri_tables,
            "plugin_tables": [str(k) for k, v in plugins.items() if isinstance(v, Mapping)],
        },
    )


def read_containerd_with_imports(
    path: str | Path,
    root: Path = Path("/"),
    *,
    runtime_version: Version | None = None,
) -> tuple[ParsedDocument, ...]:
    """Read ``path`` and every file it imports, in containerd's merge order.

    ``path`` is the main config's path on the node (``/etc/containerd/config.toml``);
    ``root`` is where the node's filesystem is (``/`` on the node, a temp tree in tests).
    Documents carry the real path (under ``root``) and ``facts["node_path"]``.

    Order as ``LoadConfig``: breadth-first, the main file first, then its imports in list
    order (glob matches sorted), then the imports of those; a file already loaded is
    skipped (circular imports). Later documents override earlier ones. Relative import
    paths are relative to the importing file's directory; with ``runtime_version`` < 2.0
    a relative *glob* is resolved against ``/`` instead (1.x globs relative to the working
    directory, which is ``/`` under systemd — derived). A missing non-glob import is an
    :class:`InputError`, as containerd refuses to start.
    """
    main = posixpath.normpath(str(path))
    legacy_globs = runtime_version is not None and not runtime_version.at_least(_V2_0)
    loaded: set[str] = set()
    pending: list[tuple[str, str | None, int | None]] = [(main, None, None)]
    docs: list[ParsedDocument] = []
    while pending:
        node_path, parent, parent_line = pending.pop(0)
        if node_path in loaded:
            continue
        real = _under(root, node_path)
        try:
            text = real.read_text(encoding="utf-8")
        except FileNotFoundError:
            if parent is None:
                raise InputError("no such file", path=str(real)) from None
            raise InputError(
                f"imports {node_path}, which does not exist; containerd refuses to start"
                " when a (non-glob) import is missing",
                path=str(_under(root, parent)),
                line=parent_line,
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read: {e}", path=str(real)) from e
        doc = read_containerd(str(real), text)
        doc.facts["node_path"] = node_path
        docs.append(doc)
        loaded.add(node_path)
        imports_line = line_of(key_lines(text), ("imports",))
        for entry in doc.facts["imports"]:
            for resolved in _resolve_import(node_path, entry, root, legacy_globs=legacy_globs):
                pending.append((resolved, node_path, imports_line))
    return tuple(docs)


def effective_containerd_values(
    docs: Sequence[ParsedDocument], runtime_version: Version
) -> dict[tuple[tuple[str, ...], str], RuntimeValueOccurrence]:
    """The values containerd ends up with from ``docs`` (merge order), by (table, name).

    Follows ``mergeConfig``: top-level and server-table values (``root``, ``[grpc]``, ...)
    are overridden only by a non-empty value (mergo skips "", 0 and false); top-level lists
    (``imports``, ``disabled_plugins``, ...) are appended (2.x drops duplicates). Plugin
    tables: in 1.x a later file's ``[plugins."<id>"]`` replaces that plugin's whole table
    (values the later file does not repeat are gone); in 2.x each key is overridden on its
    own. Keys are not migrated between config versions here (see :func:`table_for`).
    A list built from several files carries the origin of the last one.
    """
    legacy = not runtime_version.at_least(_V2_0)
    out: dict[tuple[tuple[str, ...], str], RuntimeValueOccurrence] = {}
    for doc in docs:
        if legacy:
            replaced = set(doc.facts.get("plugin_tables", ()))
            for key in [k for k in out if k[0][:1] == ("plugins",) and len(k[0]) > 1]:
                if key[0][1] in replaced:
                    del out[key]
        for occ in doc.runtime_values:
            key = (occ.table, occ.name)
            in_plugins = occ.table[:1] == ("plugins",)
            if not in_plugins and occ.value in ("", 0, False) and key in out:
                continue  # mergo.WithOverride keeps the earlier value over an empty one
            if not in_plugins and not occ.table and isinstance(occ.value, list) and key in out:
                before = list(out[key].value)
                extra = [x for x in occ.value if legacy or x not in before]
                occ = dataclasses.replace(occ, value=before + extra)
            out[key] = occ
    return out


def _under(root: Path, node_path: str) -> Path:
    return root / node_path.lstrip("/") if node_path.startswith("/") else root / node_path


def _resolve_import(parent: str, entry: str, root: Path, *, legacy_globs: bool) -> list[str]:
    is_glob = "*" in entry
    p = posixpath.normpath(entry)
    if not posixpath.isabs(p):
        base = "/" if (is_glob and legacy_globs) else posixpath.dirname(parent)
        p = posixpath.normpath(posixpath.join(base, p))
    if not is_glob:
        return [p]
    return _glob(p, root)


def _glob(pattern: str, root: Path) -> list[str]:
    """Go ``filepath.Glob`` on the node's tree: ``*`` also matches leading dots; sorted."""
    parts = [x for x in pattern.split("/") if x]
    found = ["/"]
    for part in parts:
        nxt: list[str] = []
        magic = any(c in part for c in "*?[")
        for base in found:
            if not magic:
                cand = posixpath.join(base, part)
                if os.path.lexists(_under(root, cand)):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(_under(root, base)))
            except OSError:
                continue
            nxt.extend(posixpath.join(base, n) for n in names if fnmatch.fnmatchcase(n, part))
        found = nxt
    return sorted(found)


# -- rendering -------------------------------------------------------------------------------


def _require_containerd(placement: Placement) -> Version:
    rt = placement.runtime
    if rt.kind is not RuntimeKind.CONTAINERD or rt.version is None:
        raise ValueError(f"a containerd config needs a containerd placement, not {rt}")
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
        if version.at_least(_V2_3):
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


# -- merging ---------------------------------------------------------------------------------


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
