"""A typed, synchronous client for the CRI ``runtime.v1`` RuntimeService and ImageService.

Results are frozen dataclasses; failures are :mod:`mlnode.errors` runtime exceptions
(see :mod:`mlnode.runtime.errors`). Timeouts follow the kubelet: every call but
``pull_image`` gets ``call_timeout_seconds`` (the kubelet's ``runtimeRequestTimeout``,
2 min); ``pull_image`` waits as long as the runtime takes unless given a timeout.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mlnode.runtime._grpc import Connection
from mlnode.runtime._proto import cri_runtime_v1_pb2 as pb

__all__ = [
    "ContainerState",
    "CriClient",
    "CriContainer",
    "CriImage",
    "ImageFsUsage",
    "PodSandbox",
    "RegistryAuth",
    "RuntimeCondition",
    "RuntimeStatus",
    "RuntimeVersion",
]

_RUNTIME = "/runtime.v1.RuntimeService/"
_IMAGE = "/runtime.v1.ImageService/"
CRI_API_VERSION = "v1"


@dataclass(frozen=True)
class RuntimeVersion:
    version: str
    runtime_name: str
    runtime_version: str
    runtime_api_version: str


@dataclass(frozen=True)
class RuntimeCondition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class RuntimeStatus:
    conditions: tuple[RuntimeCondition, ...]
    info: Mapping[str, str] = field(default_factory=dict)

    def condition(self, type_: str) -> RuntimeCondition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def runtime_ready(self) -> bool:
        c = self.condition("RuntimeReady")
        return c is not None and c.status

    def containerd_root_dir(self) -> Path | None:
        """containerd's root dir from a verbose status (``info["config"]``), if it says."""
        raw = self.info.get("config")
        if not raw:
            return None
        try:
            config = json.loads(raw)
        except ValueError:
            return None
        root = config.get("containerdRootDir") if isinstance(config, dict) else None
        return Path(root) if isinstance(root, str) and root else None


