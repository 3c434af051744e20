"""In-memory stand-ins for what image GC talks to: the CRI image service, containerd's
downloads in flight, and the image filesystem.

They are linked the way a node is: removing an image from :class:`FakeImageService`
frees its size on the :class:`FakeFilesystem` given to it. Build a node with
:func:`fake_image`, :meth:`FakeImageService.run_container` and
:meth:`FakePullStatuses.start_pull`, then hand the fakes to
:class:`mlnode.ops.gc_runtime.CriGcRuntime`::

    fs = FakeFilesystem(capacity_bytes=1000, available_bytes=50)
    cri = FakeImageService(images=[fake_image("repo/a:1", 100)], filesystem=fs)
    runtime = CriGcRuntime(cri, FakePullStatuses(), fs.path, measure=fs)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlnode.runtime.containerd import IngestStatus
from mlnode.runtime.cri import (
    ContainerState,
    CriContainer,
    CriImage,
    RuntimeCondition,
    RuntimeStatus,
    RuntimeVersion,
)
from mlnode.runtime.fs import FilesystemUsage

__all__ = [
    "FakeFilesystem",
    "FakeImageService",
    "FakePullStatuses",
    "fake_digest",
    "fake_image",
]


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
    """An :class:`~mlnode.ports.ImageService` holding images and containers in lists.

    ``remove_image`` takes an id, tag or digest reference like CRI, treats an unknown one
    as success (as containerd does), records the id in ``removed`` and frees the image's
    size on ``filesystem``. ``fail_remove`` maps an image id to the exception its removal
    raises. ``sandbox_image`` and ``root_dir`` show up in the verbose status, where
    containerd reports them.
    """

    images: list[CriImage] = field(default_factory=list)
    containers: list[CriContainer] = field(default_factory=list)
    filesystem: FakeFilesystem | None = None
    sandbox_image: str | None = None
    root_dir: Path | None = None
    runtime_name: str = "containerd"
    fail_remove: dict[str, Exception] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    closed: bool = False

    def list_images(self) -> list[CriImage]:
        self.calls.append("list_images")
        return list(self.images)

    def list_containers(self) -> list[CriContainer]:
        self.calls.append("list_containers")
        return list(self.containers)

    def remove_image(self, ref: str) -> None:
        self.calls.append("remove_image")
        image = self.find(ref)
        if image is None:
            return
        if image.id in self.fail_remove:
            raise self.fail_remove[image.id]
        self.images.remove(image)
        self.removed.append(image.id)
        if self.filesystem is not None:
            self.filesystem.free(image.size_bytes)

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

    def version(self) -> RuntimeVersion:
        self.calls.append("version")
        return RuntimeVersion("0.1.0", self.runtime_name, "1.6.20", "v1")

    def close(self) -> None:
        self.closed = True

    # --- building the node ---------------------------------------------------------

    def find(self, ref: str) -> CriImage | None:
        """The image with this id, tag or repo digest."""
        return next((i for i in self.images if ref == i.id or ref in i.names), None)

    def add_image(self, ref: str, size_bytes: int, *, pinned: bool = False) -> CriImage:
        image = fake_image(ref, size_bytes, pinned=pinned)
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


@dataclass
class FakePullStatuses:
    """A :class:`~mlnode.ops.gc_runtime.PullStatusSource`: downloads in flight, as
    containerd's Content service lists them."""

    statuses: list[IngestStatus] = field(default_factory=list)
    closed: bool = False

    def list_statuses(self) -> list[IngestStatus]:
        return list(self.statuses)

    def start_pull(self, image: CriImage) -> IngestStatus:
        """A download of ``image``'s manifest, named the way containerd's pulls name it."""
        digest = next((n.rpartition("@")[2] for n in image.repo_digests), image.id)
        status = IngestStatus(
            ref=f"manifest-{digest}",
            offset_bytes=0,
            total_bytes=image.size_bytes,
            started_at=None,
            updated_at=None,
        )
        self.statuses.append(status)
        return status

    def finish_pulls(self) -> None:
        self.statuses.clear()

    def close(self) -> None:
        self.closed = True


if TYPE_CHECKING:  # the fakes provide the ports they stand in for
    from mlnode.ops.gc_runtime import PullStatusSource
    from mlnode.ports import FilesystemMeter, ImageService

    _service: ImageService = FakeImageService()
    _pulls: PullStatusSource = FakePullStatuses()
    _meter: FilesystemMeter = FakeFilesystem(capacity_bytes=1, available_bytes=0)
