"""Image references, normalised the way docker and containerd normalise them.

``busybox`` → ``docker.io/library/busybox:latest``; ``ghcr.io/org/img@sha256:…`` keeps its
digest; ``127.0.0.1:5000/app:1`` keeps its registry. The first path component is a
registry if it contains ``.`` or ``:`` or is ``localhost``; otherwise the image is on
Docker Hub, whose API lives at ``registry-1.docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlnode.errors import UsageError
from mlnode.hostnames import DOCKER_HUB, DOCKER_HUB_API

__all__ = ["DOCKER_HUB", "DOCKER_HUB_API", "Reference", "parse_reference"]

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::\d+)?$")


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference; ``tag`` is None only when ``digest`` is set."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def object(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raises UsageError naming what is wrong."""
    raw = text.strip()
    if not raw:
        raise UsageError("empty image reference", option="IMAGE")
    rest, _, digest = raw.partition("@")
    if digest and not _DIGEST.match(digest):
        raise UsageError(f"invalid digest {digest!r} in {raw!r}", option="IMAGE")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
        if not _HOST.match(registry):
            raise UsageError(f"invalid registry host {registry!r} in {raw!r}", option="IMAGE")
    else:
        registry, path = DOCKER_HUB, rest
    if registry.lower() in _HUB_ALIASES:
        registry = DOCKER_HUB
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG.match(tag):
            raise UsageError(f"invalid tag {tag!r} in {raw!r}", option="IMAGE")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        hint = " (repository names are lower case)" if path != path.lower() else ""
        raise UsageError(f"invalid repository {path!r} in {raw!r}{hint}", option="IMAGE")
    if tag is None and not digest:
        tag = "latest"
    return Reference(registry, path, tag, digest or None)
