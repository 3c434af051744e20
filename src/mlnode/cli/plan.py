"""`mlnode plan`: recommend image settings for a node profile, with the arithmetic.

Values come from, highest priority first: options, ``--profile FILE``, local inspection
(under ``--root``, skipped with ``--no-inspect``), ML defaults. Exit codes: 0 a feasible
plan, 1 no thresholds fit the disk (the reason is printed), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mlnode.cli._common import OutputFormat, emit_json, run, stdout
from mlnode.cli._options import (
    ImageDiskOption,
    KubernetesVersionOption,
    OutputOption,
    RootOption,
    RuntimeOption,
)
from mlnode.ops.inspect import inspect_node
from mlnode.planning.plan import Plan, make_plan, plan_to_json
from mlnode.planning.profile import (
    ProfileInput,
    format_rate,
    load_profile,
    option_input,
    resolve_profile,
)
from mlnode.units import format_bytes

__all__ = ["register"]


def _profile_value(name: str, value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if name.endswith("_bytes"):
        return format_bytes(int(value))
    if name.endswith("_bytes_per_hour"):
        return f"{format_bytes(int(value))}/h"
    if name == "unpack_bytes_per_second":
        return f"{float(value) / 1e6:g} MB/s"
    if name.endswith("_bytes_per_second"):
        return format_rate(float(value))
    if name.endswith("_percent"):
        return f"{value:g}%"
    if name.endswith("_seconds"):
        return f"{value:g} s"
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _print_human(plan: Plan) -> None:
    prof = Table(title="Node profile", title_justify="left", show_lines=False)
    prof.add_column("Input")
    prof.add_column("Value", no_wrap=True)
    prof.add_column("From")
    for name, value in plan.profile.to_json().items():
        source = plan.profile.sources.get(name, "")
        if source.startswith("ML default"):
            source = source.split(":", 1)[0] + " (docs/plan.md says why)"
        prof.add_row(name, _profile_value(name, value), source)
    stdout.print(prof)

    table = Table(title="Recommended settings", title_justify="left", show_lines=True)
    table.add_column("Setting")
    table.add_column("Value", no_wrap=True)
    table.add_column("Why")
    for j in plan.justifications:
        table.add_row(j.setting, j.value, f"{j.formula}\n{j.numbers}")
    stdout.print(table)

    if not plan.feasible:
        stdout.print(Text.assemble(("Not feasible:", "bold red"), f" {plan.reason or ''}"))
    elif plan.homes:
        stdout.print("Files to write:")
        for f in plan.files:
            stdout.print(f"  {f}", markup=False)
            for h in plan.homes:
                if h.file == f:
                    stdout.print(f"    {h.name} = {_shown(h.value)}", markup=False)
        refused = [h for h in plan.homes if h.target == "refused"]
        if refused:
            stdout.print("Not written (no home in these versions):")
            for h in refused:
                stdout.print(f"  {h.setting}: {h.value}", markup=False)
    for w in plan.warnings:
        stdout.print(f"warning: {w}", markup=False)


ProfileOption = Annotated[
    Path | None,
    typer.Option("--profile", help="Profile file (YAML, or JSON if it ends in .json)."),
]
LargestImageOption = Annotated[
    str | None, typer.Option("--largest-image", help="Largest image, compressed, e.g. 15GiB.")
]
UnpackedOption = Annotated[
    str | None,
    typer.Option("--unpacked", help="That image unpacked on disk (default: 2 × compressed)."),
]
LargestLayerOption = Annotated[
    str | None, typer.Option("--largest-layer", help="Largest layer, compressed.")
]
BandwidthOption = Annotated[
    str | None,
    typer.Option("--bandwidth", help="Registry → node rate, e.g. 10Gbit/s or 1.25GB/s."),
]
ConcurrentPullsOption = Annotated[
    int | None, typer.Option("--concurrent-pulls", help="Large pulls the node may run at once.")
]
GrowthOption = Annotated[
    str | None,
    typer.Option("--growth", help="Other writers on the image disk, per hour, e.g. 10GiB."),
]
SharedWithOsOption = Annotated[
    bool | None,
    typer.Option(
        "--shared-with-os/--dedicated-disk",
        help="Whether the image filesystem is the root filesystem.",
    ),
]
NoInspectOption = Annotated[
    bool, typer.Option("--no-inspect", help="Do not look at the local machine at all.")
]


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_command(
        profile: ProfileOption = None,
        image_disk: ImageDiskOption = None,
        largest_image: LargestImageOption = None,
        unpacked: UnpackedOption = None,
        largest_layer: LargestLayerOption = None,
        bandwidth: BandwidthOption = None,
        concurrent_pulls: ConcurrentPullsOption = None,
        growth: GrowthOption = None,
        shared_with_os: SharedWithOsOption = None,
        kubernetes_version: KubernetesVersionOption = None,
        runtime: RuntimeOption = None,
        root: RootOption = Path("/"),
        no_inspect: NoInspectOption = False,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Recommend image GC, pull and deadline settings, with the arithmetic behind each."""

        def body() -> int:
            layers: list[ProfileInput] = [
                option_input(
                    {
                        "image_disk_capacity_bytes": ("--image-disk", image_disk),
                        "largest_image_bytes": ("--largest-image", largest_image),
                        "largest_image_unpacked_bytes": ("--unpacked", unpacked),
                        "largest_layer_bytes": ("--largest-layer", largest_layer),
                        "link_bandwidth_bytes_per_second": ("--bandwidth", bandwidth),
                        "concurrent_pulls": ("--concurrent-pulls", concurrent_pulls),
                        "other_writers_growth_bytes_per_hour": ("--growth", growth),
                        "shared_with_os": ("--shared-with-os", shared_with_os),
                        "kubernetes_version": ("--kubernetes-version", kubernetes_version),
                        "runtime": ("--runtime", runtime),
                    }
                )
            ]
            if profile is not None:
                layers.append(load_profile(profile))
            if not no_inspect:
                layers.append(inspect_node(root).as_profile_input())
            plan = make_plan(resolve_profile(layers))
            if output is OutputFormat.JSON:
                emit_json(plan_to_json(plan))
            else:
                _print_human(plan)
            return 0 if plan.feasible else 1

        code = run(body)
        if code:
            raise typer.Exit(code)
