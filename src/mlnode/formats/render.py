"""Placed settings turned into files: which format holds what, rendering and merging.

Pure: every function takes a :class:`~mlnode.knowledge.placement.Placement` (and, to
merge, a file's text) and returns text or values. Reading the file, keeping a backup and
writing the result are the caller's (``mlnode render --merge`` uses
:func:`mlnode.ops.fileio.atomic_write`).

:func:`flag_removals` is the one rule for which kubelet flags must leave an env file
when settings are placed (render's scope of :mod:`mlnode.knowledge.flag_removal`, the
rule apply uses too): a flag whose setting now lives in a config file would override it,
a removed flag stops the kubelet, and the pull-progress deadline flag does nothing with a
CRI runtime.
"""

from __future__ import annotations

import difflib
import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from mlnode.errors import InputError, UsageError
from mlnode.formats.base import DocumentKind
from mlnode.knowledge.flag_removal import (
    RENDER_REMOVALS,
    FlagRemovalReason,
    kubelet_flag_removals,
)
from mlnode.knowledge.placement import Placement, default_feature_gates
from mlnode.knowledge.table import config_dir_support
from mlnode.knowledge.validation import startup_failure_message, validate_kubelet
from mlnode.versions import RuntimeKind, Version

__all__ = [
    "FILE_NAMES",
    "FlagRemovalReason",
    "Merged",
    "NotApplicable",
    "RenderFormat",
    "Rendered",
    "carries",
    "check_applicable",
    "elsewhere_notes",
    "flag_removals",
    "format_for_kind",
    "merge_document",
    "merge_text",
    "placement_json",
    "refuse_rejected_settings",
    "removable_flags",
    "render_formats",
    "render_text",
]


class RenderFormat(enum.StrEnum):
    ENV = "env"
    KUBELET_CONFIG = "kubelet-config"
    KUBELET_DROPIN = "kubelet-dropin"
    KUBEADM = "kubeadm"
    KUBESPRAY = "kubespray"
    CONTAINERD = "containerd"
    CRIO = "crio"
    ALL = "all"


#: The file name each format is written to (``mlnode render --out DIR``).
FILE_NAMES = {
    RenderFormat.ENV: "kubelet.env",
    RenderFormat.KUBELET_CONFIG: "kubelet-config.yaml",
    RenderFormat.KUBELET_DROPIN: "90-mlnode-images.conf",
    RenderFormat.KUBEADM: "kubeadm-kubelet.yaml",
    RenderFormat.KUBESPRAY: "mlnode-kubespray-vars.yml",
    RenderFormat.CONTAINERD: "containerd-config.toml",
    RenderFormat.CRIO: "90-mlnode-images-crio.conf",
}

_KIND_TO_FORMAT = {
    DocumentKind.ENV_FILE: RenderFormat.ENV,
    DocumentKind.KUBELET_CONFIG: RenderFormat.KUBELET_CONFIG,
    DocumentKind.KUBELET_DROPIN: RenderFormat.KUBELET_DROPIN,
    DocumentKind.KUBEADM: RenderFormat.KUBEADM,
    DocumentKind.KUBESPRAY: RenderFormat.KUBESPRAY,
    DocumentKind.CONTAINERD: RenderFormat.CONTAINERD,
    DocumentKind.CRIO: RenderFormat.CRIO,
}

# (module under mlnode.formats, renderer, merger). Imported on use: each pulls its own parser.
_CODECS = {
    RenderFormat.ENV: ("envfile", "render_env", "merge_env"),
    RenderFormat.KUBELET_CONFIG: (
        "kubelet_config",
        "render_kubelet_config",
        "merge_kubelet_config",
    ),
    RenderFormat.KUBELET_DROPIN: (
        "kubelet_config",
        "render_kubelet_dropin",
        "merge_kubelet_config",
    ),
    RenderFormat.KUBEADM: ("kubeadm", "render_kubeadm", "merge_kubeadm"),
    RenderFormat.KUBESPRAY: ("kubespray", "render_kubespray", "merge_kubespray"),
    RenderFormat.CONTAINERD: ("containerd", "render_containerd", "merge_containerd"),
    RenderFormat.CRIO: ("crio", "render_crio", "merge_crio"),
}


class NotApplicable(UsageError):
    """This format has no place for these versions (e.g. a CRI-O file for containerd).

    A :class:`UsageError` (exit 2): ``render --format all`` catches it and skips the format,
    a single ``--format`` or ``--merge`` reports it as the operator's choice that cannot work.
    """


