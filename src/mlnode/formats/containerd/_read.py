"""Reading containerd configs: one file, a file and everything it imports (in containerd's
merge order), and the values containerd ends up with.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlnode.errors import InputError
from mlnode.formats._tomlscan import (
    duration_names,
    flatten,
    format_table,
    key_lines,
    line_of,
    parse_toml,
)
from mlnode.formats.base import DocumentKind, ParsedDocument, RuntimeValueOccurrence
from mlnode.formats.containerd._tables import (
    CRI_V1,
    CRI_V2,
    CRI_V3_IMAGES,
    CRI_V3_RUNTIME,
    GRPC_SERVER_V4,
    V2_0,
    V2_3,
)
from mlnode.formats.facts import ContainerdFacts
from mlnode.knowledge.model import Origin
from mlnode.rootpath import read_path
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "checked_config_versions",
    "declared_config_versions",
    "effective_containerd_values",
    "read_containerd",
    "read_containerd_with_imports",
]


# Keys read as durations: a table written there is a value of the wrong type (lint E103).
_DURATIONS = duration_names(RuntimeKind.CONTAINERD)


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
        for table, name, value, line in flatten(
            data, lines, value_names=duration_names(RuntimeKind.CONTAINERD)
        )
    )

    plugins = data.get("plugins")
    plugins = plugins if isinstance(plugins, Mapping) else {}
    cri_tables = [
        format_table(t)
        for t in (CRI_V1, CRI_V2, CRI_V3_IMAGES, CRI_V3_RUNTIME)
        if isinstance(plugins.get(t[1]), Mapping)
    ]
    grpc_address: object = None
    server = plugins.get(GRPC_SERVER_V4[1])
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
        facts=ContainerdFacts(
            config_version=config_version,
            config_version_explicit=raw_version is not None,
            imports=tuple(imports),
            root=data.get("root"),
            state=data.get("state"),
            grpc_address=grpc_address,
            cri_tables=tuple(cri_tables),
            plugin_tables=tuple(str(k) for k, v in plugins.items() if isinstance(v, Mapping)),
        ),
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
    Documents carry the real path (under ``root``) and ``facts.node_path``.

    Order as ``LoadConfig``: breadth-first, the main file first, then its imports in list
    order (glob matches sorted), then the imports of those; a file already loaded is
    skipped (circular imports). Later documents override earlier ones. Relative import
    paths are relative to the importing file's directory; with ``runtime_version`` < 2.0
    a relative *glob* is resolved against ``/`` instead (1.x globs relative to the working
    directory, which is ``/`` under systemd — derived). A missing non-glob import is an
    :class:`InputError`, as containerd refuses to start.
    """
    main = posixpath.normpath(str(path))
    legacy_globs = runtime_version is not None and not runtime_version.at_least(V2_0)
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
        facts = dataclasses.replace(doc.facts_as(ContainerdFacts), node_path=node_path)
        docs.append(dataclasses.replace(doc, facts=facts))
        loaded.add(node_path)
        imports_line = line_of(key_lines(text), ("imports",))
        for entry in facts.imports:
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
    legacy = not runtime_version.at_least(V2_0)
    out: dict[tuple[tuple[str, ...], str], RuntimeValueOccurrence] = {}
    for doc in docs:
        if legacy:
            facts = doc.facts
            replaced = set(facts.plugin_tables if isinstance(facts, ContainerdFacts) else ())
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


def declared_config_versions(docs: Sequence[ParsedDocument]) -> list[tuple[int, Origin | None]]:
    """Each containerd document's own ``version`` as written, in merge order (0 where the
    key is absent, as Go reads it), with the line that says it."""
    out: list[tuple[int, Origin | None]] = []
    for doc in docs:
        if doc.kind is not DocumentKind.CONTAINERD:
            continue
        found = next(
            (rv for rv in doc.runtime_values if rv.table == () and rv.name == "version"), None
        )
        if found is not None and isinstance(found.value, int):
            out.append((found.value, found.origin))
        else:
            out.append((0, None))
    return out


def checked_config_versions(
    docs: Sequence[ParsedDocument], runtime_version: Version
) -> list[tuple[int, Origin | None]]:
    """The config versions this containerd checks at start, each with the line that set it.

    1.x checks one, the merged config's (``ValidateV2`` after ``LoadConfig``): each file's
    non-zero ``version`` overrides the one before (``mergo.WithOverride``), so the last
    non-zero one counts. 2.0-2.2 check the merged one too, but ``LoadConfig`` first converts
    a version 0 or 1 file to the version reached so far, so the last version other than 0
    and 1 counts (else the last non-zero one). 2.3 migrates every file below its own
    version as it is loaded, so each file's own version is checked (a list of them).
    A config with no version anywhere is ``[(0, None)]``.
    """
    declared = declared_config_versions(docs)
    if runtime_version.at_least(V2_3):
        return declared or [(0, None)]
    if runtime_version.at_least(V2_0):
        above_one = [d for d in declared if d[0] not in (0, 1)]
        if above_one:
            return [above_one[-1]]
    non_zero = [d for d in declared if d[0] != 0]
    return [non_zero[-1]] if non_zero else [(0, None)]


def _under(root: Path, node_path: str) -> Path:
    """Where to read ``node_path``, symlinks resolved inside ``root`` (mlnode.rootpath)."""
    return read_path(root, posixpath.join("/", node_path))


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
