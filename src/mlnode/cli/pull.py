"""``mlnode pull IMAGE``: a resumable, stall-aware pull into containerd, registered via CRI.

Blobs go straight into containerd's content store under a lease (resumed from the
committed offset on every retry and on the next ``mlnode pull``), then CRI
``PullImage`` unpacks and registers the image as the kubelet expects. See docs/pull.md.

Output: a progress display on stderr (plain lines when stderr is not a terminal) and
one summary line on stdout; ``--output json`` writes JSON lines events to stdout
(schema in docs/pull.md), ending with ``done`` or ``error``.

On a node wired to the node mirror for the image's registry (``--via auto``, the
default, or ``--via mirror``), the pull is one CRI ``PullImage`` through the mirror,
with byte progress from the mirror's status and containerd's ingests; ``--via engine``
(and ``auto`` on a node not wired) is the engine above.

Exit codes: 0 pulled (or already present), 2 bad option or config file, 3 runtime
unreachable or image not found, 4 registry error or digest mismatch, 5 not enough
space, 6 stalled past the retries.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.cli._common import (
    OutputFormat,
    duration_option,
    emit_json_line,
    finite_float,
    run,
    size_option,
    stdout,
)
from mlnode.cli._options import (
    ImageFsOption,
    MirrorCacheOption,
    OutputOption,
    RuntimeEndpointOption,
    StateFileOption,
)
from mlnode.errors import MlnodeError, UsageError
from mlnode.ops.image_state import DEFAULT_STATE_FILE
from mlnode.ops.pull import DEFAULT_UNPACK_FACTOR, EventSink, PullOptions, PullResult
from mlnode.ops.pull_session import VIA_CHOICES, error_event, open_and_pull
from mlnode.registry.manifest import Platform, host_platform
from mlnode.registry.reference import parse_reference
from mlnode.units import format_bytes

__all__ = ["register"]

ImageArgument = Annotated[
    str, typer.Argument(help="Image reference, e.g. nvcr.io/nvidia/pytorch:24.05-py3")
]
HostsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--hosts-dir",
        help="containerd registry config_path with <host>/hosts.toml "
        "(default: what the running containerd uses, else /etc/containerd/certs.d).",
        file_okay=False,
    ),
]
DockerConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--docker-config",
        help="docker config.json with registry credentials "
        "(default: $DOCKER_CONFIG/config.json or ~/.docker/config.json).",
        dir_okay=False,
    ),
]
PlatformOption = Annotated[
    str | None,
    typer.Option(
        "--platform",
        help="os/arch or os/arch/variant to pick from an index (default: this host).",
    ),
]
ConnectionsOption = Annotated[
    int,
    typer.Option("--connections", help="Parallel downloads; ranges per big layer (default 4)."),
]
SplitThresholdOption = Annotated[
    str,
    typer.Option(
        "--split-threshold",
        help="Fetch a layer at least this big over several ranged connections.",
    ),
]
StallTimeoutOption = Annotated[
    str,
    typer.Option(
        "--stall-timeout",
        help="Retry a connection that delivers no byte for this long (default 5m).",
    ),
]
RetriesOption = Annotated[
    int,
    typer.Option(
        "--retries", help="Retries in a row without a new byte before giving up (default 5)."
    ),
]
ReserveOption = Annotated[
    str | None,
    typer.Option(
        "--reserve",
        help="Space to leave free after the pull (default: 5% of the disk, at most 10GiB).",
    ),
]
UnpackFactorOption = Annotated[
    float,
    typer.Option(
        "--unpack-factor",
        metavar="FACTOR",
        parser=finite_float,
        help="Unpacked size estimate per compressed byte (default 2.0).",
    ),
]
ViaOption = Annotated[
    str,
    typer.Option(
        "--via",
        help="mirror: CRI PullImage through the node mirror (the node must be wired for "
        "the registry); engine: mlnode's own fetch into containerd; auto (default): the "
        "mirror when wired, else the engine.",
    ),
]
NoGcOption = Annotated[
    bool,
    typer.Option("--no-gc", help="If the image does not fit, refuse instead of running image GC."),
]


class _HumanView:
    """Rich progress bars on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.overall: TaskID | None = None
        self.unpack: TaskID | None = None
        self.started = False
        self.last_line = 0.0
        self.mirror_reachable = True

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "path":
            if e["via"] == "mirror":  # the engine is what a node not wired always did
                self.console.print(f"via {e['via']}: {e['reason']}", markup=False, highlight=False)
        elif kind == "mirror":
            if self.mirror_reachable and not e["reachable"]:
                self.console.print(
                    f"warning: mirror unreachable, watching containerd only: {e['error']}",
                    markup=False,
                    highlight=False,
                )
            self.mirror_reachable = e["reachable"]
        elif kind == "resolved":
            self.console.print(
                f"{e['image']}: manifest {e['manifest_digest']} ({e['platform']}), "
                f"{format_bytes(e['total_bytes'])} in {len(e['blobs'])} blobs, "
                f"{format_bytes(e['present_bytes'])} already on the node",
                markup=False,
                highlight=False,
            )
            if self.live:
                self.progress.start()
                self.started = True
                self.overall = self.progress.add_task(
                    "total", total=e["total_bytes"], completed=e["present_bytes"]
                )
                for b in e["blobs"]:
                    self.tasks[b["digest"]] = self.progress.add_task(
                        f"{b['role']} {b['digest'][7:19]}",
                        total=b["size_bytes"],
                        completed=b["offset_bytes"],
                    )
        elif kind == "progress":
            if self.live:
                task = self.tasks.get(e["layer"])
                if task is not None:
                    self.progress.update(task, completed=e["offset_bytes"])
                if self.overall is not None:
                    self.progress.update(self.overall, completed=e["image_offset_bytes"])
            elif time.monotonic() - self.last_line >= 5 or e["offset_bytes"] == e["total_bytes"]:
                self.last_line = time.monotonic()
                eta = e.get("eta_seconds")
                self.console.print(
                    f"fetching: {format_bytes(e['image_offset_bytes'])} of "
                    f"{format_bytes(e['image_total_bytes'])}, "
                    f"{format_bytes(e['image_rate_bytes_per_second'])}/s"
                    + (f", about {eta:.0f}s left" if eta is not None else ""),
                    markup=False,
                    highlight=False,
                )
        elif kind == "retry":
            self.console.print(
                f"retry ({e['reason']}) {e['layer'][7:19]} at offset {e['offset_bytes']}: "
                f"{e['message']}",
                markup=False,
                highlight=False,
            )
        elif kind == "space" and not e["fits"]:
            self.console.print(
                f"not enough space: {format_bytes(e['required_bytes'])} needed, "
                f"{format_bytes(e['available_bytes'])} available",
                markup=False,
                highlight=False,
            )
        elif kind == "gc":
            self.console.print(
                f"image GC removed {len(e['removed'])} image(s), "
                f"{format_bytes(e['bytes_freed'])} freed",
                markup=False,
                highlight=False,
            )
        elif kind == "warning":
            self.console.print(f"warning: {e['message']}", markup=False, highlight=False)
        elif kind == "phase" and e["phase"] == "unpacking":
            if self.live:
                if self.unpack is None:
                    self.unpack = self.progress.add_task("unpacking (CRI PullImage)", total=None)
            elif e["elapsed_seconds"] == 0:
                self.console.print("unpacking (CRI PullImage)…", markup=False, highlight=False)

    def close(self) -> None:
        if self.started:
            self.progress.stop()


