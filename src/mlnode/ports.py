"""The external systems mlnode talks to, as small structural interfaces (ports).

The pull engine (:mod:`mlnode.ops.pull`), and later a node-local mirror and a long-running
agent, take these rather than the concrete clients, so their state machines can be run
against the in-memory fakes in :mod:`mlnode.testing` with a virtual clock.

    port            real implementation                         what it stands for
    ──────────────  ──────────────────────────────────────────  ─────────────────────────
    ContentStore    mlnode.runtime.containerd.ContainerdClient  containerd Content + Leases
    ContentIngest   mlnode.runtime.containerd.ContentWriter     one Content.Write stream
    ImageService    mlnode.runtime.cri.CriClient                CRI image/runtime calls
    Registry        mlnode.registry.client.RegistryClient       an OCI distribution registry
    BlobBody        mlnode.registry.client.BlobStream           one blob response body
    PullStatusSource  ContainerdClient (ListStatuses only)      downloads in flight, for GC
    FilesystemMeter   mlnode.runtime.fs.image_filesystem         statvfs of the image fs
    Clock           SystemClock (here)                          time.monotonic + sleeping
    SpaceKeeper     mlnode.ops (free-space check + ml GC)       room on the image fs
    ClusterApi      mlnode.kube.KubeClient                      the Kubernetes API (the agent)

The signatures are the real clients' own, so those satisfy the ports structurally
(checked by mypy at the end of this module). Errors are the real ones too: a port raises
the :mod:`mlnode.errors` type the real client would (e.g. RegistryStalled when no byte
arrives within the read deadline, RuntimeUnavailable while the runtime restarts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # value types only: importing the ports loads no gRPC or HTTP client
    from mlnode.registry.auth import Credentials
    from mlnode.registry.client import PullTarget
    from mlnode.registry.hosts import RegistryHost
    from mlnode.registry.manifest import Platform
    from mlnode.registry.reference import Reference
    from mlnode.runtime.containerd import IngestStatus, Lease
    from mlnode.runtime.cri import (
        CriContainer,
        CriImage,
        RegistryAuth,
        RuntimeStatus,
        RuntimeVersion,
    )
    from mlnode.runtime.fs import FilesystemUsage

__all__ = [
    "BlobBody",
    "Clock",
    "ClusterApi",
    "ClusterReader",
    "ContentIngest",
    "ContentStore",
    "FilesystemMeter",
    "ImageService",
    "PullStatusSource",
    "Registry",
    "SpaceKeeper",
    "SystemClock",
]


class Clock(Protocol):
    """Time as the pull state machine sees it: every read and every wait goes here."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``event`` is set, whichever is first; True if set.

        A sleep another thread can cut short (a cancelled retry backoff)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)


class ContentIngest(Protocol):
    """One open write of a blob into the content store, holding the ref's lock.

    :attr:`offset_bytes` is where the ingest stands (an earlier writer's committed
    bytes on open); bytes are only appended there."""

    @property
    def offset_bytes(self) -> int: ...

    def write(self, data: bytes) -> int: ...

    def restart_from_zero(self) -> None: ...

    def commit(self, labels: Mapping[str, str] | None = None) -> str:
        """Verify size and digest and store the blob (FailedPrecondition if they differ)."""
        ...

    def close(self) -> None:
        """End the write without committing; the ingest stays for a later writer."""
        ...


class ContentStore(Protocol):
    """containerd's Content and Leases services as a pull (and GC) uses them."""

    @property
    def endpoint(self) -> str: ...

    def has_content(self, digest: str) -> bool: ...

    def status(self, ref: str) -> IngestStatus | None: ...

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        """Every write in progress (a kubelet's pulls too): what GC must not touch."""
        ...

    def writer(
        self,
        ref: str,
        *,
        total_bytes: int,
        expected_digest: str,
        lease_id: str | None = None,
        chunk_bytes: int = ...,
    ) -> ContentIngest:
        """Open or resume the ingest ``ref``; AlreadyExists if the blob is stored already."""
        ...

    def abort(self, ref: str) -> bool: ...

    def create_lease(
        self,
        lease_id: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        expire_after_seconds: float | None = None,
    ) -> Lease: ...

    def delete_lease(self, lease_id: str, *, sync: bool = False) -> None: ...

    def add_lease_resource(self, lease_id: str, resource_id: str, resource_type: str) -> None: ...


