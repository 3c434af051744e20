"""An in-memory registry serving blobs, told where to stall, cut, corrupt or fail."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlnode.errors import (
    ImageNotFound,
    RegistryConnectionLost,
    RegistryError,
    RegistryStalled,
    RegistryUnavailable,
)
from mlnode.registry.auth import Credentials
from mlnode.registry.client import PullTarget, Resolved
from mlnode.registry.hosts import RegistryHost
from mlnode.registry.manifest import OCI_MANIFEST, ImageManifest, Platform, parse_manifest
from mlnode.registry.reference import Reference, parse_reference
from mlnode.testing._clock import FakeClock

__all__ = ["BlobRequest", "FakeBlobBody", "FakeImage", "FakeRegistry"]

_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FakeImage:
    """What :meth:`FakeRegistry.push` stored: digests and the bytes a pull downloads."""

    reference: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    blobs_size_bytes: int


@dataclass(frozen=True)
class BlobRequest:
    """One blob GET: ``end`` None means to the end (``Range: bytes=start-``)."""

    digest: str
    start: int
    end: int | None


@dataclass
class _Fault:
    kind: str  # "stall" | "cut"
    digest: str
    at_byte: int
    times: int = 1
    seconds: float = math.inf
    until: float | None = None  # a stall: the virtual time its silence ends


class FakeBlobBody:
    """:class:`mlnode.ports.BlobBody` for one request, in pieces of ``piece_bytes``."""

    def __init__(
        self, registry: FakeRegistry, digest: str, start: int, end: int | None, url: str
    ) -> None:
        self._registry = registry
        self.digest = digest
        self.start = start
        self.end = end
        self.url = url

    def iter_bytes(self) -> Iterator[bytes]:
        reg = self._registry
        data = reg.blobs[self.digest]
        last = len(data) - 1 if self.end is None else min(self.end, len(data) - 1)
        pos = self.start
        while pos <= last:
            stop = min(pos + reg.piece_bytes, last + 1)
            boundary = reg._hit(self.digest, pos, stop, self.url)
            if boundary is not None:
                stop = boundary
            piece = data[pos:stop]
            if self.digest in reg._corrupt and pos <= len(data) // 2 < stop:
                i = len(data) // 2 - pos
                piece = piece[:i] + bytes([piece[i] ^ 0xFF]) + piece[i + 1 :]
            reg._served(self.digest, len(piece))
            pos = stop
            yield piece


class FakeRegistry:
    """:class:`mlnode.ports.Registry` in memory, on a :class:`FakeClock`.

    ``read_timeout_seconds`` is the stall deadline, as :class:`RegistryClient` is given
    it: a connection silent for that long raises RegistryStalled after advancing the
    clock by it, so stalls cost no real time. Faults (per blob, at an absolute offset):
    :meth:`stall`, :meth:`cut`, :meth:`corrupt`, :meth:`fail`. Records: :attr:`requests`,
    :attr:`served_bytes` (per digest).
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        host: str = "registry.test",
        read_timeout_seconds: float = 300.0,
        piece_bytes: int = 64 * 1024,
    ) -> None:
        self.clock = clock
        self.host = host
        self.read_timeout_seconds = read_timeout_seconds
        self.piece_bytes = piece_bytes
        self.blobs: dict[str, bytes] = {}
        self._manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._faults: list[_Fault] = []
        self._fail: dict[str, list[int]] = {}
        self._corrupt: set[str] = set()
        self._lock = threading.Lock()
        self.requests: list[BlobRequest] = []
        self.served_bytes: dict[str, int] = {}

    # content

    def push(self, name: str, layers: Sequence[bytes], *, config: bytes | None = None) -> FakeImage:
        """Store an image under ``name`` (``host/repo:tag``) with these layer bytes."""
        ref = parse_reference(name)
        cfg = config if config is not None else json.dumps({"name": name}).encode()
        descriptors = [
            {"mediaType": _LAYER, "digest": sha256_digest(b), "size": len(b)} for b in layers
        ]
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": _CONFIG, "digest": sha256_digest(cfg), "size": len(cfg)},
                "layers": descriptors,
            }
        ).encode()
        digest = sha256_digest(manifest)
        with self._lock:
            for b in (cfg, *layers):
                self.blobs[sha256_digest(b)] = b
            self._manifests[(ref.repository, ref.object)] = (digest, manifest)
            self._manifests[(ref.repository, digest)] = (digest, manifest)
        return FakeImage(
            reference=str(ref),
            manifest_digest=digest,
            config_digest=sha256_digest(cfg),
            layer_digests=tuple(sha256_digest(b) for b in layers),
            blobs_size_bytes=len(cfg) + sum(len(b) for b in layers),
        )

    def manifest(self, ref: Reference) -> ImageManifest:
        digest, raw = self._manifest_raw(ref)
        parsed = parse_manifest(raw, media_type=OCI_MANIFEST, digest=digest, url=self.host)
        assert isinstance(parsed, ImageManifest)
        return parsed

    def _manifest_raw(self, ref: Reference) -> tuple[str, bytes]:
        found = self._manifests.get((ref.repository, ref.object))
        if found is None:
            raise ImageNotFound(f"{ref}: image not found in the registry")
        return found

    # faults

    def stall(self, digest: str, *, at_byte: int, seconds: float = math.inf) -> None:
        """From ``at_byte`` on, no byte for ``seconds`` of (virtual) time."""
        with self._lock:
            self._faults.append(_Fault("stall", digest, at_byte, seconds=seconds))

    def cut(self, digest: str, *, at_byte: int, times: int = 1) -> None:
        """Drop the connection when it reaches ``at_byte``, the next ``times`` times."""
        with self._lock:
            self._faults.append(_Fault("cut", digest, at_byte, times=times))

    def corrupt(self, digest: str) -> None:
        """Serve the blob with its middle byte flipped."""
        with self._lock:
            self._corrupt.add(digest)

    def fail(self, digest: str, *, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests for the blob with HTTP ``status``."""
        with self._lock:
            self._fail.setdefault(digest, []).extend([status] * times)

    def clear_faults(self) -> None:
        """The network heals: no more stalls, cuts, corruption or error answers."""
        with self._lock:
            self._faults.clear()
            self._fail.clear()
            self._corrupt.clear()

    def requests_for(self, digest: str) -> list[BlobRequest]:
        with self._lock:
            return [r for r in self.requests if r.digest == digest]

    def _served(self, digest: str, n: int) -> None:
        with self._lock:
            self.served_bytes[digest] = self.served_bytes.get(digest, 0) + n

    def _hit(self, digest: str, pos: int, stop: int, url: str) -> int | None:
        """Apply a fault at ``pos``; or the offset of the next one before ``stop``."""
        with self._lock:
            ahead = [f for f in self._faults if f.digest == digest and pos <= f.at_byte < stop]
            fault = min(ahead, key=lambda f: f.at_byte, default=None)
            if fault is None:
                return None
            if fault.at_byte > pos:
                return fault.at_byte
            if fault.kind == "cut":
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                raise RegistryConnectionLost(
                    "RemoteProtocolError: peer closed connection without sending complete "
                    "message body",
                    url=url,
                )
            now = self.clock.monotonic()
            if fault.until is None:
                fault.until = now + fault.seconds
            silence = fault.until - now
            if silence > self.read_timeout_seconds:
                self.clock.advance(self.read_timeout_seconds)
                raise RegistryStalled("ReadTimeout: timed out", url=url)
            self.clock.advance(max(0.0, silence))
            self._faults.remove(fault)
            return None

    # the port

    def hosts(self, ref: Reference, capability: str) -> list[RegistryHost]:
        return [RegistryHost("http", self.host)]

    def credentials(self, ref: Reference) -> Credentials | None:
        return None

    def pull_target(self, ref: Reference, platform: Platform) -> PullTarget:
        digest, raw = self._manifest_raw(ref)
        host = self.hosts(ref, "pull")[0]
        return PullTarget(
            reference=ref,
            index=None,
            manifest_blob=Resolved(ref, digest, OCI_MANIFEST, raw, host),
            manifest=self.manifest(ref),
            platform=platform,
        )

    @contextlib.contextmanager
    def open_blob(
        self, ref: Reference, digest: str, *, start: int = 0, end: int | None = None
    ) -> Iterator[FakeBlobBody]:
        url = f"http://{self.host}/v2/{ref.repository}/blobs/{digest}"
        with self._lock:
            self.requests.append(BlobRequest(digest, start, end))
            statuses = self._fail.get(digest)
            status = statuses.pop(0) if statuses else None
            known = digest in self.blobs
        if status is not None:
            retryable = status >= 500 or status in (408, 429)
            kind = RegistryUnavailable if retryable else RegistryError
            raise kind(f"blob request failed: HTTP {status}", url=url, status=status)
        if not known:
            raise RegistryError("blob request failed: BLOB_UNKNOWN", url=url, status=404)
        yield FakeBlobBody(self, digest, start, end, url)
