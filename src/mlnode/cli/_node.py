"""What apply and rollback share about the node they act on: its root and its services."""

from __future__ import annotations

from pathlib import Path

from mlnode.errors import UsageError
from mlnode.ops.services import ServiceManager, SystemdServiceManager

__all__ = ["node_root", "service_options"]


def node_root(root: Path) -> Path:
    """``--root`` resolved; refused unless it is a directory."""
    resolved = root.resolve()
    if not resolved.is_dir():
        raise UsageError(f"{root} is not a directory", option="--root")
    return resolved


def service_options(
    root: Path, no_restart: bool, systemctl: str | None
) -> tuple[ServiceManager | None, str | None]:
    """The service manager to use, or None (files only) with the reason."""
    if no_restart:
        return None, "--no-restart: files written, nothing restarted"
    if systemctl is not None:
        return SystemdServiceManager(systemctl=systemctl), None
    if root == Path("/"):
        return SystemdServiceManager(), None
    return None, (
        f"--root {root} is not this host's /: nothing restarted "
        "(give --systemctl to manage the services of that root)"
    )
