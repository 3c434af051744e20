"""An in-memory CRI image service that "unpacks" only what the content store holds."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from mlnode.errors import ImageNotFound, RuntimeCallFailed
from mlnode.registry.reference import parse_reference
from mlnode.runtime.cri import (
    CriContainer,
    CriImage,
    RegistryAuth,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
)
from mlnode.testing._content import ENDPOINT, FakeContentStore
from mlnode.testing._registry import FakeRegistry

__all__ = ["FakeImageService"]


class FakeImageService:
    """:class:`mlnode.ports.ImageService` over a :class:`FakeContentStore`.

    ``pull_image`` registers the image the registry names, but only when every blob
    (manifest, config, layers) is in the content store already: a pull engine that
    left one out fails loudly instead of having the runtime fetch it. Calls are
    recorded in :attr:`pulls` and :attr:`removed`.
    """

    def __init__(
        self,
        content: FakeContentStore,
        registry: FakeRegistry,
        *,
        containers: Sequence[CriContainer] = (),
        sandbox_image: str | None = None,
    ) -> None:
        self.content = content
        self.registry = registry
        self.images: dict[str, CriImage] = {}
        self.containers = list(containers)
        self.sandbox_image = sandbox_image
        self.pulls: list[str] = []
        self.removed: list[str] = []
        self._lock = threading.Lock()

    def add_image(self, image: CriImage) -> None:
        with self._lock:
            self.images[image.id] = image

    def version(self) -> RuntimeVersion:
        return RuntimeVersion("0.1.0", "fake", "1.6.20-fake", "v1")

    def status(self, *, verbose: bool = False) -> RuntimeStatus:
        info: dict[str, str] = {}
        if verbose and self.sandbox_image:
            info["config"] = json.dumps({"sandboxImage": self.sandbox_image})
        return RuntimeStatus(
            (RuntimeCondition("RuntimeReady", True), RuntimeCondition("NetworkReady", True)),
            info,
        )

    def list_containers(self) -> list[CriContainer]:
        return list(self.containers)

    def list_images(self) -> list[CriImage]:
        with self._lock:
            return list(self.images.values())

    def image_status(self, ref: str) -> CriImage | None:
        with self._lock:
            return next((i for i in self.images.values() if ref == i.id or ref in i.names), None)

    def pull_image(
        self,
        ref: str,
        auth: RegistryAuth | None = None,
        timeout_seconds: float | None = None,
    ) -> str:
        self.pulls.append(ref)
        parsed = parse_reference(ref)
        try:
            manifest = self.registry.manifest(parsed)
        except ImageNotFound as e:
            raise ImageNotFound(f"PullImage: not found: {e}", endpoint=ENDPOINT) from e
        wanted = [manifest.digest, manifest.config.digest, *(d.digest for d in manifest.layers)]
        missing = [d for d in wanted if not self.content.has_content(d)]
        if missing:
            raise RuntimeCallFailed(
                f"PullImage: fake runtime would have to fetch {', '.join(missing)}",
                endpoint=ENDPOINT,
                code="FAILED_PRECONDITION",
            )
        image_id = manifest.config.digest
        with self._lock:
            old = self.images.get(image_id)
            tags = (*(old.repo_tags if old else ()), str(parsed))
            digests = (*(old.repo_digests if old else ()), f"{parsed.name}@{manifest.digest}")
            self.images[image_id] = CriImage(
                id=image_id,
                repo_tags=tuple(dict.fromkeys(tags)),
                repo_digests=tuple(dict.fromkeys(digests)),
                size_bytes=manifest.blobs_size,
                pinned=False,
            )
        return image_id

    def remove_image(self, ref: str) -> None:
        with self._lock:
            self.removed.append(ref)
            for key, image in list(self.images.items()):
                if ref == image.id or ref in image.names:
                    del self.images[key]
