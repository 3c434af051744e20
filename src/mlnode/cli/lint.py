"""``mlnode lint``: what a node's files will do to the kubelet and runtime, before they do it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from mlnode.cli._common import OutputFormat, emit_json, run, size_option, stdout
from mlnode.cli._inputs import read_documents
from mlnode.cli._options import (
    ImageDiskOption,
    KubernetesVersionOption,
    OptionalRootOption,
    OutputOption,
    RuntimeOption,
)
from mlnode.errors import UsageError
from mlnode.knowledge.model import Layer
from mlnode.lint.engine import LintContext, LintReport, lint_documents
from mlnode.lint.findings import Severity
from mlnode.units import format_go_duration
from mlnode.versions import parse_kubernetes_version, parse_runtime

__all__ = ["register"]

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _node_files(root: Path) -> list[Path]:
    from mlnode.node import discover_node_files

    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", option="--root")
    return list(discover_node_files(root).all_paths())


def report_json(report: LintReport, ctx: LintContext, files: list[str]) -> dict[str, Any]:
    effective: dict[str, Any] = {}
    for key, sv in {**report.effective.kubelet, **report.effective.runtime}.items():
        effective[key] = {
            "value": sv.value,
            "layer": sv.layer.name.lower().replace("_", "-"),
            "source": str(sv.origin) if sv.origin else None,
        }
    return {
        "schema": "mlnode.lint/v1",
        "kubernetes_version": str(ctx.kubernetes_version),
        "runtime": str(ctx.runtime),
        "files": files,
        "findings": [f.to_json() for f in report.findings],
        "summary": report.counts(),
        "effective": effective,
        "feature_gates": dict(report.effective.feature_gates),
    }


def _print_human(report: LintReport, files: list[str]) -> None:
    for f in report.findings:
        where = ""
        if f.origin is not None:
            where = f.origin.path + (f":{f.origin.line}" if f.origin.line else "") + ": "
        stdout.print(
            Text.assemble(
                where, (f"{f.severity.value} {f.code}", _STYLE[f.severity]), f": {f.message}"
            )
        )
        stdout.print(f"    on the node: {f.consequence}", markup=False)
        if f.fix:
            stdout.print(f"    fix: {f.fix}", markup=False)
    set_values = [
        (k, sv) for k, sv in report.effective.kubelet.items() if sv.layer is not Layer.DEFAULT
    ] + [(k, sv) for k, sv in report.effective.runtime.items() if sv.layer is not Layer.DEFAULT]
    if set_values:
        stdout.print("effective settings (not defaults):", markup=False)
        for key, sv in set_values:
            value = sv.value
            if key.endswith("_seconds") and isinstance(value, int | float):
                value = format_go_duration(value)
            stdout.print(f"    {key} = {value}  ({sv.origin})", markup=False)
    c = report.counts()
    stdout.print(
        f"{len(files)} file(s): {c['error']} error(s), {c['warning']} warning(s), {c['info']} info",
        markup=False,
    )


FilesArgument = Annotated[
    list[Path] | None,
    typer.Argument(help="Files to lint; their kind is detected from their content."),
]
# Not plan's --largest-image (compressed): lint checks the headroom a pull needs on disk.
LargestImageOption = Annotated[
    str | None,
    typer.Option("--largest-image", help="Largest image on disk (content + unpacked)."),
]


def register(app: typer.Typer) -> None:
    @app.command("lint")
    def lint(
        files: FilesArgument = None,
        root: OptionalRootOption = None,
        kubernetes_version: KubernetesVersionOption = None,
        runtime: RuntimeOption = None,
        image_disk: ImageDiskOption = None,
        largest_image: LargestImageOption = None,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Find settings that stop the kubelet or runtime, or that do not do what they seem.

        With --root DIR it also lints the node's standard paths under DIR.
        Exit 0: no error (warnings allowed). 1: an error was found. 2: an input is unusable.
        """

        def body() -> int:
            k8s_text, runtime_text = kubernetes_version or "", runtime or ""
            if root is not None and not (k8s_text and runtime_text):
                # A mounted node tells its versions through its binaries (kubelet --version).
                from mlnode.ops.inspect import inspect_node

                seen = inspect_node(root)
                if not k8s_text and seen.kubelet_version is not None:
                    k8s_text = str(seen.kubelet_version)
                if not runtime_text and seen.runtime is not None:
                    runtime_text = str(seen.runtime)
            if not k8s_text:
                raise UsageError(
                    "required (no kubelet binary found to ask)", option="--kubernetes-version"
                )
            if not runtime_text:
                raise UsageError("required (no runtime binary found to ask)", option="--runtime")
            ctx = LintContext(
                kubernetes_version=parse_kubernetes_version(k8s_text),
                runtime=parse_runtime(runtime_text),
                image_disk_bytes=size_option(image_disk, "--image-disk") if image_disk else None,
                largest_image_bytes=(
                    size_option(largest_image, "--largest-image") if largest_image else None
                ),
                whole_node=root is not None and not files,
            )
            paths = list(files or [])
            if root is not None:
                paths += _node_files(root)
            if not paths:
                raise UsageError("give files to lint, or --root DIR")
            docs = read_documents(paths)
            report = lint_documents(docs, ctx)
            names = [str(p) for p in paths]
            if output is OutputFormat.JSON:
                emit_json(report_json(report, ctx, names))
            else:
                _print_human(report, names)
            return 1 if report.has_errors else 0

        code = run(body)
        raise typer.Exit(code)
