"""``mlnode pull IMAGE``: a resumable, stall-aware pull into containerd, registered via CRI.

Blobs go straight into containerd's content store under a lease (resumed from the
committed offset on every retry and on the next ``mlnode pull``), then CRI
``PullImage`` unpacks and registers the image as the kubelet expects. See docs/pull.md.

Output: a progress display on stderr (plain lines when stderr is not a terminal) and
one summary line on stdout; ``--output json`` writes JSON lines events to stdout
(schema in docs/pull.md), ending with ``done`` or ``error``.

Exit codes: 0 pulled (or already present), 2 bad option or config file, 3 runtime
unreachable or image not found, 4 registry error or digest mismatch, 5 not enough
space, 6 stalled past the retries.
"""

from __future__ import annotations

import json
import sys
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

from mlnode.cli._common import (
    OutputFormat,
    OutputOption,
    duration_option,
    run,
    size_option,
    stdout,
)
from mlnode.errors import MlnodeError, UsageError
from mlnode.ops.image_state import DEFAULT_STATE_FILE
from mlnode.ops.pull import (
    DEFAULT_UNPACK_FACTOR,
    EventSink,
    Puller,
    PullOptions,
    PullResult,
    gc_free_space,
)
from mlnode.registry.client import RegistryClient
from mlnode.registry.manifest import Platform, host_platform
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.discovery import discover_runtime
from mlnode.runtime.fs import FilesystemUsage, image_filesystem
from mlnode.units import format_bytes

__all__ = ["DEFAULT_HOSTS_DIR", "open_and_pull", "register"]

DEFAULT_HOSTS_DIR = Path("/etc/containerd/certs.d")


