"""Translate gRPC failures into mlnode's runtime exceptions (see :mod:`mlnode.errors`).

    grpc.RpcError / socket probe            raised as
    ────────────────────────────────────    ─────────────────────────────────────────
    socket file missing, ECONNREFUSED,      RuntimeUnavailable  (names the socket path;
      UNAVAILABLE, connect timeout            retryable)
    UNAVAILABLE "… locked" on a content     IngestLocked        (a RuntimeUnavailable)
      call (another writer holds the ref)
    EACCES on the socket, PERMISSION_DENIED RuntimePermissionDenied
    NOT_FOUND on an image call              ImageNotFound
    NOT_FOUND on a content/lease call       ContentNotFound     (a RuntimeCallFailed)
    NOT_FOUND on a container/sandbox call   ContainerNotFound   (a RuntimeCallFailed)
    ALREADY_EXISTS                          AlreadyExists       (a RuntimeCallFailed)
    FAILED_PRECONDITION                     FailedPrecondition  (a RuntimeCallFailed;
                                              containerd: commit with wrong size/digest)
    UNKNOWN, CANCELLED, INTERNAL, ABORTED   RuntimeCallInterrupted (retryable: a call
                                              cut short, e.g. by a runtime restart)
    anything else                           RuntimeCallFailed(code=<StatusCode name>)

Whether a failure is worth retrying is its type (:class:`mlnode.errors.Retryable`),
decided here once; callers never compare codes or messages.

Every message is one line and names the endpoint (``unix:///…``) and the RPC.
"""

from __future__ import annotations

import grpc

from mlnode.errors import (
    ImageNotFound,
    RuntimeCallFailed,
    RuntimeCallInterrupted,
    RuntimeError_,
    RuntimePermissionDenied,
    RuntimeUnavailable,
)

__all__ = [
    "AlreadyExists",
    "ContainerNotFound",
    "ContentNotFound",
    "FailedPrecondition",
    "IngestLocked",
    "one_line",
    "translate_rpc_error",
]

_MAX_DETAIL_CHARS = 300
_INTERRUPTED = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


class AlreadyExists(RuntimeCallFailed):
    """The object exists already, e.g. a blob whose digest is already in the content store."""


class ContentNotFound(RuntimeCallFailed):
    """No blob, ingest, lease or image record by that name in the namespace."""


class ContainerNotFound(RuntimeCallFailed):
    """No CRI container or pod sandbox by that id."""


class FailedPrecondition(RuntimeCallFailed):
    """The runtime refused the call in this state, e.g. a commit whose bytes do not have
    the expected size or digest, or a write on a closed stream."""


class IngestLocked(RuntimeUnavailable):
    """Another writer holds containerd's lock on this ingest ref (retryable: it may end)."""


def one_line(text: str | None, limit: int = _MAX_DETAIL_CHARS) -> str:
    """Collapse whitespace and cut ``text`` so an error message stays one readable line.

    A long message loses its middle, not its end: containerd's errors are Go error chains
    whose root cause comes last ("failed to pull ...: failed to extract layer ...: write
    /var/lib/containerd/...: no space left on device")."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    head = limit // 3
    tail = limit - head - 3
    return f"{flat[:head]} … {flat[-tail:]}"


def translate_rpc_error(
    err: grpc.RpcError,
    *,
    endpoint: str,
    method: str,
    not_found: type[RuntimeError_] = ImageNotFound,
) -> RuntimeError_:
    """Map a failed call to our exception; the caller raises it ``from err``."""
    code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
    details = one_line(err.details() if callable(getattr(err, "details", None)) else str(err))
    code_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if code is grpc.StatusCode.UNAVAILABLE:
        if method.startswith("Content/") and "locked" in details:
            return IngestLocked(f"{method}: runtime unavailable: {details}", endpoint=endpoint)
        return RuntimeUnavailable(f"{method}: runtime unavailable: {details}", endpoint=endpoint)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return RuntimePermissionDenied(f"{method}: permission denied: {details}", endpoint=endpoint)
    if code is grpc.StatusCode.NOT_FOUND:
        if issubclass(not_found, RuntimeCallFailed):
            return not_found(f"{method}: not found: {details}", endpoint=endpoint, code=code_name)
        return not_found(f"{method}: not found: {details}", endpoint=endpoint)
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(
            f"{method}: already exists: {details}", endpoint=endpoint, code=code_name
        )
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(
            f"{method}: {details or 'call failed'}", endpoint=endpoint, code=code_name
        )
    interrupted = code in _INTERRUPTED or not isinstance(code, grpc.StatusCode)
    kind = RuntimeCallInterrupted if interrupted else RuntimeCallFailed
    return kind(f"{method}: {details or 'call failed'}", endpoint=endpoint, code=code_name)
