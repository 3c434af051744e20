"""The one place that opens gRPC channels to a runtime socket and runs calls on them.

A missing or refused socket is found with a plain ``AF_UNIX`` connect before gRPC is
involved, so it fails in milliseconds with the path in the message instead of gRPC's
reconnect backoff.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from mlnode.errors import (
    ImageNotFound,
    RuntimeError_,
    RuntimePermissionDenied,
    RuntimeUnavailable,
)
from mlnode.runtime.discovery import parse_endpoint
from mlnode.runtime.errors import one_line, translate_rpc_error

__all__ = ["DEFAULT_TIMEOUT", "Connection", "Metadata", "probe_socket"]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Metadata = Sequence[tuple[str, str]]


class _Default(enum.Enum):
    TIMEOUT = "default"


DEFAULT_TIMEOUT = _Default.TIMEOUT
"""Use the connection's ``call_timeout_seconds``."""

# containerd accepts 16 MiB; stay far below so a chunk never hits a message limit.
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def probe_socket(path: Path, *, endpoint: str, timeout_seconds: float = 2.0) -> None:
    """Connect once to the unix socket at ``path`` and close; raise our error if that fails."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RuntimeUnavailable(
            f"no socket at {path} (is the runtime running?)", endpoint=endpoint
        ) from None
    except PermissionError:
        raise RuntimePermissionDenied(
            f"cannot look at {path}: permission denied", endpoint=endpoint
        ) from None
    if not stat.S_ISSOCK(mode):
        raise RuntimeUnavailable(f"{path} exists but is not a socket", endpoint=endpoint)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_seconds)
    try:
        sock.connect(str(path))
    except PermissionError:
        raise RuntimePermissionDenied(
            f"permission denied connecting to {path} (run as root or a user that may)",
            endpoint=endpoint,
        ) from None
    except ConnectionRefusedError:
        raise RuntimeUnavailable(
            f"connection refused on {path} (stale socket, runtime down)", endpoint=endpoint
        ) from None
    except TimeoutError:
        raise RuntimeUnavailable(
            f"no answer on {path} within {timeout_seconds:g}s", endpoint=endpoint
        ) from None
    except OSError as e:
        reason = errno.errorcode.get(e.errno or 0, "") or one_line(str(e))
        raise RuntimeUnavailable(f"cannot connect to {path}: {reason}", endpoint=endpoint) from None
    finally:
        sock.close()


class Connection:
    """A gRPC channel to one runtime socket, with typed unary and streaming calls."""

    def __init__(
        self,
        endpoint: str | Path,
        *,
        connect_timeout_seconds: float = 2.0,
        call_timeout_seconds: float | None = 120.0,
    ) -> None:
        self.socket_path = parse_endpoint(str(endpoint))
        self.endpoint = f"unix://{self.socket_path}"
        self.call_timeout_seconds = call_timeout_seconds
        probe_socket(
            self.socket_path, endpoint=self.endpoint, timeout_seconds=connect_timeout_seconds
        )
        self.channel = grpc.insecure_channel(
            self.endpoint,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        try:
            grpc.channel_ready_future(self.channel).result(timeout=connect_timeout_seconds)
        except grpc.FutureTimeoutError:
            self.channel.close()
            raise RuntimeUnavailable(
                f"no gRPC answer on {self.socket_path} within {connect_timeout_seconds:g}s",
                endpoint=self.endpoint,
            ) from None

    def close(self) -> None:
        self.channel.close()

    def unary(
        self,
        method: str,
        request: Message,
        response_type: type[Resp],
        *,
        metadata: Metadata = (),
        timeout_seconds: float | _Default | None = DEFAULT_TIMEOUT,
        not_found: type[RuntimeError_] = ImageNotFound,
    ) -> Resp:
        """Call ``/package.Service/Method``; ``None`` waits forever, the default is the
        connection's ``call_timeout_seconds``."""
        call: grpc.UnaryUnaryMultiCallable[Message, Resp] = self.channel.unary_unary(
            method,
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        timeout = (
            self.call_timeout_seconds if isinstance(timeout_seconds, _Default) else timeout_seconds
        )
        try:
            return call(request, timeout=timeout, metadata=tuple(metadata) or None)
        except grpc.RpcError as e:
            raise translate_rpc_error(
                e, endpoint=self.endpoint, method=_short(method), not_found=not_found
            ) from e

    def server_stream(
        self,
        method: str,
        request: Message,
        response_type: type[Resp],
        *,
        metadata: Metadata = (),
        timeout_seconds: float | None = None,
        not_found: type[RuntimeError_] = ImageNotFound,
    ) -> Iterator[Resp]:
        call: grpc.UnaryStreamMultiCallable[Message, Resp] = self.channel.unary_stream(
            method,
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        try:
            yield from call(request, timeout=timeout_seconds, metadata=tuple(metadata) or None)
        except grpc.RpcError as e:
            raise translate_rpc_error(
                e, endpoint=self.endpoint, method=_short(method), not_found=not_found
            ) from e

    def bidi_stream(
        self,
        method: str,
        requests: Iterator[Req],
        response_type: type[Resp],
        *,
        metadata: Metadata = (),
    ) -> Iterator[Resp]:
        """Open a bidirectional stream; errors surface as grpc.RpcError from the iterator."""
        call: grpc.StreamStreamMultiCallable[Req, Resp] = self.channel.stream_stream(
            method,
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        # The call object is its own iterator (grpc-stubs only declares __iter__).
        return iter(call(requests, metadata=tuple(metadata) or None))


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _short(method: str) -> str:
    """``/runtime.v1.ImageService/PullImage`` → ``ImageService/PullImage``."""
    service, _, name = method.strip("/").partition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"
