"""Faults and byte accounting for real pulls: a corrupted stored blob, bytes the registry
served for one blob, and a CRI PullImage cancelled at a fraction of a layer.

The cancel helper opens its own gRPC channel to containerd's socket and issues PullImage as
a future, so the test can cancel the call as the kubelet's context would be (its
``runtimeRequestTimeout`` or a deleted pod): containerd logs ``context canceled``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import testbed

from mlnode.runtime._proto import cri_runtime_v1_pb2 as pb
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import RegistryAuth

_PULL_IMAGE = "/runtime.v1.ImageService/PullImage"


def runtime_message(error: BaseException) -> str:
    """containerd's own words for a failed call: the gRPC details behind an mlnode runtime
    error (mlnode's one-line message shortens them), else the error's text."""
    cause = error.__cause__
    if isinstance(cause, grpc.RpcError):
        details = cause.details()  # type: ignore[attr-defined]  # grpc.Call has it
        if isinstance(details, str):
            return details
    return str(error)


def stored_blob_path(registry: testbed.Registry, digest: str) -> Path:
    """Where docker-registry's filesystem driver keeps ``digest``'s bytes."""
    algorithm, _, hexd = digest.partition(":")
    return registry.workdir / "data/docker/registry/v2/blobs" / algorithm / hexd[:2] / hexd / "data"


def corrupt_blob(registry: testbed.Registry, digest: str, *, offset: int | None = None) -> int:
    """Flip one byte (the middle one unless ``offset``) of the stored blob, so the registry
    serves bytes that do not hash to ``digest``; returns the offset flipped."""
    path = stored_blob_path(registry, digest)
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return at


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def registry_bytes(registry: testbed.Registry, digest: str, since_mark: int) -> int:
    """Body bytes the registry served for blob ``digest`` (GETs, 200 and 206) since
    ``since_mark`` (:meth:`testbed.Registry.mark`), from its access log."""
    return sum(
        r.bytes
        for r in registry.records_since(since_mark)
        if r.method == "GET" and _path_only(r.path).endswith(f"/blobs/{digest}")
    )


def ingest_ref(digest: str) -> str:
    """The ref containerd's CRI pull gives a layer's ingest (ListStatuses)."""
    return f"layer-{digest}"


@dataclass(frozen=True)
class CancelledPull:
    offset_bytes: int  # the ingest's offset when the call was cancelled
    total_bytes: int
    ingest_left: bool  # whether containerd kept the partial ingest (it deletes it: 1.6.20)
    error_code: grpc.StatusCode | None  # what the cancelled future reported


def cancel_pull_at_fraction(
    containerd: testbed.Containerd,
    ctrd: ContainerdClient,
    ref: str,
    layer_digest: str,
    layer_size: int,
    *,
    fraction: float = 0.5,
    auth: RegistryAuth | None = None,
    timeout_seconds: float = 120.0,
    ingest_gone_seconds: float = 10.0,
) -> CancelledPull:
    """Start CRI PullImage of ``ref``, watch containerd's ListStatuses for the layer's
    offset and cancel the call once it reaches ``fraction`` of ``layer_size``; then wait
    (up to ``ingest_gone_seconds``) for containerd to drop the ingest. The link must be
    slow enough to observe the fraction (a throttled proxy), else AssertionError."""
    request = pb.PullImageRequest(image=pb.ImageSpec(image=ref))
    if auth is not None:
        request.auth.CopyFrom(pb.AuthConfig(username=auth.username, password=auth.password))
    channel = grpc.insecure_channel(containerd.endpoint)
    try:
        call = channel.unary_unary(
            _PULL_IMAGE,
            request_serializer=pb.PullImageRequest.SerializeToString,
            response_deserializer=pb.PullImageResponse.FromString,
        )
        future = call.future(request, timeout=timeout_seconds)
        target = int(layer_size * fraction)
        deadline = time.monotonic() + timeout_seconds
        offset = 0
        while time.monotonic() < deadline:
            status = ctrd.status(ingest_ref(layer_digest))
            if status is not None and status.offset_bytes >= target:
                offset = status.offset_bytes
                future.cancel()
                break
            if future.done():
                raise AssertionError(
                    f"pull of {ref} ended before {fraction:.0%} of the layer: slow the link"
                )
            time.sleep(0.01)
        else:
            future.cancel()
            raise AssertionError(f"the layer of {ref} did not reach {target} bytes")
        code: grpc.StatusCode | None = None
        try:
            future.result(timeout=10)
        except grpc.FutureCancelledError:
            code = grpc.StatusCode.CANCELLED
        except grpc.RpcError as e:
            code = e.code()
        gone_by = time.monotonic() + ingest_gone_seconds
        while ctrd.status(ingest_ref(layer_digest)) is not None and time.monotonic() < gone_by:
            time.sleep(0.05)
        left = ctrd.status(ingest_ref(layer_digest)) is not None
        return CancelledPull(offset, layer_size, left, code)
    finally:
        channel.close()
