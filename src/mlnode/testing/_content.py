"""An in-memory containerd content store with ingests, commit checks, leases and faults."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mlnode.errors import RuntimeError_, RuntimeUnavailable
from mlnode.runtime.containerd import IngestStatus, Lease
from mlnode.runtime.errors import (
    AlreadyExists,
    ContentNotFound,
    FailedPrecondition,
    IngestLocked,
)

__all__ = ["FakeContentStore", "FakeIngest", "FakeLease"]

ENDPOINT = "fake://containerd"


@dataclass
class FakeLease:
    id: str
    labels: dict[str, str]
    expire_after_seconds: float | None
    resources: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Ingest:
    ref: str
    total_bytes: int
    expected_digest: str
    data: bytearray = field(default_factory=bytearray)
    locked: bool = False


@dataclass
class _WriteFault:
    ref: str
    at_byte: int
    error: RuntimeError_


class FakeIngest:
    """One open write (:class:`mlnode.ports.ContentIngest`), holding the ref's lock."""

    def __init__(self, store: FakeContentStore, ingest: _Ingest, lease_id: str | None) -> None:
        self._store = store
        self._ingest = ingest
        self._lease_id = lease_id
        self._closed = False

    @property
    def offset_bytes(self) -> int:
        return len(self._ingest.data)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(
                f"Content/Write: writer for {self._ingest.ref} is closed",
                endpoint=ENDPOINT,
                code="FAILED_PRECONDITION",
            )

    def write(self, data: bytes) -> int:
        self._check_open()
        fault = self._store._take_write_fault(self._ingest.ref, self.offset_bytes, len(data))
        if fault is not None:
            keep = max(0, fault.at_byte - self.offset_bytes)
            self._ingest.data += data[:keep]  # containerd keeps what it acknowledged
            self._store.written_bytes += keep
            self.close()
            raise fault.error
        self._ingest.data += data
        self._store.written_bytes += len(data)
        return self.offset_bytes

    def restart_from_zero(self) -> None:
        self._check_open()
        self._ingest.data.clear()

    def commit(self, labels: Mapping[str, str] | None = None) -> str:
        self._check_open()
        ing, store = self._ingest, self._store
        if len(ing.data) != ing.total_bytes:
            raise FailedPrecondition(
                f"Content/Write: unexpected commit size {len(ing.data)}, "
                f"expected {ing.total_bytes}",
                endpoint=ENDPOINT,
                code="FAILED_PRECONDITION",
            )
        actual = "sha256:" + hashlib.sha256(ing.data).hexdigest()
        if ing.expected_digest and actual != ing.expected_digest:
            raise FailedPrecondition(
                f"Content/Write: unexpected commit digest {actual}, expected {ing.expected_digest}",
                endpoint=ENDPOINT,
                code="FAILED_PRECONDITION",
            )
        with store._lock:
            if actual in store.blobs:
                raise AlreadyExists(
                    f"Content/Write: already exists: {actual}",
                    endpoint=ENDPOINT,
                    code="ALREADY_EXISTS",
                )
            store.blobs[actual] = bytes(ing.data)
            store.blob_labels[actual] = dict(labels or {})
            del store._ingests[ing.ref]
            if self._lease_id in store.leases:
                store.leases[self._lease_id].resources.add((actual, "content"))
        self.close()
        return actual

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ingest.locked = False


