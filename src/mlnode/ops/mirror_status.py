"""The node mirror's status, read over HTTP: ``GET <mirror>/mlnode/v1/status``.

:mod:`mlnode.ops` may not import :mod:`mlnode.mirror` (they are siblings), so ``mlnode
progress`` and ``mlnode pull`` read what the mirror is doing the way any client would:
this module fetches the status document (schema ``mlnode.mirror.status/v1``, docs/SPEC9),
checks every field and returns frozen dataclasses. A mirror that does not answer raises
:class:`MirrorUnreachable`; an answer that is not that schema raises
:class:`MirrorStatusInvalid`; both name the endpoint.

:func:`discover_mirror` finds the mirror a node is wired to: the first host of a
registry's ``hosts.toml`` under containerd's ``config_path`` that is an ``http://``
loopback URL whose status answers, else :data:`DEFAULT_MIRROR_URL` if it answers.
:func:`wired_mirror` answers the same question for one registry (``mlnode pull``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from mlnode.errors import InputError, RegistryError, Retryable
from mlnode.hostnames import is_loopback_host
from mlnode.registry.hosts import hosts_for, parse_hosts_toml

__all__ = [
    "BLOB_STATES",
    "DEFAULT_MIRROR_URL",
    "SCHEMA",
    "STATUS_PATH",
    "MirrorBlob",
    "MirrorCache",
    "MirrorStatus",
    "MirrorStatusError",
    "MirrorStatusInvalid",
    "MirrorUnreachable",
    "StatusReader",
    "discover_mirror",
    "fetch_status",
    "loopback_http_base",
    "mirror_base_url",
    "parse_status",
    "wired_mirror",
]

SCHEMA = "mlnode.mirror.status/v1"
STATUS_PATH = "/mlnode/v1/status"
#: The mirror's default listen address (``mlnode.mirror.DEFAULT_LISTEN``) as a URL.
DEFAULT_MIRROR_URL = "http://127.0.0.1:6055"
BLOB_STATES = frozenset({"fetching", "verifying", "complete", "failed"})
#: Seconds to wait for a status answer: it is local, so a slow one is as good as none.
STATUS_TIMEOUT_SECONDS = 2.0


class MirrorStatusError(RegistryError):
    """The mirror's status endpoint did not give a usable answer (exit 4)."""


class MirrorUnreachable(MirrorStatusError, Retryable):
    """No HTTP answer from the mirror (refused, timed out), or not 200."""


class MirrorStatusInvalid(MirrorStatusError):
    """The answer is not JSON, or not the ``mlnode.mirror.status/v1`` schema."""


@dataclass(frozen=True)
class MirrorBlob:
    """One blob the mirror is fetching or serving (or finished in the last minute)."""

    digest: str
    registry: str
    repository: str
    image: str | None
    state: str
    size_bytes: int
    upstream_bytes: int  # received from the upstream registry
    contiguous_bytes: int
    served_bytes: int  # sent to clients (containerd), summed over clients
    clients: int
    connections: int
    rate_bytes_per_second: float
    eta_seconds: float | None
    started_monotonic: float
    error: str | None


@dataclass(frozen=True)
class MirrorCache:
    dir: str
    disk_bytes: int
    max_bytes: int


@dataclass(frozen=True)
class MirrorStatus:
    url: str  # the base URL it was read from
    pid: int
    listen: str
    cache: MirrorCache
    upstreams: tuple[str, ...]
    blobs: tuple[MirrorBlob, ...]

    def blob(self, digest: str) -> MirrorBlob | None:
        """The mirror's newest entry for ``digest`` (None if it has none)."""
        found = [b for b in self.blobs if b.digest == digest]
        return max(found, key=lambda b: b.started_monotonic) if found else None


StatusReader = Callable[[str], MirrorStatus]


# --- parsing -------------------------------------------------------------------------


class _Fields:
    """Typed reads of one JSON object; a wrong field raises naming its path."""

    def __init__(self, obj: object, where: str, endpoint: str) -> None:
        self.where, self.endpoint = where, endpoint
        if not isinstance(obj, dict):
            self.bad(f"{where or 'the document'} is not an object")
        self.obj: Mapping[str, Any] = obj

    def bad(self, what: str) -> NoReturn:
        raise MirrorStatusInvalid(f"not a {SCHEMA} document: {what}", url=self.endpoint)

    def _get(self, key: str) -> object:
        if key not in self.obj:
            self.bad(f"{self.where}{key} is missing")
        return self.obj[key]

    def str_(self, key: str, *, null: bool = False) -> Any:
        v = self._get(key)
        if (v is None and null) or isinstance(v, str):
            return v
        self.bad(f"{self.where}{key} is not a string{' or null' if null else ''}")

    def int_(self, key: str) -> int:
        v = self._get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
        self.bad(f"{self.where}{key} is not an integer >= 0")

    def float_(self, key: str, *, null: bool = False) -> Any:
        v = self._get(key)
        if v is None and null:
            return None
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        self.bad(f"{self.where}{key} is not a number{' or null' if null else ''}")

    def list_(self, key: str) -> list[Any]:
        v = self._get(key)
        if isinstance(v, list):
            return v
        self.bad(f"{self.where}{key} is not a list")