def _json_line(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
    sys.stdout.flush()


class _HumanView:
    """Rich progress bars on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
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

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "resolved":
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


def _runtime_config(cri: CriClient) -> tuple[Path | None, Path | None]:
    """(containerd root, registry config_path) as the running containerd reports them."""
    status = cri.status(verbose=True)
    root = status.containerd_root_dir()
    hosts: Path | None = None
    raw = status.info.get("config")
    if raw:
        try:
            cfg = json.loads(raw)
        except ValueError:
            cfg = None
        registry = cfg.get("registry") if isinstance(cfg, dict) else None
        path = registry.get("configPath") if isinstance(registry, dict) else None
        if isinstance(path, str) and path:
            hosts = Path(path)
    return root, hosts


def open_and_pull(
    image: str,
    *,
    runtime_endpoint: str | None,
    hosts_dir: Path | None,
    docker_config: Path | None,
    image_fs: Path | None,
    state_file: Path | None,
    options: PullOptions,
    emit: EventSink,
) -> PullResult:
    """Connect to the runtime and the registry and run one pull."""
    found = discover_runtime(runtime_endpoint)
    with CriClient(found.socket_path) as cri, ContainerdClient(found.socket_path) as ctrd:
        root, configured_hosts = _runtime_config(cri)
        fs_path = image_fs or root or found.root_dir
        if fs_path is None:
            raise UsageError(
                "cannot tell which filesystem holds the runtime's images", option="--image-fs"
            )
        hosts = hosts_dir or configured_hosts or DEFAULT_HOSTS_DIR

        def measure() -> FilesystemUsage:
            return image_filesystem(fs_path)

        with RegistryClient(
            hosts_dir=hosts,
            docker_config=docker_config,
            read_timeout_seconds=options.stall_timeout_seconds,
            max_connections=max(8, options.connections * 2),
        ) as registry:
            puller = Puller(
                registry=registry,
                containerd=ctrd,
                cri=cri,
                filesystem=measure,
                options=options,
                emit=emit,
                free_space=gc_free_space(
                    cri, ctrd, fs_path, state_file=state_file, emit=emit, measure=measure
                ),
            )
            return puller.pull(image)


def register(app: typer.Typer) -> None:
    @app.command("pull")
    def pull_cmd(
        image: Annotated[
            str, typer.Argument(help="Image reference, e.g. nvcr.io/nvidia/pytorch:24.05-py3")
        ],
        runtime_endpoint: Annotated[
            str | None,
            typer.Option("--runtime-endpoint", help="containerd socket (default: discover)."),
        ] = None,
        hosts_dir: Annotated[
            Path | None,
            typer.Option(
                "--hosts-dir",
                help="containerd registry config_path with <host>/hosts.toml "
                "(default: what the running containerd uses, else /etc/containerd/certs.d).",
                file_okay=False,
            ),
        ] = None,
        docker_config: Annotated[
            Path | None,
            typer.Option(
                "--docker-config",
                help="docker config.json with registry credentials "
                "(default: $DOCKER_CONFIG/config.json or ~/.docker/config.json).",
                dir_okay=False,
            ),
        ] = None,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform",
                help="os/arch or os/arch/variant to pick from an index (default: this host).",
            ),
        ] = None,
        connections: Annotated[
            int,
            typer.Option(
                "--connections", help="Parallel downloads; ranges per big layer (default 4)."
            ),
        ] = 4,
        split_threshold: Annotated[
            str,
            typer.Option(
                "--split-threshold",
                help="Fetch a layer at least this big over several ranged connections.",
            ),
        ] = "64MiB",
        stall_timeout: Annotated[
            str,
            typer.Option(
                "--stall-timeout",
                help="Retry a connection that delivers no byte for this long (default 5m).",
            ),
        ] = "5m",
        retries: Annotated[
            int,
            typer.Option(
                "--retries",
                help="Retries in a row without a new byte before giving up (default 5).",
            ),
        ] = 5,
        reserve: Annotated[
            str | None,
            typer.Option(
                "--reserve",
                help="Space to leave free after the pull (default: 5% of the disk, at most 10GiB).",
            ),
        ] = None,
        unpack_factor: Annotated[
            float,
            typer.Option(
                "--unpack-factor", help="Unpacked size estimate per compressed byte (default 2.0)."
            ),
        ] = DEFAULT_UNPACK_FACTOR,
        no_gc: Annotated[
            bool,
            typer.Option(
                "--no-gc", help="If the image does not fit, refuse instead of running image GC."
            ),
        ] = False,
        state_file: Annotated[
            Path,
            typer.Option(
                "--state-file",
                help="mlnode's image first-seen/last-used record (for GC).",
                dir_okay=False,
            ),
        ] = DEFAULT_STATE_FILE,
        image_fs: Annotated[
            Path | None,
            typer.Option(
                "--image-fs",
                help="A directory on the image filesystem (default: containerd's root).",
            ),
        ] = None,
        output: OutputFormat = OutputOption,
    ) -> None:
        """Pull an image into containerd: resumable, with byte progress and a stall deadline."""
        json_mode = output is OutputFormat.JSON
        view = None if json_mode else _HumanView(Console(stderr=True, highlight=False))

        def body() -> None:
            try:
                plat = Platform.parse(platform) if platform else host_platform()
            except ValueError as e:
                raise UsageError(str(e), option="--platform") from e
            options = PullOptions(
                connections=connections,
                split_threshold_bytes=size_option(split_threshold, "--split-threshold"),
                stall_timeout_seconds=duration_option(
                    stall_timeout, "--stall-timeout", positive=True
                ),
                retries=retries,
                reserve_bytes=None if reserve is None else size_option(reserve, "--reserve"),
                gc=not no_gc,
                unpack_factor=unpack_factor,
                platform=plat,
            )
            emit: EventSink = _json_line if json_mode else view  # type: ignore[assignment]
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
                )
            except MlnodeError as e:
                if json_mode:
                    _json_line(
                        {
                            "event": "error",
                            "error": type(e).__name__,
                            "exit_code": e.exit_code,
                            "message": str(e),
                        }
                    )
                raise
            finally:
                if view is not None:
                    view.close()
            if not json_mode:
                if result.already_present:
                    stdout.print(
                        f"{result.reference} is already present ({result.image_id})", markup=False
                    )
                else:
                    rate = (
                        result.fetched_bytes / result.fetch_seconds if result.fetch_seconds else 0
                    )
                    stdout.print(
                        f"pulled {result.reference} ({result.image_id}) in "
                        f"{result.total_seconds:.1f}s: fetched "
                        f"{format_bytes(result.fetched_bytes)} "
                        f"in {result.fetch_seconds:.1f}s ({format_bytes(int(rate))}/s), "
                        f"unpacked in {result.unpack_seconds:.1f}s, {result.retries} retries",
                        markup=False,
                    )

        run(body)
