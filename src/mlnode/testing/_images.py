"""An in-memory CRI image service, for the pull engine and for image GC.

For a pull it "unpacks" only what a :class:`FakeContentStore` holds (``content`` and
``registry`` given); for GC it holds images and containers in lists and frees an image's
size on a :class:`FakeFilesystem` when the image is removed, the way a node does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mlnode.errors import ImageNotFound, RuntimeCallFailed
from mlnode.registry.reference import parse_reference
from mlnode.runtime.cri import (
    ContainerState,
    CriContainer,
    CriImage,
    RegistryAuth,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
)
from mlnode.runtime.fs import FilesystemUsage
from mlnode.testing._content import ENDPOINT, FakeContentStore
from mlnode.testing._registry import FakeRegistry

__all__ = ["FakeFilesystem", "FakeImageService", "fake_digest", "fake_image"]


def fake_digest(text: str) -> str:
    """A stable ``sha256:…`` digest derived from ``text``."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def fake_image(ref: str, size_bytes: int, *, pinned: bool = False) -> CriImage:
    """An image tagged ``ref``; its id is the config digest, and it has one repo digest
    (``repo@sha256:…``, the manifest) as containerd lists them."""
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return CriImage(
        id=fake_digest("config " + ref),
        repo_tags=(ref,),
        repo_digests=(f"{repo}@{fake_digest('manifest ' + ref)}",),
        size_bytes=size_bytes,
        pinned=pinned,
    )


@dataclass
class FakeFilesystem:
    """A :class:`~mlnode.ports.FilesystemMeter`: fixed capacity, available bytes that grow
    as images are removed."""

    capacity_bytes: int
    available_bytes: int
    path: Path = Path("/fake/containerd")
    measured: int = 0

    def __call__(self) -> FilesystemUsage:
        self.measured += 1
        return FilesystemUsage(
            path=self.path,
            capacity_bytes=self.capacity_bytes,
            available_bytes=self.available_bytes,
            used_bytes=self.capacity_bytes - self.available_bytes,
        )

    def free(self, size_bytes: int) -> None:
        self.available_bytes = min(self.capacity_bytes, self.available_bytes + size_bytes)


@dataclass
class FakeImageService:
    """:class:`mlnode.ports.ImageService` in memory.

    ``pull_image`` registers the image ``registry`` names, but only when every blob
    (manifest, config, layers) is in ``content`` already: a pull engine that left one out
    fails loudly instead of having the runtime fetch it. ``remove_image`` takes an id, tag
    or digest like CRI, treats an unknown one as success (as containerd does), records the
    id in ``removed`` and frees the image's size on ``filesystem``; ``fail_remove`` maps an
    image id to the exception its removal raises. ``sandbox_image`` and ``root_dir`` show
    up in the verbose status, where containerd reports them. Every call is recorded in
    ``calls``; pulls also in ``pulls``.
    """

    content: FakeContentStore | None = None
    registry: FakeRegistry | None = None
    images: list[CriImage] = field(default_factory=list)
    containers: list[CriContainer] = field(default_factory=list)
    filesystem: FakeFilesystem | None = None
    sandbox_image: str | None = None
    root_dir: Path | None = None
    runtime_name: str = "containerd"
    fail_remove: dict[str, Exception] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    pulls: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # --- the port --------------------------------------------------------------------

    def version(self) -> RuntimeVersion:
        self.calls.append("version")
        return RuntimeVersion("0.1.0", self.runtime_name, "1.6.20", "v1")

    def status(self, *, verbose: bool = False) -> RuntimeStatus:
        self.calls.append("status")
        conditions = (
            RuntimeCondition("RuntimeReady", True),
            RuntimeCondition("NetworkReady", True),
        )
        if not verbose:
            return RuntimeStatus(conditions=conditions)
        config: dict[str, str] = {}
        if self.sandbox_image:
            config["sandboxImage"] = self.sandbox_image
        if self.root_dir is not None:
            config["containerdRootDir"] = str(self.root_dir)
        return RuntimeStatus(conditions=conditions, info={"config": json.dumps(config)})

    def list_containers(self) -> list[CriContainer]:
        self.calls.append("list_containers")
        return list(self.containers)

    def list_images(self) -> list[CriImage]:
        self.calls.append("list_images")
        with self._lock:
            return list(self.images)

    def image_status(self, ref: str) -> CriImage | None:
        self.calls.append("image_status")
        return self.find(ref)

    def pull_image(
        self,
        ref: str,
        auth: RegistryAuth | None = None,
        timeout_seconds: float | None = None,
    ) -> str:
        self.calls.append("pull_image")
        self.pulls.append(ref)
        if self.content is None or self.registry is None:
            raise RuntimeCallFailed(
                "PullImage: this fake has no content store and registry",
                endpoint=ENDPOINT,
                code="UNIMPLEMENTED",
            )
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
            old = next((i for i in self.images if i.id == image_id), None)
            tags = (*(old.repo_tags if old else ()), str(parsed))
            digests = (*(old.repo_digests if old else ()), f"{parsed.name}@{manifest.digest}")
            new = CriImage(
                id=image_id,
                repo_tags=tuple(dict.fromkeys(tags)),
                repo_digests=tuple(dict.fromkeys(digests)),
                size_bytes=manifest.blobs_size,
                pinned=False,
            )
            self.images = [i for i in self.images if i.id != image_id] + [new]
        return image_id

    def remove_image(self, ref: str) -> None:
        self.calls.append("remove_image")
        image = self.find(ref)
        if image is None:
            return
        if image.id in self.fail_remove:
            raise self.fail_remove[image.id]
        with self._lock:
            self.images.remove(image)
        self.removed.append(image.id)
        if self.filesystem is not None:
            self.filesystem.free(image.size_bytes)

    def close(self) -> None:
        self.closed = True

    # --- building the node -----------------------------------------------------------

    def find(self, ref: str) -> CriImage | None:
        """The image with this id, tag or repo digest."""
        with self._lock:
            return next((i for i in self.images if ref == i.id or ref in i.names), None)

    def add_image(self, ref: str, size_bytes: int, *, pinned: bool = False) -> CriImage:
        image = fake_image(ref, size_bytes, pinned=pinned)
        with self._lock:
            self.images.append(image)
        return image

    def run_container(
        self, image: CriImage, *, state: ContainerState = ContainerState.RUNNING
    ) -> CriContainer:
        """A container created from ``image`` by its first tag, as the kubelet does."""
        n = len(self.containers)
        container = CriContainer(
            id=f"container-{n}",
            pod_sandbox_id=f"sandbox-{n}",
            name=f"c{n}",
            image=image.names[0] if image.names else image.id,
            image_ref=image.id,
            image_id=image.id,
            state=state,
            created_at_ns=n,
        )
        self.containers.append(container)
        return container
