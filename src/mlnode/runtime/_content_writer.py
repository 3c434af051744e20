"""containerd's ``Content.Write`` stream: one ingest written, resumed and committed.

Opened through :meth:`mlnode.runtime.containerd.ContainerdClient.writer` (and importable
from :mod:`mlnode.runtime.containerd`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from mlnode._closing import Closing
from mlnode.errors import RuntimeCallInterrupted
from mlnode.runtime._grpc import Connection, Metadata
from mlnode.runtime._proto import containerd_content_pb2 as content_pb
from mlnode.runtime.errors import ContentNotFound, FailedPrecondition, translate_rpc_error

__all__ = ["CONTENT_SERVICE", "WRITE_CHUNK_BYTES", "ContentWriter", "proto_time"]

CONTENT_SERVICE = "/containerd.services.content.v1.Content/"
WRITE_CHUNK_BYTES = 1024 * 1024


def proto_time(ts: Timestamp) -> datetime | None:
    """A protobuf timestamp as an aware datetime; None for the zero (unset) one."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


class ContentWriter(Closing):
    """One ``Content.Write`` stream on ``ref``; holds containerd's lock on the ref.

    On open it asks for the ref's status: :attr:`offset_bytes` is where the ingest stands
    (0 for a new one, the committed size for one left by an earlier writer, a crash or a
    containerd restart). Send the bytes from that offset on with :meth:`write`, then
    :meth:`commit`. Closing without commit keeps the ingest for a later writer;
    :meth:`ContainerdClient.abort` discards it.
    """

    def __init__(
        self,
        conn: Connection,
        ref: str,
        *,
        total_bytes: int,
        expected_digest: str,
        metadata: Metadata,
        chunk_bytes: int = WRITE_CHUNK_BYTES,
    ) -> None:
        self._conn = conn
        self.ref = ref
        self.total_bytes = total_bytes
        self.expected_digest = expected_digest
        self._chunk_bytes = chunk_bytes
        self._requests: queue.SimpleQueue[content_pb.WriteContentRequest | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self._lock = threading.Lock()
        self._responses = conn.bidi_stream(
            CONTENT_SERVICE + "Write",
            self._iter_requests(),
            content_pb.WriteContentResponse,
            metadata=metadata,
        )
        first = self._send(
            content_pb.WriteContentRequest(
                action=content_pb.STAT,
                ref=ref,
                total=total_bytes,
                expected=expected_digest,
            )
        )
        self.offset_bytes: int = first.offset
        self.started_at = proto_time(first.started_at)
        self.updated_at = proto_time(first.updated_at)
        self.digest: str = first.digest

    def _iter_requests(self) -> Iterator[content_pb.WriteContentRequest]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _send(self, request: content_pb.WriteContentRequest) -> content_pb.WriteContentResponse:
        if self._closed:
            raise FailedPrecondition(
                f"Content/Write: writer for {self.ref} is closed",
                endpoint=self._conn.endpoint,
                code="FAILED_PRECONDITION",
            )
        self._requests.put(request)
        try:
            return next(self._responses)
        except grpc.RpcError as e:
            self._closed = True
            self._requests.put(None)
            raise translate_rpc_error(
                e, endpoint=self._conn.endpoint, method="Content/Write", not_found=ContentNotFound
            ) from e
        except StopIteration:
            self._closed = True
            raise RuntimeCallInterrupted(
                f"Content/Write: stream for {self.ref} ended early",
                endpoint=self._conn.endpoint,
                code="UNKNOWN",
            ) from None

    def write(self, data: bytes) -> int:
        """Append ``data`` at :attr:`offset_bytes`; returns the new offset."""
        with self._lock:
            view = memoryview(data)
            for start in range(0, len(view), self._chunk_bytes):
                chunk = bytes(view[start : start + self._chunk_bytes])
                r = self._send(
                    content_pb.WriteContentRequest(
                        action=content_pb.WRITE,
                        ref=self.ref,
                        offset=self.offset_bytes,
                        data=chunk,
                    )
                )
                self.offset_bytes = r.offset
            return self.offset_bytes

    def restart_from_zero(self) -> None:
        """Throw away what the ingest holds and start again at byte 0."""
        with self._lock:
            r = self._send(
                content_pb.WriteContentRequest(
                    action=content_pb.WRITE,
                    ref=self.ref,
                    offset=0,
                )
            )
            self.offset_bytes = r.offset

    def stat(self) -> int:
        """Ask containerd where the ingest stands (under the lock this stream holds)."""
        with self._lock:
            r = self._send(content_pb.WriteContentRequest(action=content_pb.STAT, ref=self.ref))
            self.offset_bytes = r.offset
            return r.offset

    def commit(self, labels: Mapping[str, str] | None = None) -> str:
        """Verify size and digest and store the blob; returns its digest. Ends the stream."""
        with self._lock:
            r = self._send(
                content_pb.WriteContentRequest(
                    action=content_pb.COMMIT,
                    ref=self.ref,
                    offset=self.offset_bytes,
                    total=self.total_bytes,
                    expected=self.expected_digest,
                    labels=dict(labels or {}),
                )
            )
            self.offset_bytes = r.offset
            self.digest = r.digest
            self._finish()
            return r.digest

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._requests.put(None)
        try:  # containerd sends one last status after the client half-closes; drain it
            for _ in self._responses:
                pass
        except grpc.RpcError:
            pass

    def close(self) -> None:
        """End the stream without committing; the ingest stays for a later writer."""
        with self._lock:
            self._finish()
