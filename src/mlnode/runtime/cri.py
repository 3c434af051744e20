"""A typed, synchronous client for the CRI ``runtime.v1`` RuntimeService and ImageService.

Besides what mlnode reads (version, status, containers, sandboxes, images), it can run a
pod sandbox and a container in it, and stop and remove them (what the kubelet does to
start a pod); the tests use that to put images in use on a real runtime.

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

from mlnode._closing import Closing
from mlnode.runtime._grpc import Connection
from mlnode.runtime._proto import cri_runtime_v1_pb2 as pb
from mlnode.runtime.errors import ContainerNotFound

__all__ = [
    "ContainerConfig",
    "ContainerState",
    "CriClient",
    "CriContainer",
    "CriImage",
    "ImageFsUsage",
    "PodSandbox",
    "PodSandboxConfig",
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

    def _config(self) -> dict[str, object]:
        raw = self.info.get("config")
        if not raw:
            return {}
        try:
            config = json.loads(raw)
        except ValueError:
            return {}
        return config if isinstance(config, dict) else {}

    def containerd_root_dir(self) -> Path | None:
        """containerd's root dir from a verbose status (``info["config"]``), if it says."""
        root = self._config().get("containerdRootDir")
        return Path(root) if isinstance(root, str) and root else None

    def sandbox_image(self) -> str | None:
        """The pod sandbox (pause) image from a verbose status: containerd 1.x reports
        ``sandboxImage``, 2.x ``pinnedImages.sandbox``."""
        config = self._config()
        image = config.get("sandboxImage")
        pinned = config.get("pinnedImages")
        if not image and isinstance(pinned, dict):
            image = pinned.get("sandbox")
        return image if isinstance(image, str) and image else None


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


@dataclass(frozen=True)
class PodSandboxConfig:
    """What CRI ``RunPodSandbox`` needs (a subset of upstream's ``PodSandboxConfig``).

    ``host_network`` puts the sandbox in the node's network namespace, as a
    ``hostNetwork: true`` pod: no CNI plugin is needed then.
    """

    name: str
    namespace: str
    uid: str
    attempt: int = 0
    host_network: bool = False
    hostname: str = ""
    log_directory: str = ""
    cgroup_parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def namespace_options(self) -> pb.NamespaceOption:
        # The kubelet's choice for a v1 pod: PID per container, network/IPC per pod or node.
        return pb.NamespaceOption(
            network=pb.NODE if self.host_network else pb.POD,
            pid=pb.CONTAINER,
            ipc=pb.POD,
        )

    def to_proto(self) -> pb.PodSandboxConfig:
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=self.name, uid=self.uid, namespace=self.namespace, attempt=self.attempt
            ),
            hostname=self.hostname,
            log_directory=self.log_directory,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self.namespace_options()
                ),
            ),
        )


@dataclass(frozen=True)
class ContainerConfig:
    """What CRI ``CreateContainer`` needs (a subset of upstream's ``ContainerConfig``).

    ``image`` is what the kubelet passes: normally the image id returned by PullImage,
    but a tag or digest reference works with containerd too. ``command`` replaces the
    image's entrypoint and ``args`` its cmd, as in a pod spec.
    """

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    envs: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 0
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_proto(self, sandbox: PodSandboxConfig) -> pb.ContainerConfig:
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=self.name, attempt=self.attempt),
            image=pb.ImageSpec(image=self.image),
            command=list(self.command),
            args=list(self.args),
            working_dir=self.working_dir,
            envs=[pb.KeyValue(key=k, value=v) for k, v in self.envs.items()],
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            log_path=self.log_path,
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=sandbox.namespace_options()
                )
            ),
        )


def _image(msg: pb.Image) -> CriImage:
    return CriImage(
        id=msg.id,
        repo_tags=tuple(msg.repo_tags),
        repo_digests=tuple(msg.repo_digests),
        size_bytes=int(msg.size),
        pinned=bool(msg.pinned),
    )


class CriClient(Closing):
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

    def run_pod_sandbox(self, config: PodSandboxConfig, *, runtime_handler: str = "") -> str:
        """Create and start a pod sandbox; returns its id. containerd pulls its sandbox
        (pause) image first if it lacks it."""
        r = self._conn.unary(
            _RUNTIME + "RunPodSandbox",
            pb.RunPodSandboxRequest(config=config.to_proto(), runtime_handler=runtime_handler),
            pb.RunPodSandboxResponse,
            not_found=ContainerNotFound,
        )
        return r.pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox and kill its containers (idempotent)."""
        self._conn.unary(
            _RUNTIME + "StopPodSandbox",
            pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
            pb.StopPodSandboxResponse,
            not_found=ContainerNotFound,
        )

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and its containers (idempotent)."""
        self._conn.unary(
            _RUNTIME + "RemovePodSandbox",
            pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
            pb.RemovePodSandboxResponse,
            not_found=ContainerNotFound,
        )

    def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        """Create a container in ``sandbox_id``; returns its id. ``sandbox_config`` is the
        one the sandbox was run with, as the kubelet passes it."""
        r = self._conn.unary(
            _RUNTIME + "CreateContainer",
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id,
                config=config.to_proto(sandbox_config),
                sandbox_config=sandbox_config.to_proto(),
            ),
            pb.CreateContainerResponse,
            not_found=ContainerNotFound,
        )
        return r.container_id

    def start_container(self, container_id: str) -> None:
        self._conn.unary(
            _RUNTIME + "StartContainer",
            pb.StartContainerRequest(container_id=container_id),
            pb.StartContainerResponse,
            not_found=ContainerNotFound,
        )

    def stop_container(self, container_id: str, *, grace_seconds: int = 0) -> None:
        """Stop the container, killing it after ``grace_seconds`` (0: at once); idempotent.
        The call may take the grace period plus the usual call timeout."""
        timeout = self._conn.call_timeout_seconds
        self._conn.unary(
            _RUNTIME + "StopContainer",
            pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds),
            pb.StopContainerResponse,
            not_found=ContainerNotFound,
            timeout_seconds=None if timeout is None else timeout + grace_seconds,
        )

    def remove_container(self, container_id: str) -> None:
        """Remove the container, killing it if it runs (idempotent)."""
        self._conn.unary(
            _RUNTIME + "RemoveContainer",
            pb.RemoveContainerRequest(container_id=container_id),
            pb.RemoveContainerResponse,
            not_found=ContainerNotFound,
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
