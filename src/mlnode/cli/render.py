"""``mlnode render``: settings written in every format operators keep them in.

Settings are placed first (:func:`mlnode.knowledge.placement.place`): each goes to its
true home for the given kubelet and runtime versions, and a setting with no home there is
refused with the reason instead of being written where it would break the node.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import enum
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from mlnode.cli._common import OutputFormat, emit_json, run, stderr, stdout
from mlnode.cli._inputs import read_file_text
from mlnode.cli._settings_options import SettingsInput, SettingsRequest, with_settings_options
from mlnode.errors import InputError, UsageError
from mlnode.formats.base import DocumentKind
from mlnode.knowledge.placement import Placement, default_feature_gates, place
from mlnode.knowledge.table import (
    KUBELET_SETTINGS,
    config_dir_support,
    removed_flag,
)
from mlnode.knowledge.validation import startup_failure_message, validate_kubelet
from mlnode.versions import RuntimeKind

__all__ = ["RenderFormat", "carries", "register", "removable_flags", "render_text"]


class RenderFormat(enum.StrEnum):
    ENV = "env"
    KUBELET_CONFIG = "kubelet-config"
    KUBELET_DROPIN = "kubelet-dropin"
    KUBEADM = "kubeadm"
    KUBESPRAY = "kubespray"
    CONTAINERD = "containerd"
    CRIO = "crio"
    ALL = "all"


# File name each format is written to under --out.
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


@dataclass(frozen=True)
class Rendered:
    format: RenderFormat
    name: str
    content: str
    path: str | None = None
    diff: str | None = None


class NotApplicable(Exception):
    """This format has no place for these versions (e.g. a CRI-O file for containerd)."""


def removable_flags(placement: Placement) -> frozenset[str]:
    """Flags to take out of env files: removed ones, and those now homed elsewhere.

    A flag for a setting that the placement puts in the config file would silently override
    it; the pull-deadline flag is removed or (with a CRI runtime) does nothing.
    """
    out = set()
    for row in KUBELET_SETTINGS:
        if row.flag is None:
            continue
        homed_elsewhere = row.field in placement.kubelet_fields or any(
            pv.row.key == row.key for pv in placement.runtime_values
        )
        if homed_elsewhere or removed_flag(row.flag, placement.kubernetes_version):
            out.add(row.flag)
        if (
            row.key == "image_pull_progress_deadline_seconds"
            and placement.runtime.kind is not RuntimeKind.DOCKER
        ):
            out.add(row.flag)
    return frozenset(out)


def _renderer(fmt: RenderFormat) -> Callable[[Placement], str]:
    if fmt is RenderFormat.ENV:
        from mlnode.formats.envfile import render_env

        return render_env
    if fmt is RenderFormat.KUBELET_CONFIG:
        from mlnode.formats.kubelet_config import render_kubelet_config

        return render_kubelet_config
    if fmt is RenderFormat.KUBELET_DROPIN:
        from mlnode.formats.kubelet_config import render_kubelet_dropin

        return render_kubelet_dropin
    if fmt is RenderFormat.KUBEADM:
        from mlnode.formats.kubeadm import render_kubeadm

        return render_kubeadm
    if fmt is RenderFormat.KUBESPRAY:
        from mlnode.formats.kubespray import render_kubespray

        return render_kubespray
    if fmt is RenderFormat.CONTAINERD:
        from mlnode.formats.containerd import render_containerd

        return render_containerd
    if fmt is RenderFormat.CRIO:
        from mlnode.formats.crio import render_crio

        return render_crio
    raise AssertionError(fmt)


def _check_applicable(fmt: RenderFormat, placement: Placement) -> None:
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


def render_text(fmt: RenderFormat, placement: Placement) -> str:
    _check_applicable(fmt, placement)
    return _renderer(fmt)(placement)


def merge_text(fmt: RenderFormat, text: str, path: str, placement: Placement) -> str:
    _check_applicable(fmt, placement)
    if fmt is RenderFormat.ENV:
        from mlnode.formats.envfile import merge_env

        return merge_env(text, path, placement, remove_flags=removable_flags(placement))
    if fmt in (RenderFormat.KUBELET_CONFIG, RenderFormat.KUBELET_DROPIN):
        from mlnode.formats.kubelet_config import merge_kubelet_config

        return merge_kubelet_config(text, path, placement)
    if fmt is RenderFormat.KUBEADM:
        from mlnode.formats.kubeadm import merge_kubeadm

        return merge_kubeadm(text, path, placement)
    if fmt is RenderFormat.KUBESPRAY:
        from mlnode.formats.kubespray import merge_kubespray

        return merge_kubespray(text, path, placement)
    if fmt is RenderFormat.CONTAINERD:
        from mlnode.formats.containerd import merge_containerd

        return merge_containerd(text, path, placement)
    if fmt is RenderFormat.CRIO:
        from mlnode.formats.crio import merge_crio

        return merge_crio(text, path, placement)
    raise AssertionError(fmt)


def placement_json(placement: Placement) -> dict[str, Any]:
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


def _elsewhere(fmt: RenderFormat, placement: Placement) -> list[str]:
    """Settings this format does not carry because their home is another file."""
    kubelet_formats = {
        RenderFormat.KUBELET_CONFIG,
        RenderFormat.KUBELET_DROPIN,
        RenderFormat.KUBEADM,
        RenderFormat.KUBESPRAY,
    }
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
    if fmt not in kubelet_formats and placement.kubelet_fields:
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


def _validate_or_refuse(si: SettingsInput, placement: Placement) -> None:
    # The gates the placement turns on are part of what gets written.
    gates = {**default_feature_gates(si.kubernetes_version), **placement.feature_gates}
    failures = validate_kubelet(si.settings.set_fields(), si.kubernetes_version, gates)
    if failures:
        raise UsageError(
            "refusing to render settings the kubelet rejects: "
            + startup_failure_message(failures, si.kubernetes_version)
        )


def _merge_in_place(fmt: RenderFormat | None, merge: Path, placement: Placement) -> Rendered:
    from mlnode.formats.detect import detect_kind
    from mlnode.ops.fileio import atomic_write

    text = read_file_text(merge)
    kind = detect_kind(str(merge), text)
    detected = _KIND_TO_FORMAT.get(kind)
    if detected is None:
        raise InputError(f"mlnode cannot merge settings into a {kind.value} file", path=merge)
    if (
        fmt is not None
        and fmt is not detected
        and not ({fmt, detected} <= {RenderFormat.KUBELET_CONFIG, RenderFormat.KUBELET_DROPIN})
    ):
        raise UsageError(f"{merge} is a {detected.value} file, not {fmt.value}", option="--merge")
    new = merge_text(detected, text, str(merge), placement)
    diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{merge} (before)",
            tofile=f"{merge} (after)",
        )
    )
    if new != text:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = merge.with_name(f"{merge.name}.mlnode-{stamp}.bak")
        shutil.copy2(merge, backup)
        atomic_write(merge, new.encode())
    return Rendered(detected, merge.name, new, str(merge), diff)


def register(app: typer.Typer) -> None:
    @app.command("render")
    @with_settings_options
    def render(
        settings_input: SettingsRequest,
        format: Annotated[
            RenderFormat,
            typer.Option(
                "--format", "-f", help="Which file to produce (all: every one that applies)."
            ),
        ] = RenderFormat.ALL,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write files into this directory.")
        ] = None,
        merge: Annotated[
            Path | None,
            typer.Option(
                "--merge",
                help="Edit this existing file in place (keeping comments, order and other "
                "content; a timestamped .bak copy is kept).",
            ),
        ] = None,
        output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.HUMAN,
    ) -> None:
        """Write image settings where they belong for a kubelet and runtime version.

        Exit 0: everything placed. 1: some settings have no home in these versions (the rest
        is written; stderr says why). 2: unusable input, nothing written.
        """

        def body() -> int:
            si = settings_input()
            placement = place(si.settings, si.kubernetes_version, si.runtime)
            _validate_or_refuse(si, placement)
            if merge is not None and out is not None:
                raise UsageError("use either --merge or --out", option="--merge")
            if merge is not None and format is RenderFormat.ALL:
                fmt: RenderFormat | None = None
            else:
                fmt = format
            rendered: list[Rendered] = []
            skipped: list[tuple[str, str]] = []
            if merge is not None:
                rendered.append(_merge_in_place(fmt, merge, placement))
            else:
                wanted = (
                    [f for f in RenderFormat if f is not RenderFormat.ALL]
                    if format is RenderFormat.ALL
                    else [format]
                )
                for f in wanted:
                    if format is RenderFormat.ALL and not carries(f, placement):
                        skipped.append((f.value, "nothing to write in this format"))
                        continue
                    try:
                        rendered.append(Rendered(f, FILE_NAMES[f], render_text(f, placement)))
                    except NotApplicable as e:
                        if format is not RenderFormat.ALL:
                            raise UsageError(f"{f.value}: {e}", option="--format") from None
                        skipped.append((f.value, str(e)))
                if out is not None:
                    from mlnode.ops.fileio import atomic_write

                    if out.exists() and not out.is_dir():
                        raise UsageError(f"{out} is not a directory", option="--out")
                    written = []
                    for r in rendered:
                        path = out / r.name
                        atomic_write(path, r.content.encode())
                        written.append(Rendered(r.format, r.name, r.content, str(path)))
                    rendered = written

            if merge is None and format is not RenderFormat.ALL:
                for note in _elsewhere(format, placement):
                    stderr.print(f"mlnode: note: {note}", markup=False)
            for refusal in placement.refusals:
                stderr.print(f"mlnode: not written: {refusal.key}: {refusal.reason}", markup=False)
            for warning in placement.warnings:
                stderr.print(f"mlnode: warning: {warning}", markup=False)
            if si.ignored_flags:
                stderr.print(
                    "mlnode: note: not image settings, left as they are: "
                    + " ".join(si.ignored_flags),
                    markup=False,
                )
            if output is OutputFormat.JSON:
                emit_json(
                    {
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
                        "refused": [
                            {"setting": r.key, "reason": r.reason} for r in placement.refusals
                        ],
                        "warnings": list(placement.warnings),
                        "ignored_flags": list(si.ignored_flags),
                    }
                )
            elif merge is not None:
                r = rendered[0]
                stdout.print(r.diff or f"{r.path}: already up to date", markup=False, end="")
                if r.diff:
                    stdout.print(f"{r.path}: updated", markup=False)
            elif out is not None:
                for r in rendered:
                    stdout.print(f"wrote {r.path}", markup=False)
            elif len(rendered) == 1:
                stdout.out(rendered[0].content, end="", highlight=False)
            else:
                for r in rendered:
                    stdout.out(f"# ==> {r.name} ({r.format.value}) <==", highlight=False)
                    stdout.out(
                        r.content, end="" if r.content.endswith("\n") else "\n", highlight=False
                    )
            return 1 if placement.refusals else 0

        code = run(body)
        raise typer.Exit(code)
