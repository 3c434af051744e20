"""What the node mirror needs from the runtime, built from a live containerd: "has
containerd committed this digest?" (so the mirror drops its copy) and a SpaceKeeper (room on
the image filesystem before a fetch, the ml GC freeing the mirror cache first).

The mirror (:mod:`mlnode.mirror`) does not import ops; the CLI builds these here and hands
them over as plain callables / a port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlnode.errors import MlnodeError
from mlnode.ops.pull_session import runtime_config
from mlnode.ops.space import ImageFsSpaceKeeper, live_space_keeper
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.discovery import discover_runtime

__all__ = ["MirrorHooks", "open_mirror_hooks"]

log = logging.getLogger("mlnode.mirror")


@dataclass(frozen=True)
class MirrorHooks:
    committed: Callable[[str], bool] | None
    space: ImageFsSpaceKeeper | None
    close: Callable[[], None]


def open_mirror_hooks(
    runtime_endpoint: str | None,
    *,
    cache_dir: Path,
    state_file: Path | None,
    gc: bool,
    image_fs: Path | None = None,
) -> MirrorHooks:
    """Hooks over the runtime at ``runtime_endpoint`` (discovered when None). Without a
    runtime (none found, not named) the mirror runs without them and says so; a runtime
    named but unreachable is an error (exit 3)."""
    try:
        found = discover_runtime(runtime_endpoint)
        cri = CriClient(found.socket_path)
    except MlnodeError:
        if runtime_endpoint is not None:
            raise
        log.warning(
            "no container runtime found: no free-space check before fetches, and cached "
            "blobs stay until the cache bound drops them"
        )
        return MirrorHooks(None, None, lambda: None)
    ctrd = ContainerdClient(found.socket_path)
    root, _ = runtime_config(cri)
    fs_path = image_fs or root or found.root_dir
    space = None
    if fs_path is not None:
        space = live_space_keeper(
            cri, ctrd, fs_path, cache_dir=cache_dir, state_file=state_file, gc=gc
        )
    else:
        log.warning("cannot tell which filesystem holds the images: no free-space check")

    def close() -> None:
        cri.close()
        ctrd.close()

    return MirrorHooks(ctrd.has_content, space, close)
