"""Find the container runtime's socket and the directory that holds its images.

Order: an explicit ``--runtime-endpoint`` (``unix:///path`` or a plain path) wins; otherwise
the first default socket that exists: containerd, then CRI-O, then cri-dockerd (the order
crictl uses). Every lookup goes through ``root`` so tests pass a temp dir and never read the
machine's own ``/run`` or ``/etc``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlnode.errors import RuntimeUnavailable, UsageError
from mlnode.formats.node_paths import RUNTIME_DATA_DIRS
from mlnode.node import runtime_data_dir
from mlnode.rootpath import read_path
from mlnode.versions import RuntimeKind

__all__ = [
    "DEFAULT_ROOT_DIRS",
    "DEFAULT_SOCKETS",
    "RuntimeEndpoint",
    "discover_runtime",
    "guess_kind",
    "parse_endpoint",
    "runtime_root_dir",
]

DEFAULT_SOCKETS: tuple[tuple[RuntimeKind, PurePosixPath], ...] = (
    (RuntimeKind.CONTAINERD, PurePosixPath("/run/containerd/containerd.sock")),
    (RuntimeKind.CRIO, PurePosixPath("/var/run/crio/crio.sock")),
    (RuntimeKind.CRI_DOCKERD, PurePosixPath("/var/run/cri-dockerd.sock")),
)

DEFAULT_ROOT_DIRS = RUNTIME_DATA_DIRS


@dataclass(frozen=True)
class RuntimeEndpoint:
    """A runtime socket and where that runtime keeps its data.

    ``kind`` is None when an explicit socket's name says nothing about the runtime; then
    ``root_dir`` is None too and the caller asks the runtime (CRI ``Version``/``Status``).
    """

    socket_path: Path
    kind: RuntimeKind | None
    root_dir: Path | None

    @property
    def uri(self) -> str:
        return f"unix://{self.socket_path}"


def parse_endpoint(text: str, *, option: str = "--runtime-endpoint") -> Path:
    """``unix:///run/x.sock``, ``unix:/run/x.sock`` or ``/run/x.sock`` → the socket path."""
    value = text.strip()
    if not value:
        raise UsageError("empty endpoint", option=option)
    if value.startswith("unix://"):
        value = value[len("unix://") :]
    elif value.startswith("unix:"):
        value = value[len("unix:") :]
    elif "://" in value:
        scheme = value.split("://", 1)[0]
        raise UsageError(
            f"{scheme}:// endpoints are not supported; use a unix socket", option=option
        )
    if not value:
        raise UsageError(f"no socket path in {text!r}", option=option)
    return Path(value).absolute()


def guess_kind(socket_path: Path | str) -> RuntimeKind | None:
    """Tell the runtime from a socket's name, as far as the name says anything."""
    name = str(socket_path).lower()
    if "cri-dockerd" in name or "dockershim" in name:
        return RuntimeKind.CRI_DOCKERD
    if "containerd" in name:
        return RuntimeKind.CONTAINERD
    if "crio" in name or "cri-o" in name:
        return RuntimeKind.CRIO
    return None


def _under(root: Path, path: PurePosixPath | str) -> Path:
    """``path`` (absolute on the node) as seen from ``root``, symlinks resolved inside it."""
    return read_path(root, posixpath.join("/", str(path)))


def runtime_root_dir(kind: RuntimeKind, *, root: Path = Path("/")) -> Path:
    """Where ``kind`` keeps images, from its config under ``root`` or the default
    (:func:`mlnode.node.runtime_data_dir` says how)."""
    return _under(root, runtime_data_dir(kind, root)[0])


def discover_runtime(explicit: str | None = None, *, root: Path = Path("/")) -> RuntimeEndpoint:
    """The endpoint to talk to; raises RuntimeUnavailable naming every socket tried."""
    if explicit:
        path = parse_endpoint(explicit)
        kind = guess_kind(path)
        return RuntimeEndpoint(
            socket_path=path,
            kind=kind,
            root_dir=runtime_root_dir(kind, root=root) if kind else None,
        )
    tried: list[str] = []
    for kind, default in DEFAULT_SOCKETS:
        candidate = _under(root, default)
        tried.append(str(candidate))
        if candidate.exists():
            return RuntimeEndpoint(candidate, kind, runtime_root_dir(kind, root=root))
    raise RuntimeUnavailable(
        f"no runtime socket found (tried {', '.join(tried)}); pass --runtime-endpoint"
    )
