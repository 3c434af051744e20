"""Talking to one upstream registry (and the caches configured in front of it) with aiohttp.

One :class:`Upstream` per configured registry: its own connection pool and TLS context
(the CA, client certificate and ``skip_verify`` of its config, as containerd's hosts.toml
allows). :meth:`Upstream.request` tries the upstream's own mirrors in order (another cache:
Spegel, Dragonfly, a second mlnode — each gets ``?ns=<registry>`` as containerd would send
it) and then the registry's endpoint; a mirror that refuses the connection, answers 404 or
5xx is skipped, as containerd skips hosts. The endpoint's answer, whatever it is, is the
answer.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from mlnode.mirror._config import UpstreamConfig

__all__ = ["Upstream", "UpstreamFailure", "make_ssl_context"]

# Request headers a client's request carries on to the upstream (the rest are hop-by-hop
# or the mirror's own business).
FORWARDED_REQUEST_HEADERS = ("Authorization", "Accept", "User-Agent")


@dataclass(frozen=True)
class UpstreamFailure(Exception):
    """The upstream could not be reached or stopped answering; ``status`` is what the
    client is told (502 unreachable, 504 stalled, or the upstream's own status)."""

    status: int
    reason: str
    #: the metrics label when not the status: "digest" for a sha256 mismatch
    kind: str = ""

    @property
    def label(self) -> str:
        return self.kind or str(self.status)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


def make_ssl_context(cfg: UpstreamConfig) -> ssl.SSLContext | bool:
    if not cfg.endpoint.startswith("https:") and not any(
        m.startswith("https:") for m in cfg.mirrors
    ):
        return True  # plain http: aiohttp's default, never used
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    if cfg.ca_file:
        ctx.load_default_certs()  # the registry CA is added to the system's, as containerd does
    if cfg.client_cert and cfg.client_key:
        ctx.load_cert_chain(str(cfg.client_cert), str(cfg.client_key))
    if cfg.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Upstream:
    def __init__(self, cfg: UpstreamConfig, *, stall_seconds: float, pool_size: int = 64) -> None:
        self.cfg = cfg
        self.registry = cfg.registry
        self.stall_seconds = stall_seconds
        self._ssl = make_ssl_context(cfg)
        self._session: aiohttp.ClientSession | None = None
        self._pool_size = pool_size

    def plain_url(self, path: str) -> str | None:
        """The endpoint's URL for ``path`` when a request may bypass aiohttp (plain http,
        no mirrors of its own to try first); else None."""
        if self.cfg.mirrors or not self.cfg.endpoint.startswith("http://"):
            return None
        return f"{self.cfg.endpoint}{path}"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, ssl=self._ssl, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10.0, sock_read=self.stall_seconds
                ),
                # the upstream's redirects (to blob storage: S3, GCS) are followed; a
                # redirect drops Authorization when it leaves the host (aiohttp does)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _urls(self, path: str) -> list[tuple[str, bool]]:
        ns = quote(self.registry, safe="")
        out = [(f"{m}{path}?ns={ns}", True) for m in self.cfg.mirrors]
        out.append((f"{self.cfg.endpoint}{path}", False))
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
    ) -> aiohttp.ClientResponse:
        """The response for ``method path`` (``/v2/...``); the caller releases it.

        Raises :class:`UpstreamFailure` (502) when nothing could be reached."""
        last: str = "no host"
        for url, is_mirror in self._urls(path):
            try:
                resp = await self.session().request(
                    method, url, headers=dict(headers), allow_redirects=True
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                last = f"{url}: {type(e).__name__}: {e}"
                continue
            if is_mirror and (resp.status == 404 or resp.status >= 500):
                last = f"{url}: {resp.status}"
                resp.release()
                continue
            return resp
        raise UpstreamFailure(502, f"upstream {self.registry} unreachable ({last})")
