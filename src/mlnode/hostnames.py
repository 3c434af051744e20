"""Host names as containerd, CRI-O and the mirror see them: one loopback rule."""

from __future__ import annotations

import ipaddress

__all__ = ["DOCKER_HUB", "DOCKER_HUB_API", "default_registry_url", "is_loopback_host"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses, with or without a port
    (``127.0.0.1:5000``, ``[::1]:5000``, ``::1``)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_registry_url(namespace: str) -> str:
    """The URL containerd uses for ``namespace`` when nothing is configured: https, http
    for loopback hosts (containerd's default for local registries), and
    ``https://registry-1.docker.io`` for docker.io."""
    if namespace == DOCKER_HUB:
        return f"https://{DOCKER_HUB_API}"
    return f"{'http' if is_loopback_host(namespace) else 'https'}://{namespace}"
