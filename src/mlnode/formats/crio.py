"""CRI-O's ``crio.conf`` and its drop-in directory: read, render, merge.

How CRI-O loads its configuration (``internal/criocli/criocli.go mergeConfigFiles``,
``pkg/config/config.go UpdateFromFile/UpdateFromPath``, ``docs/crio.conf.d.5.md``):

* ``/etc/crio/crio.conf`` (``--config``) first, if it exists; then every file under
  ``/etc/crio/crio.conf.d`` (``--config-dir``), found by ``filepath.Walk``: recursively,
  in lexical order, **every regular file whatever its name** — not only ``*.conf`` (an
  editor's ``90-x.conf~`` or a ``README`` is applied too, or stops CRI-O if it is not
  TOML). Each file is decoded over the result so far: the value from the file applied
  last wins, and a list (``pinned_images``) is replaced, not extended.
* Durations such as ``pull_progress_timeout`` are Go ``time.Duration`` fields decoded by
  BurntSushi/toml: a string is parsed with ``time.ParseDuration`` (``"30m0s"``), but an
  integer is taken as **nanoseconds** (``pull_progress_timeout = 1800`` is 1.8 µs).
* ``pull_progress_timeout`` is not among the options CRI-O reloads on SIGHUP
  (``pkg/config/reload.go``): a change needs a restart.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomlkit

from mlnode.errors import InputError, InvalidValue
from mlnode.formats._tomlscan import (
    duration_names,
    flatten,
    format_table,
    key_lines,
    parse_toml,
    set_value,
)
from mlnode.formats.base import DocumentKind, ParsedDocument, RuntimeValueOccurrence
from mlnode.formats.facts import CrioFacts
from mlnode.knowledge.model import Origin
from mlnode.knowledge.placement import Placement
from mlnode.rootpath import read_path
from mlnode.versions import RuntimeKind

__all__ = [
    "CONFIG_DIR",
    "CONFIG_PATH",
    "DROPIN_SUGGESTED_PATH",
    "crio_dropin_files",
    "merge_crio",
    "read_crio",
    "read_crio_dir",
    "render_crio",
]

CONFIG_PATH = "/etc/crio/crio.conf"
CONFIG_DIR = "/etc/crio/crio.conf.d"
DROPIN_SUGGESTED_PATH = "/etc/crio/crio.conf.d/90-mlnode-images.conf"

# Facts lifted from the file when present: (table, key) -> CrioFacts field.
_FACTS: dict[tuple[tuple[str, ...], str], str] = {
    (("crio",), "root"): "root",
    (("crio",), "runroot"): "runroot",
    (("crio",), "storage_driver"): "storage_driver",
    (("crio",), "imagestore"): "imagestore",
    (("crio", "image"), "pause_image"): "pause_image",
    (("crio", "image"), "pinned_images"): "pinned_images",
    (("crio", "image"), "pull_progress_timeout"): "pull_progress_timeout",
    (("crio", "image"), "big_files_temporary_dir"): "big_files_temporary_dir",
    (("crio", "api"), "listen"): "listen",
}


def read_crio(path: str, text: str) -> ParsedDocument:
    """Read one CRI-O config file (crio.conf or a drop-in); every key with its line.

    ``facts`` (:class:`~mlnode.formats.facts.CrioFacts`) holds the storage and image
    settings found in this file (``root``, ``runroot``, ``storage_driver``, ``imagestore``,
    ``pause_image``, ``pinned_images``, ``pull_progress_timeout``,
    ``big_files_temporary_dir``, ``listen``), ``tables`` (the tables present) and
    ``integer_durations``: keys whose value is an integer where CRI-O expects a duration
    string (BurntSushi/toml reads those as nanoseconds).
    """
    doc = parse_toml(path, text)
    data = doc.unwrap()
    lines = key_lines(text)
    leaves = flatten(data, lines, value_names=duration_names(RuntimeKind.CRIO))
    values = tuple(
        RuntimeValueOccurrence(
            table=table,
            name=name,
            value=value,
            origin=Origin(path, line, format_table(table) if table else "top level"),
        )
        for table, name, value, line in leaves
    )
    settings: dict[str, object] = {}
    for table, name, value, _line in leaves:
        fact = _FACTS.get((table, name))
        if fact is not None:
            settings[fact] = value
    crio = data.get("crio")
    facts = CrioFacts(
        root=settings.get("root"),
        runroot=settings.get("runroot"),
        storage_driver=settings.get("storage_driver"),
        imagestore=settings.get("imagestore"),
        pause_image=settings.get("pause_image"),
        pinned_images=settings.get("pinned_images"),
        pull_progress_timeout=settings.get("pull_progress_timeout"),
        big_files_temporary_dir=settings.get("big_files_temporary_dir"),
        listen=settings.get("listen"),
        integer_durations=tuple(
            f"{format_table(table)}.{name}"
            for table, name, value, _line in leaves
            if name.endswith("_timeout") and isinstance(value, int) and not isinstance(value, bool)
        ),
        tables=tuple(
            format_table(("crio", k)) for k, v in (crio or {}).items() if isinstance(v, Mapping)
        ),
    )
    return ParsedDocument(kind=DocumentKind.CRIO, path=path, runtime_values=values, facts=facts)


def crio_dropin_files(config_dir: Path) -> list[Path]:
    """The files CRI-O applies from its drop-in directory, in its order (filepath.Walk)."""
    out: list[Path] = []

    def walk(d: Path) -> None:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return
        except OSError as e:
            raise InputError(f"cannot list the directory: {e}", path=str(d)) from e
        for n in names:
            p = d / n
            # Walk uses Lstat: a symlink to a directory is passed on as a file (and then
            # fails to read); only real directories are descended into.
            if p.is_dir() and not p.is_symlink():
                walk(p)
            else:
                out.append(p)

    if config_dir.is_dir():
        walk(config_dir)
    return out


def read_crio_dir(
    root: Path = Path("/"),
    *,
    config_path: str = CONFIG_PATH,
    config_dir: str = CONFIG_DIR,
) -> tuple[ParsedDocument, ...]:
    """Read crio.conf and its drop-ins under ``root``, in CRI-O's order (later wins).

    Every file under the drop-in directory is read, as CRI-O does; one whose name does
    not end in ``.conf`` gets ``facts.not_dot_conf`` so the linter can point at it (CRI-O
    applies it all the same).
    """
    docs: list[ParsedDocument] = []
    main = read_path(root, posixpath.join("/", config_path))
    if main.is_file():
        docs.append(read_crio(str(main), _read(main)))
    for p in crio_dropin_files(read_path(root, posixpath.join("/", config_dir))):
        doc = read_crio(str(p), _read(p))
        if not p.name.endswith(".conf"):
            facts = replace(doc.facts_as(CrioFacts), not_dot_conf=True)
            doc = replace(doc, facts=facts)
        docs.append(doc)
    return tuple(docs)


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read (CRI-O would not start either): {e}", path=str(p)) from e


def _require_crio(placement: Placement) -> None:
    if placement.runtime.kind is not RuntimeKind.CRIO:
        raise InvalidValue(f"a CRI-O config needs a CRI-O placement, not {placement.runtime}")


def render_crio(placement: Placement) -> str:
    """A drop-in for ``/etc/crio/crio.conf.d/`` holding the placed values."""
    _require_crio(placement)
    out = [
        f"# CRI-O image settings written by mlnode for {placement.runtime}.",
        "#",
        f"# Where: save as {DROPIN_SUGGESTED_PATH}. CRI-O reads {CONFIG_PATH} first,",
        f"# then every file under {CONFIG_DIR}/ in lexical order; the value read last",
        "# wins, so a file sorting after this one (e.g. 99-*.conf) overrides it.",
        "# Then restart CRI-O (these settings are not reloaded on SIGHUP):",
        "#   systemctl restart crio",
    ]
    groups: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
    for pv in placement.runtime_values:
        groups.setdefault(pv.row.table, []).append((pv.row.name, pv.value))
    if not groups:
        out += ["", "# (no CRI-O setting to write for this placement)"]
    for table, items in groups.items():
        out += ["", f"[{format_table(table)}]"]
        for name, value in items:
            out.append(f"{format_table((name,))} = {tomlkit.item(value).as_string()}")
    return "\n".join(out) + "\n"


def merge_crio(text: str, path: str, placement: Placement) -> str:
    """Set the placed values in an existing CRI-O file, keeping everything else.

    Idempotent; a value already equal is left as written.
    """
    _require_crio(placement)
    doc = parse_toml(path, text)
    lines = key_lines(text)
    for pv in placement.runtime_values:
        set_value(doc, pv.row.table, pv.row.name, pv.value, path=path, lines=lines)
    return doc.as_string()