class ImageService(Protocol):
    """The CRI calls mlnode makes: images for pull and GC, containers and status for GC."""

    def version(self) -> RuntimeVersion: ...

    def status(self, *, verbose: bool = False) -> RuntimeStatus: ...

    def list_containers(self) -> list[CriContainer]: ...

    def list_images(self) -> list[CriImage]: ...

    def image_status(self, ref: str) -> CriImage | None: ...

    def pull_image(
        self,
        ref: str,
        auth: RegistryAuth | None = None,
        timeout_seconds: float | None = None,
    ) -> str: ...

    def remove_image(self, ref: str) -> None:
        """Remove ``ref`` (id, tag or digest); an unknown image is success, as in CRI."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class BlobBody(Protocol):
    """An open blob response: the bytes asked for, as they arrive."""

    @property
    def url(self) -> str: ...

    def iter_bytes(self) -> Iterator[bytes]:
        """Pieces of the body; RegistryStalled / RegistryConnectionLost when it breaks."""
        ...


class Registry(Protocol):
    """What a pull asks of the registry (with mirrors and credentials behind it)."""

    def hosts(self, ref: Reference, capability: str) -> list[RegistryHost]: ...

    def credentials(self, ref: Reference) -> Credentials | None: ...

    def pull_target(self, ref: Reference, platform: Platform) -> PullTarget: ...

    def open_blob(
        self, ref: Reference, digest: str, *, start: int = 0, end: int | None = None
    ) -> AbstractContextManager[BlobBody]:
        """The blob from byte ``start`` to ``end`` inclusive (``Range``)."""
        ...


class SpaceKeeper(Protocol):
    """Room on the image filesystem, asked for before bytes arrive (the node mirror asks
    before it fetches a blob)."""

    def ensure_room(self, incoming_bytes: int, *, what: str) -> str:
        """Make room for ``incoming_bytes`` more, with the free-space arithmetic of
        ``mlnode pull``, running the ml GC (the mirror's cache first) for the shortfall.

        Returns a one-line account of what was done (the caller logs it). Raises
        :class:`mlnode.errors.InsufficientSpace` when the room cannot be made."""
        ...


class ClusterApi(Protocol):
    """The few Kubernetes API calls the agent makes, synchronous (the agent calls them from
    a worker thread). Failures: :class:`mlnode.errors.KubeUnavailable` (retryable: no
    answer, 5xx, 429) or :class:`mlnode.errors.KubeError` (a 4xx ``Status``, e.g. 403)."""

    def node_labels(self, node_name: str) -> Mapping[str, str]:
        """``metadata.labels`` of the Node (``GET /api/v1/nodes/{name}``)."""
        ...

    def post_event(
        self, node_name: str, *, reason: str, message: str, warning: bool = False
    ) -> None:
        """A core/v1 Event about the Node, in namespace ``default`` (where the kubelet
        puts Node events), ``source.component`` ``mlnode-agent``; the same reason and
        message again within the aggregation window bumps ``count`` (a PATCH) instead of a
        new object, as the kubelet's event correlator does."""
        ...

    def annotate_node(self, node_name: str, annotations: Mapping[str, str | None]) -> None:
        """Merge-patch ``metadata.annotations`` of the Node (None removes a key)."""
        ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """``data`` of the ConfigMap, or None when it does not exist (404)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class ClusterReader(Protocol):
    """What ``mlnode doctor --cluster`` reads from the Kubernetes API: read-only, synchronous,
    thread-safe (the doctor calls it from a bounded pool of worker threads). Objects are the
    API's JSON as decoded dicts (core/v1 Node, core/v1 Event; the kubelet's configz and
    stats/summary documents). Failures: :class:`mlnode.errors.KubeUnavailable` (no answer in
    time, connection refused, 5xx, 429) or :class:`mlnode.errors.KubeError` (a 4xx Status,
    e.g. 403 without ``nodes/proxy``). RBAC: deploy/kubernetes/doctor/ (nodes get/list,
    nodes/proxy get, events list)."""

    def list_nodes(self) -> list[Mapping[str, Any]]:
        """Every Node (``GET /api/v1/nodes``, followed through ``limit``/``continue`` pages)."""
        ...

    def list_events(self) -> list[Mapping[str, Any]]:
        """Every core/v1 Event in every namespace (``GET /api/v1/events``, paged): Node
        events live in ``default``, a pod's pull events in the pod's namespace."""
        ...

    def node_proxy(self, node_name: str, path: str, *, timeout_seconds: float) -> Mapping[str, Any]:
        """The kubelet's JSON document at ``path`` (``configz``, ``stats/summary``) through
        the API server's node proxy (``GET /api/v1/nodes/{name}/proxy/{path}``), given up
        after ``timeout_seconds`` (KubeUnavailable)."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


class PullStatusSource(Protocol):
    """Downloads in progress, as containerd's Content service lists them (``ListStatuses``);
    the part of :class:`ContentStore` image GC needs."""

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        """Writes in progress in the namespace, including pulls started by the kubelet."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class FilesystemMeter(Protocol):
    """Measures the filesystem holding the images, e.g.
    ``lambda: mlnode.runtime.fs.image_filesystem(root)``."""

    def __call__(self) -> FilesystemUsage: ...


if TYPE_CHECKING:  # mypy checks that the real clients satisfy the ports; never runs
    from mlnode.registry.client import BlobStream, RegistryClient
    from mlnode.runtime.containerd import ContainerdClient, ContentWriter
    from mlnode.runtime.cri import CriClient

    def _content_store(c: ContainerdClient) -> ContentStore:
        return c

    def _content_ingest(w: ContentWriter) -> ContentIngest:
        return w

    def _image_service(c: CriClient) -> ImageService:
        return c

    def _pull_statuses(c: ContainerdClient) -> PullStatusSource:
        return c

    def _registry(r: RegistryClient) -> Registry:
        return r

    def _blob_body(b: BlobStream) -> BlobBody:
        return b

    def _system_clock(c: SystemClock) -> Clock:
        return c