def _pull_options(
    *,
    platform: str | None,
    connections: int,
    split_threshold: str,
    stall_timeout: str,
    retries: int,
    reserve: str | None,
    unpack_factor: float,
    no_gc: bool,
) -> PullOptions:
    try:
        plat = Platform.parse(platform) if platform else host_platform()
    except ValueError as e:
        raise UsageError(str(e), option="--platform") from e
    return PullOptions(
        connections=connections,
        split_threshold_bytes=size_option(split_threshold, "--split-threshold"),
        stall_timeout_seconds=duration_option(stall_timeout, "--stall-timeout", positive=True),
        retries=retries,
        reserve_bytes=None if reserve is None else size_option(reserve, "--reserve"),
        gc=not no_gc,
        unpack_factor=unpack_factor,
        platform=plat,
    )


def _print_summary(result: PullResult) -> None:
    if result.already_present:
        stdout.print(f"{result.reference} is already present ({result.image_id})", markup=False)
        return
    rate = result.fetched_bytes / result.fetch_seconds if result.fetch_seconds else 0
    stdout.print(
        f"pulled {result.reference} ({result.image_id}) via {result.via} in "
        f"{result.total_seconds:.1f}s: fetched "
        f"{format_bytes(result.fetched_bytes)} "
        f"in {result.fetch_seconds:.1f}s ({format_bytes(int(rate))}/s), "
        f"unpacked in {result.unpack_seconds:.1f}s, {result.retries} retries",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    @app.command("pull")
    def pull_cmd(
        image: ImageArgument,
        runtime_endpoint: RuntimeEndpointOption = None,
        hosts_dir: HostsDirOption = None,
        docker_config: DockerConfigOption = None,
        platform: PlatformOption = None,
        connections: ConnectionsOption = 4,
        split_threshold: SplitThresholdOption = "64MiB",
        stall_timeout: StallTimeoutOption = "5m",
        retries: RetriesOption = 5,
        reserve: ReserveOption = None,
        unpack_factor: UnpackFactorOption = DEFAULT_UNPACK_FACTOR,
        no_gc: NoGcOption = False,
        via: ViaOption = "auto",
        state_file: StateFileOption = DEFAULT_STATE_FILE,
        image_fs: ImageFsOption = None,
        mirror_cache: MirrorCacheOption = DEFAULT_CACHE_DIR,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Pull an image into containerd: resumable, with byte progress and a stall deadline."""
        json_mode = output is OutputFormat.JSON
        view = (
            None
            if json_mode
            else _HumanView(Console(stderr=True, highlight=False, markup=False, emoji=False))
        )

        def body() -> None:
            parse_reference(image)  # a malformed reference is refused before any socket
            if via not in VIA_CHOICES:
                raise UsageError(f"must be one of {', '.join(VIA_CHOICES)}", option="--via")
            options = _pull_options(
                platform=platform,
                connections=connections,
                split_threshold=split_threshold,
                stall_timeout=stall_timeout,
                retries=retries,
                reserve=reserve,
                unpack_factor=unpack_factor,
                no_gc=no_gc,
            )
            emit: EventSink = emit_json_line if view is None else view
            try:
                result = open_and_pull(
                    image,
                    runtime_endpoint=runtime_endpoint,
                    hosts_dir=hosts_dir,
                    docker_config=docker_config,
                    image_fs=image_fs,
                    state_file=state_file,
                    options=options,
                    emit=emit,
                    mirror_cache=mirror_cache,
                    via=via,
                )
            except MlnodeError as e:
                if json_mode:
                    emit_json_line(error_event(e))
                raise
            finally:
                if view is not None:
                    view.close()
            if not json_mode:
                _print_summary(result)

        run(body)