def _blob(obj: object, where: str, endpoint: str) -> MirrorBlob:
    f = _Fields(obj, where, endpoint)
    state = f.str_("state")
    if state not in BLOB_STATES:
        f.bad(f"{where}state is {state!r}, not one of {', '.join(sorted(BLOB_STATES))}")
    digest = f.str_("digest")
    if not digest.startswith("sha256:"):
        f.bad(f"{where}digest {digest!r} is not sha256:<hex>")
    return MirrorBlob(
        digest=digest,
        registry=f.str_("registry"),
        repository=f.str_("repository"),
        image=f.str_("image", null=True),
        state=state,
        size_bytes=f.int_("size_bytes"),
        upstream_bytes=f.int_("upstream_bytes"),
        contiguous_bytes=f.int_("contiguous_bytes"),
        served_bytes=f.int_("served_bytes"),
        clients=f.int_("clients"),
        connections=f.int_("connections"),
        rate_bytes_per_second=f.float_("rate_bytes_per_second"),
        eta_seconds=f.float_("eta_seconds", null=True),
        started_monotonic=f.float_("started_monotonic"),
        error=f.str_("error", null=True),
    )


def parse_status(doc: object, *, url: str) -> MirrorStatus:
    """The status document ``doc`` (parsed JSON) as read from the mirror at ``url``."""
    endpoint = url.rstrip("/") + STATUS_PATH
    f = _Fields(doc, "", endpoint)
    if f.obj.get("schema") != SCHEMA:
        f.bad(f"schema is {f.obj.get('schema')!r}")
    cache = _Fields(f.obj.get("cache"), "cache.", endpoint)
    upstreams = f.list_("upstreams")
    if not all(isinstance(u, str) for u in upstreams):
        f.bad("upstreams is not a list of strings")
    return MirrorStatus(
        url=url.rstrip("/"),
        pid=f.int_("pid"),
        listen=f.str_("listen"),
        cache=MirrorCache(
            dir=cache.str_("dir"),
            disk_bytes=cache.int_("disk_bytes"),
            max_bytes=cache.int_("max_bytes"),
        ),
        upstreams=tuple(upstreams),
        blobs=tuple(_blob(b, f"blobs[{i}].", endpoint) for i, b in enumerate(f.list_("blobs"))),
    )


# --- reading it over HTTP -------------------------------------------------------------


def mirror_base_url(text: str) -> str:
    """``http://127.0.0.1:6055`` from what a person typed (``127.0.0.1:6055`` too).

    Raises ValueError for something that is not an http(s) host[:port] URL."""
    value = text.strip()
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"not a mirror URL (http://HOST:PORT): {text!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"a mirror URL has no path: {text!r}")
    return f"{parts.scheme}://{parts.netloc}"


def fetch_status(
    url: str, *, timeout_seconds: float = STATUS_TIMEOUT_SECONDS, client: httpx.Client | None = None
) -> MirrorStatus:
    """``GET <url>/mlnode/v1/status``, checked; ``url`` is the mirror's base URL."""
    base = url.rstrip("/")
    endpoint = base + STATUS_PATH
    try:
        if client is not None:
            r = client.get(endpoint, timeout=timeout_seconds)
        else:
            r = httpx.get(endpoint, timeout=timeout_seconds, trust_env=False)
    except httpx.HTTPError as e:
        raise MirrorUnreachable(f"unreachable: {e or type(e).__name__}", url=endpoint) from e
    if r.status_code != 200:
        raise MirrorUnreachable(
            f"answered HTTP {r.status_code}", url=endpoint, status=r.status_code
        )
    try:
        doc = json.loads(r.content)
    except ValueError as e:
        raise MirrorStatusInvalid(f"not JSON: {e}", url=endpoint) from e
    return parse_status(doc, url=base)


def loopback_http_base(scheme: str, host: str) -> str | None:
    """``http://host:port`` when a hosts.toml host is plain HTTP on loopback, else None."""
    if scheme != "http" or not is_loopback_host(host):
        return None
    return f"http://{host}"


def _first_hosts(config_path: Path) -> list[str]:
    """The first host of every ``<config_path>/<dir>/hosts.toml`` that is http loopback,
    in directory-name order (``_default`` included); unreadable files are passed over
    (``mlnode lint`` reports those)."""
    out: list[str] = []
    try:
        dirs = sorted(p for p in config_path.iterdir() if p.is_dir())
    except OSError:
        return out
    for d in dirs:
        toml_path = d / "hosts.toml"
        try:
            hosts = parse_hosts_toml(toml_path.read_text(), namespace=d.name, path=toml_path)
        except (OSError, UnicodeDecodeError, InputError):
            continue
        base = loopback_http_base(hosts[0].scheme, hosts[0].host) if hosts else None
        if base is not None and base not in out:
            out.append(base)
    return out


def discover_mirror(
    config_path: Path | None, *, read: StatusReader = fetch_status
) -> MirrorStatus | None:
    """The mirror this node is wired to (its status), or None when none answers."""
    candidates = _first_hosts(config_path) if config_path is not None else []
    if DEFAULT_MIRROR_URL not in candidates:
        candidates.append(DEFAULT_MIRROR_URL)
    for url in candidates:
        try:
            return read(url)
        except MirrorStatusError:
            continue
    return None


def wired_mirror(
    registry: str, config_path: Path | None, *, read: StatusReader = fetch_status
) -> tuple[MirrorStatus | None, str]:
    """Whether the node is wired for ``registry`` (SPEC9): the first host of its
    hosts.toml is an http loopback URL whose status answers. Returns the status (or None)
    and one line saying why (for ``--via mirror`` refusing, and for the record)."""
    if config_path is None:
        return None, "the running containerd names no registry config_path"
    hosts = hosts_for(registry, config_path)
    first = hosts[0]
    base = loopback_http_base(first.scheme, first.host)
    if base is None:
        return None, (
            f"the first host for {registry} under {config_path} is {first.base_url}, "
            "not an http loopback mirror"
        )
    try:
        return read(base), f"{registry} is served through the mirror at {base}"
    except MirrorStatusError as e:
        return None, f"the first host for {registry} is {base}, but {e}"
