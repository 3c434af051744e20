"""Image manifests and indexes (OCI and Docker schema 2), and choosing a platform.

Docker schema 1 (``application/vnd.docker.distribution.manifest.v1+…``) is refused:
registries have not served it by default for years and containerd 1.6 converts it
on the fly, which mlnode does not do.
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlnode.errors import InvalidValue, RegistryError

__all__ = [
    "ACCEPT_MANIFESTS",
    "BlobDescriptor",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "host_platform",
    "parse_manifest",
    "select_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Layer media types that are stored compressed (the unpacked size is larger).
_UNCOMPRESSED_LAYERS = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
    }
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidValue(f"{text!r} is not os/arch[/variant] (e.g. linux/amd64)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


_MACHINE_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
}


def host_platform() -> Platform:
    """The platform of this machine, as containerd names it (``linux/amd64``)."""
    arch, variant = _MACHINE_ARCH.get(_platform.machine().lower(), (_platform.machine(), ""))
    return Platform("linux", arch, variant)


@dataclass(frozen=True)
class BlobDescriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def compressed(self) -> bool:
        """True unless the media type says the layer is a plain tar."""
        return self.media_type not in _UNCOMPRESSED_LAYERS


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    config: BlobDescriptor
    layers: tuple[BlobDescriptor, ...]

    @property
    def blobs_size(self) -> int:
        """Config + layers: the bytes a pull downloads besides the manifest itself."""
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    manifests: tuple[BlobDescriptor, ...]


def _descriptor(obj: object, where: str, url: str) -> BlobDescriptor:
    if not isinstance(obj, dict):
        raise RegistryError(f"{where}: not a descriptor object", url=url)
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str) or ":" not in digest:
        raise RegistryError(f"{where}: missing or invalid digest", url=url)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RegistryError(f"{where}: missing or invalid size", url=url)
    plat = obj.get("platform")
    parsed_platform = None
    if isinstance(plat, dict):
        parsed_platform = Platform(
            str(plat.get("os", "")), str(plat.get("architecture", "")), str(plat.get("variant", ""))
        )
    ann = obj.get("annotations")
    return BlobDescriptor(
        media_type=str(media_type),
        digest=digest,
        size=size,
        platform=parsed_platform,
        annotations={str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {},
    )


def parse_manifest(
    raw: bytes, *, media_type: str, digest: str, url: str
) -> ImageManifest | ImageIndex:
    """Parse a manifest or index; the body's ``mediaType`` wins over the header's."""
    if media_type in _SCHEMA1:
        raise RegistryError("Docker schema 1 manifests are not supported", url=url)
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise RegistryError(f"manifest is not JSON: {e}", url=url) from e
    if not isinstance(doc, dict):
        raise RegistryError("manifest is not a JSON object", url=url)
    kind = str(doc.get("mediaType") or media_type or "")
    if doc.get("schemaVersion") == 1 or kind in _SCHEMA1:
        raise RegistryError("Docker schema 1 manifests are not supported", url=url)
    if kind in INDEX_TYPES or (not kind and "manifests" in doc):
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise RegistryError("index has no manifests list", url=url)
        return ImageIndex(
            media_type=kind or OCI_INDEX,
            digest=digest,
            raw=raw,
            manifests=tuple(_descriptor(m, f"manifests[{i}]", url) for i, m in enumerate(items)),
        )
    if kind in MANIFEST_TYPES or (not kind and "config" in doc):
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise RegistryError("manifest has no layers list", url=url)
        return ImageManifest(
            media_type=kind or OCI_MANIFEST,
            digest=digest,
            raw=raw,
            config=_descriptor(doc.get("config"), "config", url),
            layers=tuple(_descriptor(x, f"layers[{i}]", url) for i, x in enumerate(layers)),
        )
    raise RegistryError(f"unsupported manifest media type {kind or '(none)'!r}", url=url)


def select_platform(index: ImageIndex, want: Platform) -> BlobDescriptor:
    """The index entry for ``want``: exact os/arch/variant, then os/arch with any variant
    (``arm64`` and ``arm64/v8`` are the same), never an attestation (``unknown/unknown``)."""
    candidates = [
        m
        for m in index.manifests
        if m.platform is not None
        and m.platform.os == want.os
        and m.platform.architecture == want.architecture
    ]
    for m in candidates:
        assert m.platform is not None
        if m.platform.variant == want.variant:
            return m
    if candidates:
        return candidates[0]
    offered = ", ".join(sorted({str(m.platform) for m in index.manifests if m.platform})) or "none"
    raise RegistryError(f"no manifest for platform {want} in the index (offers: {offered})")
