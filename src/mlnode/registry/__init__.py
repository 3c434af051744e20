"""An OCI distribution client: references, hosts.toml mirrors, auth, manifests, blobs.

- :mod:`~mlnode.registry.reference`: ``busybox`` → ``docker.io/library/busybox:latest``;
- :mod:`~mlnode.registry.hosts`: containerd's ``<certs.d>/<host>/hosts.toml``;
- :mod:`~mlnode.registry.auth`: ``WWW-Authenticate`` and docker ``config.json``;
- :mod:`~mlnode.registry.manifest`: OCI / Docker schema 2 manifests and indexes;
- :mod:`~mlnode.registry.client`: :class:`RegistryClient` (httpx).
"""

from __future__ import annotations

from mlnode.registry.auth import (
    Challenge,
    Credentials,
    credentials_for,
    load_docker_config,
    parse_www_authenticate,
)
from mlnode.registry.client import BlobStream, PullTarget, RegistryClient, Resolved
from mlnode.registry.hosts import RegistryHost, hosts_for, parse_hosts_toml
from mlnode.registry.manifest import (
    BlobDescriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    host_platform,
    parse_manifest,
    select_platform,
)
from mlnode.registry.reference import Reference, parse_reference

__all__ = [
    "BlobDescriptor",
    "BlobStream",
    "Challenge",
    "Credentials",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "PullTarget",
    "Reference",
    "RegistryClient",
    "RegistryHost",
    "Resolved",
    "credentials_for",
    "host_platform",
    "hosts_for",
    "load_docker_config",
    "parse_hosts_toml",
    "parse_manifest",
    "parse_reference",
    "parse_www_authenticate",
    "select_platform",
]