@dataclass(frozen=True)
class CriImage:
    """One image as the kubelet sees it; ``size_bytes`` is what the runtime reports
    (containerd: the compressed size)."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size_bytes: int
    pinned: bool

    @property
    def names(self) -> tuple[str, ...]:
        return self.repo_tags + self.repo_digests


@dataclass(frozen=True)
class ImageFsUsage:
    """One entry of CRI ``ImageFsInfo``. containerd counts only its snapshotter dir here."""

    mountpoint: str
    used_bytes: int | None
    inodes_used: int | None
    timestamp_ns: int


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


_CONTAINER_STATES = {
    pb.CONTAINER_CREATED: ContainerState.CREATED,
    pb.CONTAINER_RUNNING: ContainerState.RUNNING,
    pb.CONTAINER_EXITED: ContainerState.EXITED,
    pb.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}


@dataclass(frozen=True)
class CriContainer:
    """A container in any state. ``image_ref`` is what the runtime resolved the image to
    (containerd: the image id); ``image`` is the name it was created with."""

    id: str
    pod_sandbox_id: str
    name: str
    image: str
    image_ref: str
    image_id: str | None
    state: ContainerState
    created_at_ns: int

    def image_keys(self) -> frozenset[str]:
        """Every string by which this container refers to its image."""
        return frozenset(k for k in (self.image, self.image_ref, self.image_id) if k)


@dataclass(frozen=True)
class PodSandbox:
    id: str
    name: str
    namespace: str
    uid: str
    ready: bool
    created_at_ns: int


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials passed through CRI ``PullImage``; ``repr`` hides the secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    auth: str = field(default="", repr=False)
    server_address: str = ""
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)


def _image(msg: pb.Image) -> CriImage:
    return CriImage(
        id=msg.id,
        repo_tags=tuple(msg.repo_tags),
        repo_digests=tuple(msg.repo_digests),
        size_bytes=int(msg.size),
        pinned=bool(msg.pinned),
    )


class CriClient:
    """CRI over a unix socket. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        endpoint: str | Path,
        *,
        connect_timeout_seconds: float = 2.0,
        call_timeout_seconds: float = 120.0,
    ) -> None:
        self._conn = Connection(
            endpoint,
            connect_timeout_seconds=connect_timeout_seconds,
            call_timeout_seconds=call_timeout_seconds,
        )
        self.endpoint = self._conn.endpoint

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # RuntimeService

    def version(self) -> RuntimeVersion:
        r = self._conn.unary(
            _RUNTIME + "Version", pb.VersionRequest(version=CRI_API_VERSION), pb.VersionResponse
        )
        return RuntimeVersion(r.version, r.runtime_name, r.runtime_version, r.runtime_api_version)

    def status(self, *, verbose: bool = False) -> RuntimeStatus:
        r = self._conn.unary(
            _RUNTIME + "Status", pb.StatusRequest(verbose=verbose), pb.StatusResponse
        )
        return RuntimeStatus(
            conditions=tuple(
                RuntimeCondition(c.type, c.status, c.reason, c.message) for c in r.status.conditions
            ),
            info=dict(r.info),
        )

    def list_containers(self) -> list[CriContainer]:
        """Every container the runtime knows, whatever its state (like GetPods(all=true))."""
        r = self._conn.unary(
            _RUNTIME + "ListContainers", pb.ListContainersRequest(), pb.ListContainersResponse
        )
        return [
            CriContainer(
                id=c.id,
                pod_sandbox_id=c.pod_sandbox_id,
                name=c.metadata.name,
                image=c.image.image,
                image_ref=c.image_ref,
                image_id=c.image_id or None,
                state=_CONTAINER_STATES.get(c.state, ContainerState.UNKNOWN),
                created_at_ns=c.created_at,
            )
            for c in r.containers
        ]

    def list_pod_sandboxes(self) -> list[PodSandbox]:
        r = self._conn.unary(
            _RUNTIME + "ListPodSandbox", pb.ListPodSandboxRequest(), pb.ListPodSandboxResponse
        )
        return [
            PodSandbox(
                id=s.id,
                name=s.metadata.name,
                namespace=s.metadata.namespace,
                uid=s.metadata.uid,
                ready=s.state == pb.SANDBOX_READY,
                created_at_ns=s.created_at,
            )
            for s in r.items
        ]

    # ImageService

    def list_images(self) -> list[CriImage]:
        r = self._conn.unary(_IMAGE + "ListImages", pb.ListImagesRequest(), pb.ListImagesResponse)
        return [_image(i) for i in r.images]

    def image_status(self, ref: str) -> CriImage | None:
        """The image ``ref`` (name, digest reference or id), or None if the runtime lacks it."""
        r = self._conn.unary(
            _IMAGE + "ImageStatus",
            pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)),
            pb.ImageStatusResponse,
        )
        return _image(r.image) if r.HasField("image") and r.image.id else None

    def pull_image(
        self,
        ref: str,
        auth: RegistryAuth | None = None,
        timeout_seconds: float | None = None,
    ) -> str:
        """Pull ``ref``; returns the image reference the runtime reports (containerd: the id).

        A missing image raises ImageNotFound; ``timeout_seconds`` None waits as long as
        the runtime takes, as the kubelet does.
        """
        request = pb.PullImageRequest(image=pb.ImageSpec(image=ref))
        if auth is not None:
            request.auth.CopyFrom(
                pb.AuthConfig(
                    username=auth.username,
                    password=auth.password,
                    auth=auth.auth,
                    server_address=auth.server_address,
                    identity_token=auth.identity_token,
                    registry_token=auth.registry_token,
                )
            )
        r = self._conn.unary(
            _IMAGE + "PullImage", request, pb.PullImageResponse, timeout_seconds=timeout_seconds
        )
        return r.image_ref

    def remove_image(self, ref: str) -> None:
        """Remove ``ref``; the runtime treats a missing image as success (idempotent)."""
        self._conn.unary(
            _IMAGE + "RemoveImage",
            pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)),
            pb.RemoveImageResponse,
        )

    def image_fs_info(self) -> list[ImageFsUsage]:
        r = self._conn.unary(
            _IMAGE + "ImageFsInfo", pb.ImageFsInfoRequest(), pb.ImageFsInfoResponse
        )
        return [
            ImageFsUsage(
                mountpoint=f.fs_id.mountpoint,
                used_bytes=f.used_bytes.value if f.HasField("used_bytes") else None,
                inodes_used=f.inodes_used.value if f.HasField("inodes_used") else None,
                timestamp_ns=f.timestamp,
            )
            for f in r.image_filesystems
        ]
