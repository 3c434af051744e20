"""``mlnode gc``: plan image garbage collection, and carry it out against the runtime.

With ``--snapshot FILE`` it plans offline from a JSON description of a node and removes
nothing. Without it, it asks the runtime (CRI, containerd, ``statvfs``), records image
first-seen/last-used times in the state file, plans, and removes the planned images
unless ``--dry-run``. Exit codes: 0 target satisfied or nothing to do, 1 target not
satisfied, 2 bad input, 3 runtime unreachable. See docs/gc.md.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.cli._common import (
    OutputFormat,
    duration_option,
    emit_json,
    run,
    size_option,
    stdout,
)
from mlnode.cli._options import (
    DryRunOption,
    ImageFsOption,
    MirrorCacheOption,
    OutputOption,
    RuntimeEndpointOption,
    StateFileOption,
)
from mlnode.errors import UsageError
from mlnode.gc import (
    GcImage,
    GcPlan,
    GcPolicy,
    InvalidGcInput,
    MirrorBlob,
    PolicyName,
    load_snapshot,
    plan,
    plan_to_json,
)
from mlnode.ops import gc_session
from mlnode.ops.gc_runtime import GcRun
from mlnode.ops.image_state import DEFAULT_STATE_FILE
from mlnode.units import format_bytes

__all__ = ["register"]


_FLAG_FOR_FIELD = {
    "high_threshold_percent": "--high",
    "low_threshold_percent": "--low",
    "minimum_age_seconds": "--minimum-age",
    "maximum_age_seconds": "--maximum-age",
    "kubelet_uptime_seconds": "--kubelet-uptime",
    "headroom_bytes": "--headroom-bytes",
    "largest_image_bytes": "--largest-image",
}


def _human_seconds(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}s" if seconds == int(seconds) else f"{seconds % 60:g}s")
    return "".join(parts)


def _ago(ts: datetime | None, now: datetime) -> str:
    if ts is None or ts.year == 1:
        return "never"
    delta = (now - ts).total_seconds()
    return f"{_human_seconds(delta)} ago" if delta >= 0 else f"in {_human_seconds(-delta)}"


def _merge_policy(base: GcPolicy, overrides: dict[str, Any]) -> GcPolicy:
    present = {k: v for k, v in overrides.items() if v is not None}
    try:
        return dataclasses.replace(base, **present)
    except InvalidGcInput as e:
        raise UsageError(e.message, option=_FLAG_FOR_FIELD.get(e.key, e.key)) from e


def _print_header(the_plan: GcPlan, policy: GcPolicy, source: str) -> None:
    cap, avail = the_plan.capacity_bytes, the_plan.available_bytes
    stdout.print(f"Source: {source}", markup=False)
    stdout.print(
        f"Image filesystem: {format_bytes(cap - avail)} of {format_bytes(cap)} used "
        f"({the_plan.usage_percent}%), {format_bytes(avail)} available",
        markup=False,
    )
    max_age = policy.maximum_age_seconds
    line = (
        f"Policy {the_plan.policy}: high {policy.high_threshold_percent}%, "
        f"low {policy.low_threshold_percent}%, minimum age "
        f"{_human_seconds(policy.minimum_age_seconds)}, maximum age "
        f"{_human_seconds(max_age) if max_age else 'off'}"
    )
    if the_plan.headroom_bytes is not None:
        line += f", headroom {format_bytes(the_plan.headroom_bytes)}"
    stdout.print(line, markup=False)
    for text in the_plan.explanations:
        stdout.print(f"  - {text}", markup=False)


def _print_removals(
    the_plan: GcPlan, images: tuple[GcImage, ...], now: datetime, run_result: GcRun | None
) -> None:
    by_id: dict[str, GcImage] = {i.id: i for i in images}
    done = run_result is not None and not run_result.dry_run
    if run_result is None or run_result.dry_run:
        title = "Would remove"
        rows = [(r, "") for r in the_plan.removed]
    else:
        title = "Removal"
        rows = [
            (o.removal, o.outcome + (f": {o.detail}" if o.detail else ""))
            for o in run_result.outcomes
        ]
    if not rows:
        stdout.print("Nothing to remove.", markup=False)
        return
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("IMAGE", overflow="fold")
    table.add_column("SIZE", justify="right")
    table.add_column("REASON")
    table.add_column("LAST USED")
    if done:
        table.add_column("RESULT", overflow="fold")
    for removal, result in rows:
        image = by_id.get(removal.id)
        cells = [
            image.display_name
            if image
            else _removal_name(removal.id, removal.names, removal.reason),
            format_bytes(removal.size_bytes),
            removal.reason,
            _ago(image.last_used, now) if image else "-",
        ]
        if done:
            cells.append(result)
        table.add_row(*cells)
    stdout.print(table)


def _removal_name(ident: str, names: tuple[str, ...], reason: str) -> str:
    """A row's name when it is not an image the runtime listed: a mirror cache blob shows
    as ``mirror cache <registry/repository>@sha256:<12 hex>``."""
    if reason != "mirror-cache":
        return ident
    short = ident[: len("sha256:") + 12]
    return f"mirror cache {names[0]}@{short}" if names else f"mirror cache {short}"


def _print_mirror(directory: Path | None, blobs: tuple[MirrorBlob, ...]) -> None:
    if directory is None:
        return
    if not blobs:
        stdout.print(
            f"Mirror cache {directory}: none (no blobs, or not on this node)", markup=False
        )
        return
    ok = [b for b in blobs if b.removable]
    left = [b for b in blobs if not b.removable]
    stdout.print(
        f"Mirror cache {directory}: {len(ok)} complete blob(s), "
        f"{format_bytes(sum(b.disk_bytes for b in ok))} reclaimable (freed before any image); "
        f"{len(left)} partial or in flight, {format_bytes(sum(b.disk_bytes for b in left))} "
        "(left to the mirror)",
        markup=False,
    )


def _print_kept(the_plan: GcPlan) -> None:
    if not the_plan.kept:
        return
    kept = Table(title="Kept", title_justify="left", show_edge=False, pad_edge=False)
    kept.add_column("IMAGE", overflow="fold")
    kept.add_column("SIZE", justify="right")
    kept.add_column("WHY")
    for k in the_plan.kept:
        kept.add_row(k.names[0] if k.names else k.id, format_bytes(k.size_bytes), k.reason)
    stdout.print(kept)


def _print_summary(the_plan: GcPlan, run_result: GcRun | None) -> None:
    freed = run_result.bytes_freed if run_result is not None else the_plan.bytes_freed
    satisfied = run_result.satisfied if run_result is not None else the_plan.satisfied
    verb = "Freed" if run_result is not None and not run_result.dry_run else "Would free"
    if the_plan.bytes_to_free <= 0 and not the_plan.triggered:
        summary = f"{verb} {format_bytes(freed)}; no space target is due: satisfied."
    else:
        state = "satisfied" if satisfied else "NOT satisfied"
        summary = (
            f"{verb} {format_bytes(freed)} ({freed} bytes) of the "
            f"{format_bytes(the_plan.bytes_to_free)} ({the_plan.bytes_to_free} bytes) "
            f"needed: target {state}."
        )
    stdout.print(summary, markup=False)
    if run_result is not None and run_result.available_after_bytes is not None:
        stdout.print(
            f"Available now (measured): {format_bytes(run_result.available_after_bytes)}",
            markup=False,
        )


def _render_human(
    the_plan: GcPlan,
    images: tuple[GcImage, ...],
    policy: GcPolicy,
    now: datetime,
    *,
    run_result: GcRun | None,
    source: str,
) -> None:
    _print_header(the_plan, policy, source)
    _print_removals(the_plan, images, now, run_result)
    _print_kept(the_plan)
    _print_summary(the_plan, run_result)


def _run_json(run_result: GcRun) -> dict[str, Any]:
    """The live (non-dry-run) JSON: the plan's four keys, from what was done, plus
    ``not_removed`` (documented in docs/gc.md)."""
    return {
        "bytes_to_free": run_result.plan.bytes_to_free,
        "removed": [
            {"id": r.id, "size_bytes": r.size_bytes, "reason": r.reason} for r in run_result.removed
        ],
        "bytes_freed": run_result.bytes_freed,
        "satisfied": run_result.satisfied,
        "not_removed": [
            {
                "id": o.removal.id,
                "size_bytes": o.removal.size_bytes,
                "reason": o.removal.reason,
                "error": o.detail,
            }
            for o in run_result.not_removed
        ],
    }


def _gc_snapshot(
    snapshot: Path, policy_name: PolicyName, overrides: dict[str, Any], output: OutputFormat
) -> int:
    snap = load_snapshot(snapshot)
    policy = _merge_policy(snap.policy, overrides)
    the_plan = plan(policy_name, snap.images, snap.filesystem, policy, now=snap.now)
    if output is OutputFormat.JSON:
        emit_json(plan_to_json(the_plan))
    else:
        _render_human(
            the_plan,
            snap.images,
            policy,
            snap.now,
            run_result=None,
            source=f"snapshot {snapshot} at {snap.now.isoformat()} (nothing is removed)",
        )
    return 0 if the_plan.satisfied else 1


def _gc_live(
    *,
    policy_name: PolicyName,
    dry_run: bool,
    output: OutputFormat,
    overrides: dict[str, Any],
    runtime_endpoint: str | None,
    state_file: Path,
    image_fs: Path | None,
    mirror_cache: Path,
) -> int:
    done = gc_session.gc_live(
        policy_name,
        _merge_policy(GcPolicy(), overrides),
        endpoint=runtime_endpoint,
        image_fs=image_fs,
        state_file=state_file,
        dry_run=dry_run,
        mirror_cache=mirror_cache if policy_name is PolicyName.ML else None,
    )
    the_plan, run_result = done.plan, done.run
    if output is OutputFormat.JSON:
        emit_json(plan_to_json(the_plan) if dry_run else _run_json(run_result))
    else:
        where = done.image_fs_path
        _render_human(
            the_plan,
            done.collected.images,
            done.policy,
            done.now,
            run_result=run_result,
            source=(
                f"live runtime{f' (image filesystem {where})' if where else ''}"
                f"{', dry run: nothing is removed' if dry_run else ''}"
            ),
        )
        if policy_name is PolicyName.ML:
            _print_mirror(mirror_cache, done.mirror)
    return 0 if run_result.satisfied else 1


def _overrides(
    *,
    high: int | None,
    low: int | None,
    minimum_age: str | None,
    maximum_age: str | None,
    kubelet_uptime: str | None,
    headroom: str | None,
    largest_image: str | None,
    keep: list[str] | None,
) -> dict[str, Any]:
    """The policy fields the options set (None: not given), parsed."""

    def seconds(text: str | None, option: str) -> float | None:
        return duration_option(text, option) if text else None

    def size(text: str | None, option: str) -> int | None:
        return size_option(text, option) if text else None

    return {
        "high_threshold_percent": high,
        "low_threshold_percent": low,
        "minimum_age_seconds": seconds(minimum_age, "--minimum-age"),
        "maximum_age_seconds": seconds(maximum_age, "--maximum-age"),
        "kubelet_uptime_seconds": seconds(kubelet_uptime, "--kubelet-uptime"),
        "headroom_bytes": size(headroom, "--headroom-bytes"),
        "largest_image_bytes": size(largest_image, "--largest-image"),
        "keep_patterns": tuple(keep) if keep else None,
    }


PolicyOption = Annotated[
    PolicyName,
    typer.Option(
        "--policy",
        help="ml (headroom for the largest image, fewest removals) or kubelet "
        "(exactly the kubelet's image GC).",
    ),
]
SnapshotOption = Annotated[
    Path | None,
    typer.Option(
        "--snapshot",
        help="Plan offline from this JSON snapshot (schema in docs/gc.md); removes nothing.",
        dir_okay=False,
    ),
]
HighOption = Annotated[
    int | None,
    typer.Option("--high", metavar="PERCENT", help="High threshold, percent used (default 85)."),
]
LowOption = Annotated[
    int | None,
    typer.Option("--low", metavar="PERCENT", help="Low threshold, percent used (default 80)."),
]
MinimumAgeOption = Annotated[
    str | None,
    typer.Option(
        "--minimum-age", metavar="DURATION", help="Minimum image age, e.g. 2m (default 2m)."
    ),
]
MaximumAgeOption = Annotated[
    str | None,
    typer.Option(
        "--maximum-age",
        metavar="DURATION",
        help="Remove images unused this long, e.g. 168h (0 = off).",
    ),
]
KubeletUptimeOption = Annotated[
    str | None,
    typer.Option(
        "--kubelet-uptime",
        metavar="DURATION",
        help="kubelet policy: how long the kubelet has run (its maximum-age pass "
        "waits until uptime exceeds the maximum age). Default: long enough.",
    ),
]
HeadroomOption = Annotated[
    str | None,
    typer.Option(
        "--headroom-bytes",
        metavar="SIZE",
        help="ml policy: keep at least this much free, e.g. 40GiB "
        "(default: the largest image seen).",
    ),
]
LargestImageOption = Annotated[
    str | None,
    typer.Option(
        "--largest-image",
        metavar="SIZE",
        help="ml policy: size of the largest image you will pull, e.g. 35GiB "
        "(raises the default headroom).",
    ),
]
KeepOption = Annotated[
    list[str] | None,
    typer.Option(
        "--keep",
        metavar="GLOB",
        help="ml policy: never remove images matching this glob (repeatable).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("gc")
    def gc_command(
        policy: PolicyOption = PolicyName.ML,
        dry_run: DryRunOption = False,
        snapshot: SnapshotOption = None,
        output: OutputOption = OutputFormat.HUMAN,
        high: HighOption = None,
        low: LowOption = None,
        minimum_age: MinimumAgeOption = None,
        maximum_age: MaximumAgeOption = None,
        kubelet_uptime: KubeletUptimeOption = None,
        headroom: HeadroomOption = None,
        largest_image: LargestImageOption = None,
        keep: KeepOption = None,
        runtime_endpoint: RuntimeEndpointOption = None,
        state_file: StateFileOption = DEFAULT_STATE_FILE,
        image_fs: ImageFsOption = None,
        mirror_cache: MirrorCacheOption = DEFAULT_CACHE_DIR,
    ) -> None:
        """Free image-filesystem space: plan (and, live, remove) unused images."""

        def body() -> int:
            overrides = _overrides(
                high=high,
                low=low,
                minimum_age=minimum_age,
                maximum_age=maximum_age,
                kubelet_uptime=kubelet_uptime,
                headroom=headroom,
                largest_image=largest_image,
                keep=keep,
            )
            if snapshot is not None:
                return _gc_snapshot(snapshot, policy, overrides, output)
            return _gc_live(
                policy_name=policy,
                dry_run=dry_run,
                output=output,
                overrides=overrides,
                runtime_endpoint=runtime_endpoint,
                state_file=state_file,
                image_fs=image_fs,
                mirror_cache=mirror_cache,
            )

        raise typer.Exit(run(body))
