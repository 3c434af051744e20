"""Find the container runtime's socket and the directory that holds its images.

Order: an explicit ``--runtime-endpoint`` (``unix:///path`` or a plain path) wins; otherwise
the first default socket that exists: containerd, then CRI-O, then cri-dockerd (the order
crictl uses). Every lookup goes through ``root`` so tests pass a temp dir and never read the
machine's own ``/run`` or ``/etc``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlnode.errors import RuntimeUnavailable, UsageError
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

DEFAULT_ROOT_DIRS: dict[RuntimeKind, PurePosixPath] = {
    RuntimeKind.CONTAINERD: PurePosixPath("/var/lib/containerd"),
    RuntimeKind.CRIO: PurePosixPath("/var/lib/containers/storage"),
    RuntimeKind.CRI_DOCKERD: PurePosixPath("/var/lib/docker"),
    RuntimeKind.DOCKER: PurePosixPath("/var/lib/docker"),
}


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
    """``path`` (absolute on the node) as seen from ``root``."""
    return (
        root.joinpath(*PurePosixPath(path).parts[1:]) if str(path).startswith("/") else root / path
    )


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError):
        # A config we cannot read is not our business here: fall back to the default.
        return {}


def _str_at(doc: dict[str, object], *keys: str) -> str | None:
    node: object = doc
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, str) and node else None


def runtime_root_dir(kind: RuntimeKind, *, root: Path = Path("/")) -> Path:
    """Where ``kind`` keeps images, from its config under ``root`` or the default.

    containerd: ``root`` in ``/etc/containerd/config.toml``. CRI-O: ``[crio] root`` in
    ``/etc/crio/crio.conf`` and its ``crio.conf.d/*.conf`` drop-ins (later files win), else
    ``[storage] graphroot`` in ``/etc/containers/storage.conf``. Docker: ``data-root`` is not
    read (JSON); the default is returned.
    """
    found: str | None = None
    if kind is RuntimeKind.CONTAINERD:
        found = _str_at(_read_toml(_under(root, "/etc/containerd/config.toml")), "root")
    elif kind is RuntimeKind.CRIO:
        files = [_under(root, "/etc/crio/crio.conf")]
        dropins = _under(root, "/etc/crio/crio.conf.d")
        if dropins.is_dir():
            files += sorted(dropins.glob("*.conf"))
        for f in files:
            found = _str_at(_read_toml(f), "crio", "root") or found
        if found is None:
            storage = _read_toml(_under(root, "/etc/containers/storage.conf"))
            found = _str_at(storage, "storage", "graphroot")
    return _under(root, found or DEFAULT_ROOT_DIRS[kind])


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
