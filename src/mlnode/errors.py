"""The exceptions mlnode raises, mapped to exit codes at the CLI boundary.

    MlnodeError                     exit 1 unless a subclass says otherwise
    ├── UsageError                  exit 2: an option is missing, malformed or contradicts another
    │   ├── VersionError            exit 2: a version string we cannot parse or do not know
    │   └── NotApplicable           formats.render: a format that is not this runtime's
    ├── InvalidValue                exit 2: a value that does not parse (a size, duration,
    │                               flag value); also a ValueError. The caller that knows
    │                               where the value came from re-raises it with the option
    │                               or file:line
    ├── InputError                  exit 2: a file we cannot use; carries path and line
    │   ├── RootEscape              rootpath: a node path that would leave --root
    │   ├── ApplyRefused            ops.apply: the node's files cannot be changed safely
    │   ├── SnapshotError           gc: a --snapshot file that is not a snapshot
    │   └── InvalidGcInput          gc: impossible GC input (e.g. InvalidCapacity)
    ├── RuntimeError_               exit 3: the container runtime
    │   ├── RuntimeUnavailable  (R) socket missing, connection refused, runtime down
    │   ├── RuntimePermissionDenied socket exists but we may not talk to it
    │   │   └── IngestLocked    (R) runtime.errors: another writer holds the ingest
    │   ├── ImageNotFound           the runtime or registry does not know the image
    │   └── RuntimeCallFailed       any other gRPC failure, with the status code
    │       ├── RuntimeCallInterrupted (R) UNKNOWN, CANCELLED, INTERNAL, ABORTED: cut short
    │       └── AlreadyExists, ContentNotFound, ContainerNotFound, FailedPrecondition
    │                               runtime.errors: the status codes callers act on
    ├── RegistryError               exit 4: the registry answered with an error or not at all
    │   ├── RegistryUnavailable (R) 5xx, 408, 429, or no HTTP answer
    │   │   ├── RegistryConnectionLost (R) connection dropped or refused, body ended early
    │   │   └── RegistryStalled     (R) no new byte within the read (stall) deadline
    │   ├── DigestMismatch          bytes received do not hash to the digest asked for
    │   └── MirrorStatusError       ops.mirror_status: the node mirror's status endpoint
    │       ├── MirrorUnreachable (R) no answer, or not 200
    │       └── MirrorStatusInvalid not JSON, or not the mlnode.mirror.status/v1 schema
    ├── InsufficientSpace           exit 5: the image cannot fit, even after GC
    ├── PullStalled                 exit 6: no new byte within the stall deadline
    ├── ApplyError                  exit 7: applying settings to a node failed (files restored)
    │   ├── LockHeld                another apply holds the node lock
    │   └── VerificationFailed      the services did not come back healthy with the new values
    ├── KubeError                   exit 8: the Kubernetes API refused a request (4xx Status)
    │   └── KubeUnavailable     (R) no answer, TLS/connection failure, 5xx, 429
    └── SourceUnavailable           ops.verify, internal: a health source did not answer; the
                                    verifier records it as a failed check, it never escapes

Classes named with a module are defined there, next to the code that raises them.

(R) marks the :class:`Retryable` ones: the same call may succeed when tried again after a
wait (``mlnode pull`` retries them with backoff). Every other error is permanent: trying
again without changing something gives the same answer. Retryability is decided where a
failure is translated (:mod:`mlnode.runtime.errors` for gRPC status codes,
:mod:`mlnode.registry.client` for HTTP statuses and httpx failures), never by callers
reading codes or messages.

Every exception renders as one line (``str(exc)``) that names the file:line, option
or endpoint involved, so the CLI can print it as-is.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ApplyError",
    "DigestMismatch",
    "ImageNotFound",
    "InputError",
    "InsufficientSpace",
    "InvalidValue",
    "KubeError",
    "KubeUnavailable",
    "LockHeld",
    "MlnodeError",
    "PullStalled",
    "RegistryConnectionLost",
    "RegistryError",
    "RegistryStalled",
    "RegistryUnavailable",
    "Retryable",
    "RuntimeCallFailed",
    "RuntimeCallInterrupted",
    "RuntimeError_",
    "RuntimePermissionDenied",
    "RuntimeUnavailable",
    "UsageError",
    "VerificationFailed",
    "VersionError",
]


class MlnodeError(Exception):
    """Base of every error mlnode reports to a person."""

    exit_code: int = 1


class Retryable(Exception):
    """Marker mixin: the failure may pass, so the same call is worth trying again.

    Combined with an :class:`MlnodeError` subclass (which gives the exit code); catch it
    with ``except Retryable``. An error without it is permanent.
    """


class UsageError(MlnodeError):
    """An option is missing, malformed, or contradicts another one."""

    exit_code = 2

    def __init__(self, message: str, *, option: str | None = None) -> None:
        self.option = option
        super().__init__(f"{option}: {message}" if option else message)


class VersionError(UsageError):
    """A version string that cannot be parsed or is outside what mlnode knows."""


class InvalidValue(MlnodeError, ValueError):
    """A value that does not parse: a size, a duration, a flag value, a number.

    Raised by the value parsers (:mod:`mlnode.units`, :mod:`mlnode.knowledge.values`, the
    profile's value table), which do not know where the value came from; the caller that
    does catches it and raises a :class:`UsageError` naming the option or an
    :class:`InputError` naming file:line. Should one escape, it is still one line, exit 2.
    """

    exit_code = 2


class InputError(MlnodeError):
    """A file that cannot be used: unreadable, unparseable or holding an impossible value."""

    exit_code = 2

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class RuntimeError_(MlnodeError):
    """The container runtime could not do what was asked."""

    exit_code = 3

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


class RuntimeUnavailable(RuntimeError_, Retryable):
    """Socket missing, connection refused, or the runtime is not serving (it may come back,
    e.g. after a restart)."""


class RuntimePermissionDenied(RuntimeError_):
    """The socket exists but this user may not connect to it."""


class ImageNotFound(RuntimeError_):
    """The runtime (or the registry behind it) does not know this image."""


class RuntimeCallFailed(RuntimeError_):
    """Any other failed runtime call; ``code`` is the gRPC status code name."""

    def __init__(self, message: str, *, endpoint: str | None = None, code: str = "UNKNOWN"):
        self.code = code
        super().__init__(f"{message} ({code})", endpoint=endpoint)


class RuntimeCallInterrupted(RuntimeCallFailed, Retryable):
    """A call cut short rather than refused (gRPC UNKNOWN, CANCELLED, INTERNAL or ABORTED),
    e.g. a stream broken by a runtime restart: trying again may work."""


class RegistryError(MlnodeError):
    """The registry answered with an error, or did not answer."""

    exit_code = 4

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        self.url = url
        self.status = status
        #: the message without the URL in front
        self.detail = message
        super().__init__(f"{url}: {message}" if url else message)


class RegistryUnavailable(RegistryError, Retryable):
    """The registry answered 5xx, 408 or 429, or gave no HTTP answer: it may pass."""


class RegistryConnectionLost(RegistryUnavailable):
    """The connection could not be made or dropped, or a body ended before its length."""


class RegistryStalled(RegistryUnavailable):
    """No new byte arrived within the read deadline (``read_timeout_seconds``)."""


class DigestMismatch(RegistryError):
    """The bytes received do not hash to the digest that was asked for."""


class InsufficientSpace(MlnodeError):
    """The image cannot fit on the image filesystem, even after garbage collection."""

    exit_code = 5


class PullStalled(MlnodeError):
    """No new byte arrived within the stall deadline."""

    exit_code = 6


class ApplyError(MlnodeError):
    """Applying settings to a node failed; every file touched was restored."""

    exit_code = 7


class KubeError(MlnodeError):
    """The Kubernetes API refused a request (a 4xx ``Status``), e.g. RBAC forbids it."""

    exit_code = 8

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        self.url = url
        self.status = status
        self.detail = message
        super().__init__(f"{url}: {message}" if url else message)


class KubeUnavailable(KubeError, Retryable):
    """The Kubernetes API did not answer (connection, TLS, timeout) or answered 5xx/429."""


class LockHeld(ApplyError):
    """Another mlnode apply holds the node lock."""


class VerificationFailed(ApplyError):
    """After the restart the services were unhealthy or did not show the new values."""
