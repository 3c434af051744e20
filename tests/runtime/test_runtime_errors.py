"""How runtime failures surface: one line, the endpoint named, fast when the socket is gone."""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

import grpc
import pytest

from mlnode.errors import (
    Retryable,
    RuntimeCallFailed,
    RuntimeCallInterrupted,
    RuntimePermissionDenied,
    RuntimeUnavailable,
)
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.runtime.errors import (
    AlreadyExists,
    ContentNotFound,
    FailedPrecondition,
    IngestLocked,
    translate_rpc_error,
)


def test_missing_socket_fails_fast_naming_the_path(tmp_path: Path) -> None:
    sock = tmp_path / "nothing-here.sock"
    t0 = time.monotonic()
    with pytest.raises(RuntimeUnavailable) as e:
        CriClient(f"unix://{sock}")
    assert time.monotonic() - t0 < 2
    msg = str(e.value)
    assert msg == f"unix://{sock}: no socket at {sock} (is the runtime running?)"
    assert e.value.exit_code == 3
    with pytest.raises(RuntimeUnavailable):
        ContainerdClient(sock)


def test_stale_socket_is_connection_refused(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound, never listening: what a crashed runtime leaves behind
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeUnavailable, match="connection refused"):
            CriClient(path)
        assert time.monotonic() - t0 < 2
    finally:
        s.close()


def test_not_a_socket(tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_text("")
    with pytest.raises(RuntimeUnavailable, match="not a socket"):
        CriClient(f)


def test_listening_socket_that_is_not_grpc_times_out(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeUnavailable, match="no gRPC answer"):
            CriClient(path, connect_timeout_seconds=0.5)
        assert time.monotonic() - t0 < 2
    finally:
        s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to probe as another user")
def test_permission_denied_on_socket(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A root-only socket in a directory everyone may enter; a forked child drops to
    # nobody and connects (the venv's interpreter is not reachable for nobody here).
    d = Path("/tmp") / f"mlnode-perm-{os.getpid()}"
    d.mkdir(mode=0o755, exist_ok=True)
    path = d / "root-only.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    os.chmod(path, 0o600)
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():  # 3.12+ warns about fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            status = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                CriClient(path)
            except RuntimePermissionDenied as e:
                os.write(write_end, str(e).encode())
                status = 0
            except BaseException as e:
                os.write(write_end, repr(e).encode())
            finally:
                os._exit(status)
        os.close(write_end)
        _, wait_status = os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as f:
            message = f.read().decode()
        assert os.waitstatus_to_exitcode(wait_status) == 0, message
        assert message == (
            f"unix://{path}: permission denied connecting to {path} "
            "(run as root or a user that may)"
        )
    finally:
        s.close()
        path.unlink(missing_ok=True)
        d.rmdir()


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "details", "kind", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, "connection reset", RuntimeUnavailable, True),
        (
            grpc.StatusCode.UNAVAILABLE,
            "ref layer-sha256:ab locked: unavailable",
            IngestLocked,
            True,
        ),
        (grpc.StatusCode.UNKNOWN, "stream broken", RuntimeCallInterrupted, True),
        (grpc.StatusCode.INTERNAL, "transport", RuntimeCallInterrupted, True),
        (grpc.StatusCode.ABORTED, "aborted", RuntimeCallInterrupted, True),
        (grpc.StatusCode.CANCELLED, "cancelled", RuntimeCallInterrupted, True),
        (grpc.StatusCode.FAILED_PRECONDITION, "unexpected digest", FailedPrecondition, False),
        (grpc.StatusCode.ALREADY_EXISTS, "exists", AlreadyExists, False),
        (grpc.StatusCode.NOT_FOUND, "no such blob", ContentNotFound, False),
        (grpc.StatusCode.PERMISSION_DENIED, "no", RuntimePermissionDenied, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "bad", RuntimeCallFailed, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "slow", RuntimeCallFailed, False),
    ],
)
def test_retryability_is_the_translated_type(
    code: grpc.StatusCode, details: str, kind: type[Exception], retryable: bool
) -> None:
    err = translate_rpc_error(
        _RpcError(code, details),
        endpoint="unix:///run/c.sock",
        method="Content/Write",
        not_found=ContentNotFound,
    )
    assert type(err) is kind
    assert isinstance(err, Retryable) is retryable
    assert str(err).startswith("unix:///run/c.sock: Content/Write: ")