class FakeContentStore:
    """:class:`mlnode.ports.ContentStore` in memory.

    Faults, each used once, in order: :meth:`fail_open` makes the next ``writer`` calls
    raise (e.g. RuntimeUnavailable while containerd restarts); :meth:`break_write` breaks
    the stream when the ingest reaches a byte (the bytes before it are kept, as
    containerd keeps what it acknowledged). Counters: :attr:`writer_opens`,
    :attr:`written_bytes`, :attr:`aborted`.
    """

    endpoint = ENDPOINT

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}
        self.blob_labels: dict[str, dict[str, str]] = {}
        self._ingests: dict[str, _Ingest] = {}
        self.leases: dict[str, FakeLease] = {}
        self._open_faults: list[RuntimeError_] = []
        self._write_faults: list[_WriteFault] = []
        self.writer_opens = 0
        self.written_bytes = 0
        self.aborted: list[str] = []

    # faults

    def fail_open(self, *errors: RuntimeError_) -> None:
        """The next ``len(errors)`` writer opens raise these, one each."""
        with self._lock:
            self._open_faults.extend(errors)

    def break_write(self, ref: str, *, at_byte: int, error: RuntimeError_ | None = None) -> None:
        """The write that would take ingest ``ref`` past ``at_byte`` breaks the stream."""
        err = error or RuntimeUnavailable(
            "Content/Write: runtime unavailable: transport is closing (containerd restarted)",
            endpoint=ENDPOINT,
        )
        with self._lock:
            self._write_faults.append(_WriteFault(ref, at_byte, err))

    def _take_write_fault(self, ref: str, offset: int, n: int) -> _WriteFault | None:
        with self._lock:
            for f in self._write_faults:
                if f.ref == ref and offset <= f.at_byte < offset + n:
                    self._write_faults.remove(f)
                    return f
        return None

    def put_ingest(self, ref: str, data: bytes, *, total_bytes: int, expected_digest: str) -> None:
        """Leave a partial ingest, as an earlier (killed) pull would have."""
        with self._lock:
            self._ingests[ref] = _Ingest(ref, total_bytes, expected_digest, bytearray(data))

    # the port

    def has_content(self, digest: str) -> bool:
        with self._lock:
            return digest in self.blobs

    def status(self, ref: str) -> IngestStatus | None:
        with self._lock:
            ing = self._ingests.get(ref)
            if ing is None:
                return None
            return IngestStatus(
                ref, len(ing.data), ing.total_bytes, None, None, expected_digest=ing.expected_digest
            )

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        """Every ingest; the fake does not interpret ``filters``."""
        with self._lock:
            refs = list(self._ingests)
        return [s for s in map(self.status, refs) if s is not None]

    def writer(
        self,
        ref: str,
        *,
        total_bytes: int,
        expected_digest: str,
        lease_id: str | None = None,
        chunk_bytes: int = 1024 * 1024,
    ) -> FakeIngest:
        with self._lock:
            self.writer_opens += 1
            if self._open_faults:
                raise self._open_faults.pop(0)
            if lease_id and lease_id not in self.leases:
                raise ContentNotFound(
                    f"Content/Write: not found: lease {lease_id}",
                    endpoint=ENDPOINT,
                    code="NOT_FOUND",
                )
            if expected_digest in self.blobs:
                raise AlreadyExists(
                    f"Content/Write: already exists: {expected_digest}",
                    endpoint=ENDPOINT,
                    code="ALREADY_EXISTS",
                )
            ing = self._ingests.get(ref)
            if ing is None:
                ing = self._ingests[ref] = _Ingest(ref, total_bytes, expected_digest)
            elif ing.locked:
                raise IngestLocked(
                    f"Content/Write: runtime unavailable: ref {ref} locked: unavailable",
                    endpoint=ENDPOINT,
                )
            ing.locked = True
            if lease_id:
                self.leases[lease_id].resources.add((ref, "ingests"))
        return FakeIngest(self, ing, lease_id)

    def abort(self, ref: str) -> bool:
        with self._lock:
            self.aborted.append(ref)
            return self._ingests.pop(ref, None) is not None

    def create_lease(
        self,
        lease_id: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        expire_after_seconds: float | None = None,
    ) -> Lease:
        lid = lease_id or f"fake-lease-{len(self.leases)}"
        with self._lock:
            if lid in self.leases:
                raise AlreadyExists(
                    f"Leases/Create: already exists: {lid}",
                    endpoint=ENDPOINT,
                    code="ALREADY_EXISTS",
                )
            self.leases[lid] = FakeLease(lid, dict(labels or {}), expire_after_seconds)
        return Lease(lid, None, dict(labels or {}))

    def delete_lease(self, lease_id: str, *, sync: bool = False) -> None:
        with self._lock:
            if self.leases.pop(lease_id, None) is None:
                raise ContentNotFound(
                    f"Leases/Delete: not found: {lease_id}", endpoint=ENDPOINT, code="NOT_FOUND"
                )

    def add_lease_resource(self, lease_id: str, resource_id: str, resource_type: str) -> None:
        with self._lock:
            lease = self.leases.get(lease_id)
            if lease is None:
                raise ContentNotFound(
                    f"Leases/AddResource: not found: {lease_id}",
                    endpoint=ENDPOINT,
                    code="NOT_FOUND",
                )
            lease.resources.add((resource_id, resource_type))
