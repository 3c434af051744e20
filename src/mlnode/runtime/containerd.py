"""A typed, synchronous client for containerd's own Content, Leases and Images services.

These are what CRI does not offer: byte progress of downloads in flight (``list_statuses``),
writing blobs into the content store with resume at the committed offset (``writer``), and
leases that keep half-written or unreferenced content from containerd's garbage collector.

Every call carries the namespace in gRPC metadata ``containerd-namespace`` (the kubelet's
images live in ``k8s.io``); content written under a lease carries ``containerd-lease``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.empty_pb2 import Empty as _Empty
from google.protobuf.field_mask_pb2 import FieldMask

from mlnode._closing import Closing
from mlnode.runtime._content_writer import (
    CONTENT_SERVICE,
    WRITE_CHUNK_BYTES,
    ContentWriter,
)
from mlnode.runtime._content_writer import proto_time as _time
from mlnode.runtime._grpc import Connection, Metadata
from mlnode.runtime._proto import containerd_content_pb2 as content_pb
from mlnode.runtime._proto import containerd_images_pb2 as images_pb
from mlnode.runtime._proto import containerd_leases_pb2 as leases_pb
from mlnode.runtime._proto import containerd_types_pb2 as types_pb
from mlnode.runtime.errors import ContentNotFound

__all__ = [
    "DEFAULT_NAMESPACE",
    "GC_EXPIRE_LABEL",
    "ContainerdClient",
    "ContainerdImage",
    "ContentInfo",
    "ContentWriter",
    "Descriptor",
    "IngestStatus",
    "Lease",
]

DEFAULT_NAMESPACE = "k8s.io"
NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
GC_EXPIRE_LABEL = "containerd.io/gc.expire"

_CONTENT = CONTENT_SERVICE
_LEASES = "/containerd.services.leases.v1.Leases/"
_IMAGES = "/containerd.services.images.v1.Images/"


@dataclass(frozen=True)
class ContentInfo:
    digest: str
    size_bytes: int
    created_at: datetime | None
    updated_at: datetime | None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestStatus:
    """A write in progress (a download, for a pull); ``offset_bytes`` is committed so far.

    containerd's own pulls name their refs ``layer-sha256:<hex>``, ``manifest-…``,
    ``config-…`` or ``index-…``.
    """

    ref: str
    offset_bytes: int
    total_bytes: int
    started_at: datetime | None
    updated_at: datetime | None
    expected_digest: str = ""


def _ingest(s: content_pb.Status) -> IngestStatus:
    return IngestStatus(
        ref=s.ref,
        offset_bytes=s.offset,
        total_bytes=s.total,
        started_at=_time(s.started_at),
        updated_at=_time(s.updated_at),
        expected_digest=s.expected,
    )


@dataclass(frozen=True)
class Lease:
    id: str
    created_at: datetime | None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size_bytes: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_proto(self) -> types_pb.Descriptor:
        return types_pb.Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size_bytes,
            annotations=dict(self.annotations),
        )


@dataclass(frozen=True)
class ContainerdImage:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _image(i: images_pb.Image) -> ContainerdImage:
    t = i.target
    return ContainerdImage(
        name=i.name,
        target=Descriptor(t.media_type, t.digest, t.size, dict(t.annotations)),
        labels=dict(i.labels),
        created_at=_time(i.created_at),
        updated_at=_time(i.updated_at),
    )


class ContainerdClient(Closing):
    """containerd's Content, Leases and Images services in one namespace."""

    def __init__(
        self,
        endpoint: str | Path,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        connect_timeout_seconds: float = 2.0,
        call_timeout_seconds: float = 120.0,
    ) -> None:
        self._conn = Connection(
            endpoint,
            connect_timeout_seconds=connect_timeout_seconds,
            call_timeout_seconds=call_timeout_seconds,
        )
        self.endpoint = self._conn.endpoint
        self.namespace = namespace

    def close(self) -> None:
        self._conn.close()

    def _md(self, lease_id: str | None = None) -> Metadata:
        md = [(NAMESPACE_HEADER, self.namespace)]
        if lease_id:
            md.append((LEASE_HEADER, lease_id))
        return md

    # Content

    def content_info(self, digest: str) -> ContentInfo:
        """The committed blob ``digest``; raises ContentNotFound if it is not in the store."""
        r = self._conn.unary(
            _CONTENT + "Info",
            content_pb.InfoRequest(digest=digest),
            content_pb.InfoResponse,
            metadata=self._md(),
            not_found=ContentNotFound,
        )
        i = r.info
        return ContentInfo(
            i.digest, i.size, _time(i.created_at), _time(i.updated_at), dict(i.labels)
        )

    def has_content(self, digest: str) -> bool:
        try:
            self.content_info(digest)
        except ContentNotFound:
            return False
        return True

    def list_content(self, filters: Sequence[str] = ()) -> list[ContentInfo]:
        out: list[ContentInfo] = []
        for r in self._conn.server_stream(
            _CONTENT + "List",
            content_pb.ListContentRequest(filters=list(filters)),
            content_pb.ListContentResponse,
            metadata=self._md(),
            timeout_seconds=self._conn.call_timeout_seconds,
        ):
            out.extend(
                ContentInfo(
                    i.digest, i.size, _time(i.created_at), _time(i.updated_at), dict(i.labels)
                )
                for i in r.info
            )
        return out

    def delete_content(self, digest: str) -> None:
        self._conn.unary(
            _CONTENT + "Delete",
            content_pb.DeleteContentRequest(digest=digest),
            _Empty,
            metadata=self._md(),
            not_found=ContentNotFound,
        )

    def read_content(self, digest: str, *, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """Stream a committed blob from ``offset`` (``size`` 0 = to the end)."""
        for r in self._conn.server_stream(
            _CONTENT + "Read",
            content_pb.ReadContentRequest(digest=digest, offset=offset, size=size),
            content_pb.ReadContentResponse,
            metadata=self._md(),
            not_found=ContentNotFound,
        ):
            yield r.data

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        """Writes in progress in the namespace, including pulls started by the kubelet."""
        r = self._conn.unary(
            _CONTENT + "ListStatuses",
            content_pb.ListStatusesRequest(filters=list(filters)),
            content_pb.ListStatusesResponse,
            metadata=self._md(),
        )
        return [_ingest(s) for s in r.statuses]

    def status(self, ref: str) -> IngestStatus | None:
        """Where the ingest ``ref`` stands, or None if there is none."""
        try:
            r = self._conn.unary(
                _CONTENT + "Status",
                content_pb.StatusRequest(ref=ref),
                content_pb.StatusResponse,
                metadata=self._md(),
                not_found=ContentNotFound,
            )
        except ContentNotFound:
            return None
        return _ingest(r.status)

    def writer(
        self,
        ref: str,
        *,
        total_bytes: int,
        expected_digest: str,
        lease_id: str | None = None,
        chunk_bytes: int = WRITE_CHUNK_BYTES,
    ) -> ContentWriter:
        """Open (or resume) the ingest ``ref``; see :class:`ContentWriter`.

        Raises AlreadyExists if ``expected_digest`` is already in the content store.
        """
        return ContentWriter(
            self._conn,
            ref,
            total_bytes=total_bytes,
            expected_digest=expected_digest,
            metadata=self._md(lease_id),
            chunk_bytes=chunk_bytes,
        )

    def abort(self, ref: str) -> bool:
        """Discard the ingest ``ref``; False if there was none."""
        try:
            self._conn.unary(
                _CONTENT + "Abort",
                content_pb.AbortRequest(ref=ref),
                _Empty,
                metadata=self._md(),
                not_found=ContentNotFound,
            )
        except ContentNotFound:
            return False
        return True

    # Leases

    def create_lease(
        self,
        lease_id: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        expire_after_seconds: float | None = None,
    ) -> Lease:
        """Create a lease; with ``expire_after_seconds`` containerd's GC drops it after that."""
        all_labels = dict(labels or {})
        if expire_after_seconds is not None:
            expiry = datetime.now(UTC) + timedelta(seconds=expire_after_seconds)
            all_labels[GC_EXPIRE_LABEL] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        r = self._conn.unary(
            _LEASES + "Create",
            leases_pb.CreateRequest(id=lease_id or f"mlnode-{uuid.uuid4().hex}", labels=all_labels),
            leases_pb.CreateResponse,
            metadata=self._md(),
            not_found=ContentNotFound,
        )
        return Lease(r.lease.id, _time(r.lease.created_at), dict(r.lease.labels))

    def delete_lease(self, lease_id: str, *, sync: bool = False) -> None:
        """Delete a lease; ``sync`` waits for containerd's GC to collect what it held."""
        self._conn.unary(
            _LEASES + "Delete",
            leases_pb.DeleteRequest(id=lease_id, sync=sync),
            _Empty,
            metadata=self._md(),
            not_found=ContentNotFound,
        )

    def list_leases(self, filters: Sequence[str] = ()) -> list[Lease]:
        r = self._conn.unary(
            _LEASES + "List",
            leases_pb.ListRequest(filters=list(filters)),
            leases_pb.ListResponse,
            metadata=self._md(),
        )
        return [Lease(x.id, _time(x.created_at), dict(x.labels)) for x in r.leases]

    def add_lease_resource(self, lease_id: str, resource_id: str, resource_type: str) -> None:
        """Attach a resource, e.g. (``sha256:…``, ``content``) or (``<ref>``, ``ingests``)."""
        self._conn.unary(
            _LEASES + "AddResource",
            leases_pb.AddResourceRequest(
                id=lease_id, resource=leases_pb.Resource(id=resource_id, type=resource_type)
            ),
            _Empty,
            metadata=self._md(),
            not_found=ContentNotFound,
        )

    def list_lease_resources(self, lease_id: str) -> list[tuple[str, str]]:
        """``(id, type)`` of everything ``lease_id`` holds."""
        r = self._conn.unary(
            _LEASES + "ListResources",
            leases_pb.ListResourcesRequest(id=lease_id),
            leases_pb.ListResourcesResponse,
            metadata=self._md(),
            not_found=ContentNotFound,
        )
        return [(x.id, x.type) for x in r.resources]

    # Images

    def list_images(self, filters: Sequence[str] = ()) -> list[ContainerdImage]:
        r = self._conn.unary(
            _IMAGES + "List",
            images_pb.ListImagesRequest(filters=list(filters)),
            images_pb.ListImagesResponse,
            metadata=self._md(),
        )
        return [_image(i) for i in r.images]

    def get_image(self, name: str) -> ContainerdImage:
        """The image record ``name``; raises ImageNotFound."""
        r = self._conn.unary(
            _IMAGES + "Get",
            images_pb.GetImageRequest(name=name),
            images_pb.GetImageResponse,
            metadata=self._md(),
        )
        return _image(r.image)

    def create_image(
        self,
        name: str,
        target: Descriptor,
        *,
        labels: Mapping[str, str] | None = None,
        lease_id: str | None = None,
    ) -> ContainerdImage:
        """Register ``name`` → ``target``; raises AlreadyExists if the name is taken."""
        r = self._conn.unary(
            _IMAGES + "Create",
            images_pb.CreateImageRequest(
                image=images_pb.Image(
                    name=name,
                    target=target.to_proto(),
                    labels=dict(labels or {}),
                )
            ),
            images_pb.CreateImageResponse,
            metadata=self._md(lease_id),
        )
        return _image(r.image)

    def update_image(
        self,
        name: str,
        target: Descriptor,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> ContainerdImage:
        """Point ``name`` at ``target`` (and replace its labels if given)."""
        paths = ["target"] + (["labels"] if labels is not None else [])
        r = self._conn.unary(
            _IMAGES + "Update",
            images_pb.UpdateImageRequest(
                image=images_pb.Image(
                    name=name, target=target.to_proto(), labels=dict(labels or {})
                ),
                update_mask=FieldMask(paths=paths),
            ),
            images_pb.UpdateImageResponse,
            metadata=self._md(),
        )
        return _image(r.image)

    def delete_image(self, name: str, *, sync: bool = False) -> None:
        """Delete the record ``name``; ``sync`` waits for GC of the content it held."""
        self._conn.unary(
            _IMAGES + "Delete",
            images_pb.DeleteImageRequest(name=name, sync=sync),
            _Empty,
            metadata=self._md(),
        )