@dataclass(frozen=True)
class Rendered:
    """One file's content; ``path`` once written, ``diff`` when merged into an existing file."""

    format: RenderFormat
    name: str
    content: str
    path: str | None = None
    diff: str | None = None


@dataclass(frozen=True)
class Merged:
    """The result of merging placed settings into a file's text."""

    format: RenderFormat
    text: str
    diff: str

    @property
    def changed(self) -> bool:
        return bool(self.diff)


def flag_removals(placement: Placement) -> dict[str, FlagRemovalReason]:
    """The kubelet flags (names without ``--``) to take out of env files, each with why.

    Render's scope of the one rule, :func:`mlnode.knowledge.flag_removal.kubelet_flag_removals`
    (whose docstring says how it differs from apply's): the flags of the image settings
    mlnode knows (``KUBELET_SETTINGS``) go when the kubelet of
    ``placement.kubernetes_version`` removed them, when the placement homes their setting
    in the KubeletConfiguration (the flag would silently override the file) or in the
    runtime's config, and the pull-progress deadline flag goes with every runtime but
    Docker (the kubelet only passed it to dockershim). The first reason that holds is
    given, in that order.
    """
    return kubelet_flag_removals(placement, RENDER_REMOVALS)


def removable_flags(placement: Placement) -> frozenset[str]:
    """The names of :func:`flag_removals`, as the env-file mergers take them."""
    return frozenset(flag_removals(placement))


def format_for_kind(kind: DocumentKind) -> RenderFormat | None:
    """The format mlnode merges a detected document kind as, or None if it cannot."""
    return _KIND_TO_FORMAT.get(kind)


def check_applicable(fmt: RenderFormat, placement: Placement) -> None:
    """Raise :class:`NotApplicable` if ``fmt`` has no place for these versions."""
    kind = placement.runtime.kind
    if fmt is RenderFormat.CONTAINERD and kind is not RuntimeKind.CONTAINERD:
        raise NotApplicable(f"the runtime is {placement.runtime}, not containerd")
    if fmt is RenderFormat.CRIO and kind is not RuntimeKind.CRIO:
        raise NotApplicable(f"the runtime is {placement.runtime}, not CRI-O")
    if fmt is RenderFormat.KUBELET_DROPIN:
        support = config_dir_support(placement.kubernetes_version)
        if not support.supported:
            raise NotApplicable(
                f"kubelet {placement.kubernetes_version} has no --config-dir (added in 1.28)"
            )


def carries(fmt: RenderFormat, placement: Placement) -> bool:
    """Whether this format has anything to hold for this placement."""
    fields = bool(placement.kubelet_fields or placement.feature_gates)
    if fmt is RenderFormat.ENV:
        return bool(placement.kubelet_flags)
    if fmt in (RenderFormat.KUBELET_CONFIG, RenderFormat.KUBELET_DROPIN):
        return fields
    if fmt is RenderFormat.KUBEADM:
        return fields or bool(placement.kubelet_flags)
    if fmt in (RenderFormat.CONTAINERD, RenderFormat.CRIO):
        return bool(placement.runtime_values)
    return fields or bool(placement.kubelet_flags or placement.runtime_values)


def _codec(fmt: RenderFormat, which: int) -> Callable[..., str]:
    if fmt is RenderFormat.ALL:
        raise AssertionError(fmt)
    spec = _CODECS[fmt]
    module = importlib.import_module(f"mlnode.formats.{spec[0]}")
    return cast("Callable[..., str]", getattr(module, spec[which]))


def render_text(fmt: RenderFormat, placement: Placement) -> str:
    """The new file of format ``fmt`` holding what the placement puts there."""
    check_applicable(fmt, placement)
    return _codec(fmt, 1)(placement)


def merge_text(fmt: RenderFormat, text: str, path: str, placement: Placement) -> str:
    """``text`` (a ``fmt`` file read from ``path``) with the placement's settings merged in,
    keeping comments, order and other content; env files and kubeadm's kubeletExtraArgs also
    lose :func:`removable_flags`."""
    check_applicable(fmt, placement)
    merge = _codec(fmt, 2)
    if fmt in (RenderFormat.ENV, RenderFormat.KUBEADM):
        return merge(text, path, placement, remove_flags=removable_flags(placement))
    return merge(text, path, placement)


