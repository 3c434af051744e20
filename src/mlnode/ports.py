"""Small interfaces (``typing.Protocol``) for the external systems mlnode talks to.

Ops code takes these instead of the concrete gRPC clients, so the same logic runs
against the real runtime and against the in-memory fakes in :mod:`mlnode.testing`.
The concrete implementations live in :mod:`mlnode.runtime`; the value types they return
are imported here only for type checking, so importing this module loads no gRPC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlnode.runtime.cri import CriContainer, CriImage, RuntimeStatus, RuntimeVersion
    from mlnode.runtime.fs import FilesystemUsage

__all__ = ["FilesystemMeter", "ImageService"]


class ImageService(Protocol):
    """The CRI calls image GC makes: :class:`mlnode.runtime.cri.CriClient` provides them."""

    def list_images(self) -> list[CriImage]:
        """Every image, with its size and pinned flag."""
        ...

    def list_containers(self) -> list[CriContainer]:
        """Every container, whatever its state (like the kubelet's GetPods(all=true))."""
        ...

    def remove_image(self, ref: str) -> None:
        """Remove ``ref``; a missing image is success."""
        ...

    def status(self, *, verbose: bool = False) -> RuntimeStatus:
        """Runtime conditions; ``verbose`` adds the runtime's own info (its config)."""
        ...

    def version(self) -> RuntimeVersion:
        """The runtime's name and version."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class FilesystemMeter(Protocol):
    """Measures the filesystem holding the images, e.g.
    ``lambda: mlnode.runtime.fs.image_filesystem(root)``."""

    def __call__(self) -> FilesystemUsage: ...
