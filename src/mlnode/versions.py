"""Version values for the kubelet and the container runtimes, parsed once at the boundary."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mlnode.errors import VersionError

__all__ = [
    "KUBERNETES_KNOWN",
    "RUNTIME_KNOWN",
    "RuntimeKind",
    "RuntimeSpec",
    "Version",
    "parse_kubernetes_version",
    "parse_runtime",
]

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")


@dataclass(frozen=True, order=True)
class Version:
    """A release number; ``patch`` is None when only X.Y was given."""

    major: int
    minor: int
    patch: int | None = None

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise VersionError(f"{text!r} is not a version (expected X.Y or X.Y.Z)")
        patch = int(m.group(3)) if m.group(3) is not None else None
        return cls(int(m.group(1)), int(m.group(2)), patch)

    @property
    def minor_line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def key(self) -> tuple[int, int, int]:
        """Sort key; an X.Y without patch compares as X.Y.0."""
        return (self.major, self.minor, self.patch or 0)

    def at_least(self, other: Version) -> bool:
        return self.key() >= other.key()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}"
        return base if self.patch is None else f"{base}.{self.patch}"


class RuntimeKind(enum.StrEnum):
    CONTAINERD = "containerd"
    CRIO = "crio"
    CRI_DOCKERD = "cri-dockerd"
    DOCKER = "docker"  # dockershim, built into the kubelet up to 1.23


# Version lines mlnode has facts for (kubelet-facts.md); anything else is refused rather
# than guessed, because a wrong guess writes a config the node rejects.
KUBERNETES_KNOWN = (Version(1, 20), Version(1, 35))
RUNTIME_KNOWN: dict[RuntimeKind, tuple[Version, Version] | None] = {
    RuntimeKind.CONTAINERD: (Version(1, 6), Version(2, 3)),
    RuntimeKind.CRIO: (Version(1, 20), Version(1, 36)),
    RuntimeKind.CRI_DOCKERD: (Version(0, 2), Version(0, 4)),
    RuntimeKind.DOCKER: None,
}


def parse_kubernetes_version(text: str, *, option: str = "--kubernetes-version") -> Version:
    try:
        v = Version.parse(text)
    except VersionError as e:
        raise VersionError(str(e), option=option) from e
    lo, hi = KUBERNETES_KNOWN
    if not (lo.minor_line <= v.minor_line <= hi.minor_line):
        raise VersionError(
            f"Kubernetes {v} is outside the versions mlnode knows ({lo}–{hi})", option=option
        )
    return v


@dataclass(frozen=True)
class RuntimeSpec:
    """A container runtime and, except for dockershim, its version."""

    kind: RuntimeKind
    version: Version | None = None

    def __str__(self) -> str:
        return self.kind.value if self.version is None else f"{self.kind.value}@{self.version}"


def parse_runtime(text: str, *, option: str = "--runtime") -> RuntimeSpec:
    """Parse ``containerd@1.7.13``, ``crio@1.30.11``, ``cri-dockerd@0.3.9`` or ``docker``."""
    name, sep, ver = text.strip().partition("@")
    aliases = {"cri-o": "crio", "dockershim": "docker"}
    name = aliases.get(name.lower(), name.lower())
    try:
        kind = RuntimeKind(name)
    except ValueError:
        raise VersionError(
            f"unknown runtime {text!r}; expected containerd@X.Y.Z, crio@X.Y.Z, "
            "cri-dockerd@X.Y.Z or docker",
            option=option,
        ) from None
    known = RUNTIME_KNOWN[kind]
    if known is None:
        if sep:
            raise VersionError(
                f"{kind.value} takes no version (it is the kubelet's dockershim)", option=option
            )
        return RuntimeSpec(kind)
    if not sep or not ver:
        raise VersionError(
            f"{kind.value} needs a version, e.g. {kind.value}@{known[1]}.0", option=option
        )
    try:
        v = Version.parse(ver)
    except VersionError as e:
        raise VersionError(str(e), option=option) from e
    if not (known[0].minor_line <= v.minor_line <= known[1].minor_line):
        raise VersionError(
            f"{kind.value} {v} is outside the versions mlnode knows ({known[0]}–{known[1]})",
            option=option,
        )
    return RuntimeSpec(kind, v)