def render_formats(
    fmt: RenderFormat, placement: Placement
) -> tuple[list[Rendered], list[tuple[str, str]]]:
    """Render one format, or with ``ALL`` every format that applies and carries something.

    Returns the files and the (format, reason) pairs skipped. A single format that does not
    apply raises :class:`UsageError` for ``--format``.
    """
    wanted = (
        [f for f in RenderFormat if f is not RenderFormat.ALL] if fmt is RenderFormat.ALL else [fmt]
    )
    rendered: list[Rendered] = []
    skipped: list[tuple[str, str]] = []
    for f in wanted:
        if fmt is RenderFormat.ALL and not carries(f, placement):
            skipped.append((f.value, "nothing to write in this format"))
            continue
        try:
            rendered.append(Rendered(f, FILE_NAMES[f], render_text(f, placement)))
        except NotApplicable as e:
            if fmt is not RenderFormat.ALL:
                raise UsageError(f"{f.value}: {e}", option="--format") from None
            skipped.append((f.value, str(e)))
    return rendered, skipped


def merge_document(
    fmt: RenderFormat | None, kind: DocumentKind, text: str, path: str, placement: Placement
) -> Merged:
    """Merge the placement into ``text``, a file of the detected ``kind`` read from ``path``.

    ``fmt`` is the format the operator asked for (None: whatever the file is); a kubelet
    config and a drop-in are interchangeable, any other mismatch is refused.
    """
    detected = format_for_kind(kind)
    if detected is None:
        raise InputError(f"mlnode cannot merge settings into a {kind.value} file", path=path)
    if (
        fmt is not None
        and fmt is not detected
        and not ({fmt, detected} <= {RenderFormat.KUBELET_CONFIG, RenderFormat.KUBELET_DROPIN})
    ):
        raise UsageError(f"{path} is a {detected.value} file, not {fmt.value}", option="--merge")
    new = merge_text(detected, text, path, placement)
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
        )
    )
    return Merged(detected, new, diff)


def refuse_rejected_settings(
    set_fields: dict[str, Any], kubernetes_version: Version, placement: Placement
) -> None:
    """Raise :class:`UsageError` if that kubelet would refuse to start with these settings
    (``set_fields``: the settings given) and the feature gates the placement turns on."""
    gates = {**default_feature_gates(kubernetes_version), **placement.feature_gates}
    failures = validate_kubelet(set_fields, kubernetes_version, gates)
    if failures:
        raise UsageError(
            "refusing to render settings the kubelet rejects: "
            + startup_failure_message(failures, kubernetes_version)
        )


def placement_json(placement: Placement) -> dict[str, Any]:
    """The placement as ``mlnode.render/v1`` shows it (its ``placement`` key)."""
    return {
        "kubelet_fields": dict(placement.kubelet_fields),
        "kubelet_flags": dict(placement.kubelet_flags),
        "feature_gates": dict(placement.feature_gates),
        "runtime": [
            {
                "runtime": pv.row.runtime.value,
                "table": list(pv.row.table),
                "name": pv.row.name,
                "value": pv.value,
                "setting": pv.row.key,
            }
            for pv in placement.runtime_values
        ],
    }


_KUBELET_FORMATS = frozenset(
    {
        RenderFormat.KUBELET_CONFIG,
        RenderFormat.KUBELET_DROPIN,
        RenderFormat.KUBEADM,
        RenderFormat.KUBESPRAY,
    }
)


def elsewhere_notes(fmt: RenderFormat, placement: Placement) -> list[str]:
    """Settings this format does not carry because their home is another file, one line each."""
    runtime_format = {
        RuntimeKind.CONTAINERD: RenderFormat.CONTAINERD,
        RuntimeKind.CRIO: RenderFormat.CRIO,
    }.get(placement.runtime.kind)
    notes = []
    if fmt is not runtime_format and fmt is not RenderFormat.KUBESPRAY:
        for pv in placement.runtime_values:
            where = (
                f"--format {runtime_format.value}"
                if runtime_format
                else f"{placement.runtime.kind.value}'s --{pv.row.name} flag"
            )
            notes.append(f"{pv.row.key} belongs in {placement.runtime} config: see {where}")
    if fmt not in _KUBELET_FORMATS and placement.kubelet_fields:
        notes.append(
            "kubelet settings ("
            + ", ".join(placement.kubelet_fields)
            + ") belong in the KubeletConfiguration: see --format kubelet-config or kubelet-dropin"
        )
    if fmt is not RenderFormat.ENV and fmt is not RenderFormat.KUBEADM and placement.kubelet_flags:
        notes.append(
            "flags ("
            + " ".join(f"--{k}" for k in placement.kubelet_flags)
            + ") go on the kubelet command line: see --format env"
        )
    return notes
