"""``mlnode render``: settings written in every format operators keep them in.

Settings are placed first (:func:`mlnode.knowledge.placement.place`): each goes to its
true home for the given kubelet and runtime versions, and a setting with no home there is
refused with the reason instead of being written where it would break the node. What goes
into which file is :mod:`mlnode.formats.render`; this module reads and writes the files
and prints.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from mlnode.cli._common import OutputFormat, emit_json, run, stderr, stdout
from mlnode.cli._inputs import read_file_text
from mlnode.cli._mirror import MirrorOption, MirrorRegistryOption
from mlnode.cli._options import OutputOption
from mlnode.cli._settings_options import SettingsRequest, with_settings_options
from mlnode.errors import InputError, UsageError
from mlnode.formats.mirror_files import MirrorFormat
from mlnode.formats.render import (
    Rendered,
    RenderFormat,
    elsewhere_notes,
    merge_document,
    placement_json,
    refuse_rejected_settings,
    render_formats,
)
from mlnode.knowledge.placement import Placement, place
from mlnode.planning.settings_input import SettingsInput

__all__ = ["register"]


class FormatChoice(enum.StrEnum):
    """Every --format: the settings formats (RenderFormat) and the mirror ones."""

    ENV = RenderFormat.ENV.value
    KUBELET_CONFIG = RenderFormat.KUBELET_CONFIG.value
    KUBELET_DROPIN = RenderFormat.KUBELET_DROPIN.value
    KUBEADM = RenderFormat.KUBEADM.value
    KUBESPRAY = RenderFormat.KUBESPRAY.value
    CONTAINERD = RenderFormat.CONTAINERD.value
    CRIO = RenderFormat.CRIO.value
    CONTAINERD_HOSTS = MirrorFormat.CONTAINERD_HOSTS.value
    CRIO_MIRROR = MirrorFormat.CRIO_MIRROR.value
    ALL = RenderFormat.ALL.value


FormatOption = Annotated[
    FormatChoice,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="Which file to produce: "
        + ", ".join(f.value for f in RenderFormat if f is not RenderFormat.ALL)
        + ", or all (every one that applies); containerd-hosts or crio-mirror (with"
        " --mirror): the files that put the node mirror first.",
    ),
]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write files into this directory.")]
MergeOption = Annotated[
    Path | None,
    typer.Option(
        "--merge",
        help="Edit this existing file in place, not through a symlink (keeping comments, "
        "order and other content; a timestamped .bak copy is kept).",
    ),
]


def _refuse_symlinked(merge: Path) -> None:
    """--merge edits the file named, never through a symlink (which could lead anywhere,
    out of a node tree included, and which a rename would silently replace by a file)."""
    named = Path(os.path.abspath(merge))
    real = Path(os.path.realpath(named))
    if real != named:
        raise InputError(
            f"resolves through a symlink to {real}; --merge does not edit through links:"
            " name that file itself if it is the one to change",
            path=merge,
        )


def _merge_in_place(fmt: RenderFormat | None, merge: Path, placement: Placement) -> Rendered:
    from mlnode.formats.detect import detect_kind
    from mlnode.ops.fileio import atomic_write

    _refuse_symlinked(merge)
    text = read_file_text(merge)
    merged = merge_document(fmt, detect_kind(str(merge), text), text, str(merge), placement)
    if merged.changed:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = merge.with_name(f"{merge.name}.mlnode-{stamp}.bak")
        shutil.copy2(merge, backup)
        atomic_write(merge, merged.text.encode())
    return Rendered(merged.format, merge.name, merged.text, str(merge), merged.diff)


def _write_into(out: Path, rendered: list[Rendered]) -> list[Rendered]:
    from mlnode.ops.fileio import atomic_write

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is not a directory", option="--out")
    written = []
    for r in rendered:
        path = out / r.name
        atomic_write(path, r.content.encode())
        written.append(Rendered(r.format, r.name, r.content, str(path)))
    return written


def _produce(
    fmt: RenderFormat, out: Path | None, merge: Path | None, placement: Placement
) -> tuple[list[Rendered], list[tuple[str, str]]]:
    """The files (merged, written or only rendered) and the formats skipped."""
    if merge is not None and out is not None:
        raise UsageError("use either --merge or --out", option="--merge")
    if merge is not None:
        asked = None if fmt is RenderFormat.ALL else fmt
        return [_merge_in_place(asked, merge, placement)], []
    rendered, skipped = render_formats(fmt, placement)
    if out is not None:
        rendered = _write_into(out, rendered)
    return rendered, skipped


def _print_notes(fmt: RenderFormat | None, placement: Placement, si: SettingsInput) -> None:
    if fmt is not None and fmt is not RenderFormat.ALL:
        for note in elsewhere_notes(fmt, placement):
            stderr.print(f"mlnode: note: {note}", markup=False)
    for refusal in placement.refusals:
        stderr.print(f"mlnode: not written: {refusal.key}: {refusal.reason}", markup=False)
    for warning in placement.warnings:
        stderr.print(f"mlnode: warning: {warning}", markup=False)
    if si.ignored_flags:
        stderr.print(
            "mlnode: note: not image settings, left as they are: " + " ".join(si.ignored_flags),
            markup=False,
        )


def _render_json(
    si: SettingsInput,
    placement: Placement,
    rendered: list[Rendered],
    skipped: list[tuple[str, str]],
) -> dict[str, Any]:
    return {
        "schema": "mlnode.render/v1",
        "kubernetes_version": str(si.kubernetes_version),
        "runtime": str(si.runtime),
        "files": [
            {
                "format": r.format.value,
                "name": r.name,
                "path": r.path,
                "content": r.content,
                "diff": r.diff,
            }
            for r in rendered
        ],
        "skipped": [{"format": f, "reason": why} for f, why in skipped],
        "placement": placement_json(placement),
        "refused": [{"setting": r.key, "reason": r.reason} for r in placement.refusals],
        "warnings": list(placement.warnings),
        "ignored_flags": list(si.ignored_flags),
    }


def _print_files(rendered: list[Rendered], *, merged: bool, written: bool) -> None:
    if merged:
        r = rendered[0]
        stdout.print(r.diff or f"{r.path}: already up to date", markup=False, end="")
        if r.diff:
            stdout.print(f"{r.path}: updated", markup=False)
    elif written:
        for r in rendered:
            stdout.print(f"wrote {r.path}", markup=False)
    elif len(rendered) == 1:
        stdout.out(rendered[0].content, end="", highlight=False)
    else:
        for r in rendered:
            stdout.out(f"# ==> {r.name} ({r.format.value}) <==", highlight=False)
            stdout.out(r.content, end="" if r.content.endswith("\n") else "\n", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("render")
    @with_settings_options
    def render(
        settings_input: SettingsRequest,
        format: FormatOption = FormatChoice.ALL,
        out: OutOption = None,
        merge: MergeOption = None,
        mirror: MirrorOption = None,
        mirror_registry: MirrorRegistryOption = None,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Write image settings where they belong for a kubelet and runtime version.

        With --format containerd-hosts or crio-mirror and --mirror URL: the files that put
        the node mirror first for the runtime (--runtime) instead.

        Exit 0: everything placed. 1: some settings have no home in these versions (the rest
        is written; stderr says why). 2: unusable input, nothing written.
        """

        def body() -> int:
            if format.value in set(MirrorFormat):
                if out is not None or merge is not None:
                    raise UsageError(
                        f"{format.value} is printed only; `mlnode apply --mirror` writes it",
                        option="--out" if out is not None else "--merge",
                    )
                from mlnode.cli._render_mirror import render_mirror

                return render_mirror(
                    MirrorFormat(format.value),
                    settings_input.sources.runtime,
                    mirror,
                    mirror_registry,
                    output,
                )
            if mirror is not None or mirror_registry:
                raise UsageError(
                    "goes with --format containerd-hosts or crio-mirror", option="--mirror"
                )
            fmt = RenderFormat(format.value)
            si = settings_input()
            placement = place(si.settings, si.kubernetes_version, si.runtime)
            refuse_rejected_settings(si.settings.set_fields(), si.kubernetes_version, placement)
            rendered, skipped = _produce(fmt, out, merge, placement)
            _print_notes(fmt if merge is None else None, placement, si)
            if output is OutputFormat.JSON:
                emit_json(_render_json(si, placement, rendered, skipped))
            else:
                _print_files(rendered, merged=merge is not None, written=out is not None)
            return 1 if placement.refusals else 0

        raise typer.Exit(run(body))
