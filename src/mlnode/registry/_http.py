"""HTTP answers as mlnode sees them: a blob body, and failures as typed registry errors.

Whether a failure is worth retrying is decided here, once, as the error's type
(:class:`mlnode.errors.Retryable`): see :func:`status_error` and :func:`network_error`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from mlnode.errors import (
    RegistryConnectionLost,
    RegistryError,
    RegistryStalled,
    RegistryUnavailable,
)
from mlnode.registry.hosts import RegistryHost

__all__ = ["BlobStream", "error_detail", "network_error", "status_error"]

_MAX_ERROR_CHARS = 200


def error_detail(response: httpx.Response) -> str:
    """``MANIFEST_UNKNOWN: manifest unknown`` from a distribution error body, or the reason."""
    try:
        body = response.json()
        errs = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            code = str(errs[0].get("code", ""))
            msg = str(errs[0].get("message", ""))
            return f"{code}: {msg}"[:_MAX_ERROR_CHARS] if code else msg[:_MAX_ERROR_CHARS]
    except (ValueError, httpx.ResponseNotRead):
        pass
    return response.reason_phrase or f"HTTP {response.status_code}"


def status_error(message: str, *, url: str, status: int | None) -> RegistryError:
    """A failed answer as an error whose type says whether a retry may help."""
    retryable = status is None or status >= 500 or status in (408, 429)
    kind = RegistryUnavailable if retryable else RegistryError
    return kind(message, url=url, status=status)


def network_error(e: httpx.HTTPError, *, url: str | None, prefix: str = "") -> RegistryError:
    """An httpx failure as ours: a read timeout is a stall, a transport failure a lost
    connection (both retryable); anything else (decoding, redirects) is permanent."""
    if url is None and isinstance(e, httpx.RequestError):
        with contextlib.suppress(RuntimeError):
            url = str(e.request.url)
    message = prefix + _describe(e)
    if isinstance(e, httpx.ReadTimeout):
        return RegistryStalled(message, url=url)
    if isinstance(e, httpx.TransportError):  # includes the other timeouts
        return RegistryConnectionLost(message, url=url)
    return RegistryError(message, url=url)


class BlobStream:
    """An open blob body from ``start`` (and up to ``end`` inclusive, if given).

    If the registry ignores ``Range`` and sends the whole blob, the leading bytes are
    skipped here, so callers always see the bytes they asked for.
    """

    def __init__(
        self, response: httpx.Response, *, start: int, end: int | None, host: RegistryHost
    ) -> None:
        self.response = response
        self.host = host
        self.start = start
        self.end = end
        self.url = str(response.request.url)
        self._skip = start if response.status_code == 200 else 0
        self._left = None if end is None else end - start + 1

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives (one piece per socket read, up to 1 MiB): nothing is held
        back, so a cut connection loses no byte that reached this process."""
        try:
            yield from self._iter_bytes()
        except httpx.HTTPError as e:
            raise network_error(e, url=self.url) from e

    def _iter_bytes(self) -> Iterator[bytes]:
        r = self.response
        # A body already in memory (e.g. from a mock transport) cannot be streamed again.
        for data in iter([r.content]) if r.is_stream_consumed else r.iter_raw():
            if self._skip:
                if len(data) <= self._skip:
                    self._skip -= len(data)
                    continue
                data = data[self._skip :]
                self._skip = 0
            if self._left is not None:
                if len(data) >= self._left:
                    yield data[: self._left]
                    self._left = 0
                    return
                self._left -= len(data)
            yield data

    def close(self) -> None:
        self.response.close()


def _describe(e: httpx.HTTPError) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if text != type(e).__name__ else text
