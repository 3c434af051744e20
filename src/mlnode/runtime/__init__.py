"""Typed clients for the container runtime: CRI (any runtime) and containerd's own API.

- :mod:`~mlnode.runtime.discovery`: which socket, which data directory;
- :mod:`~mlnode.runtime.cri`: :class:`CriClient` (images, containers, versions);
- :mod:`~mlnode.runtime.containerd`: :class:`ContainerdClient` (content store, leases,
  image records, download progress);
- :mod:`~mlnode.runtime.fs`: ``statvfs`` of the image filesystem;
- :mod:`~mlnode.runtime.errors`: gRPC failures → :mod:`mlnode.errors`.
"""

from __future__ import annotations

from mlnode.runtime.containerd import (
    DEFAULT_NAMESPACE,
    ContainerdClient,
    ContainerdImage,
    ContentInfo,
    ContentWriter,
    Descriptor,
    IngestStatus,
    Lease,
)
from mlnode.runtime.cri import (
    ContainerState,
    CriClient,
    CriContainer,
    CriImage,
    ImageFsUsage,
    PodSandbox,
    RegistryAuth,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
)
from mlnode.runtime.discovery import (
    RuntimeEndpoint,
    discover_runtime,
    parse_endpoint,
    runtime_root_dir,
)
from mlnode.runtime.errors import AlreadyExists, ContentNotFound
from mlnode.runtime.fs import FilesystemUsage, image_filesystem

__all__ = [
    "DEFAULT_NAMESPACE",
    "AlreadyExists",
    "ContainerState",
    "ContainerdClient",
    "ContainerdImage",
    "ContentInfo",
    "ContentNotFound",
    "ContentWriter",
    "CriClient",
    "CriContainer",
    "CriImage",
    "Descriptor",
    "FilesystemUsage",
    "ImageFsUsage",
    "IngestStatus",
    "Lease",
    "PodSandbox",
    "RegistryAuth",
    "RuntimeCondition",
    "RuntimeEndpoint",
    "RuntimeStatus",
    "RuntimeVersion",
    "discover_runtime",
    "image_filesystem",
    "parse_endpoint",
    "runtime_root_dir",
]
