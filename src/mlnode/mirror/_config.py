"""The mirror's configuration: a YAML file and/or command-line options, validated whole
before anything listens or fetches (a bad value is one ``file:line`` or option error).

```yaml
listen: 127.0.0.1:6055          # loopback by default: the mirror is not an open proxy
cache_dir: /var/lib/mlnode/mirror
cache_max_bytes: 200GiB         # the cache never holds more (sparse partial blobs counted)
retain_committed: false         # keep a blob after containerd has committed it
chunk_bytes: 16MiB              # one ranged upstream request
connections: 4                  # ranged upstream connections per blob
stall_seconds: 20               # no byte for this long on a connection: reconnect
retries: 6                      # reconnects in a row without progress before giving up
reap_seconds: 10                # how often committed blobs are looked for and dropped
unpack_factor: 2.0              # a compressed layer's unpacked size / its size (room check)
default_registry: docker.io     # for requests that carry no ?ns=
upstreams:
  - registry: docker.io         # the ?ns= value containerd sends (the image's registry)
    endpoint: https://registry-1.docker.io
  - registry: registry.internal:5000
    endpoint: https://registry.internal:5000
    ca_file: /etc/mlnode/registry-ca.pem
    client_cert: /etc/mlnode/client.pem
    client_key: /etc/mlnode/client-key.pem
    mirrors: [http://127.0.0.1:30020]   # another cache (Spegel, Dragonfly, an mlnode) first
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.errors import InputError, InvalidValue, UsageError
from mlnode.formats.yamlfile import read_yaml_file, yaml_line
from mlnode.hostnames import DOCKER_HUB_API, default_registry_url
from mlnode.units import parse_bytes

__all__ = [
    "DEFAULT_LISTEN",
    "DOCKER_HUB_ENDPOINT",
    "MirrorConfig",
    "UpstreamConfig",
    "canonical_registry",
    "check_config",
    "default_endpoint",
    "load_config",
    "parse_listen",
    "parse_upstream_option",
]

DEFAULT_LISTEN = "127.0.0.1:6055"
DOCKER_HUB_ENDPOINT = f"https://{DOCKER_HUB_API}"
_DOCKER_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class UpstreamConfig:
    """One registry the mirror may fetch from, keyed by its namespace host."""

    registry: str
    endpoint: str
    mirrors: tuple[str, ...] = ()
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    skip_verify: bool = False


@dataclass(frozen=True)
class MirrorConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 6055
    cache_dir: Path = DEFAULT_CACHE_DIR
    cache_max_bytes: int = 200 * 1024**3
    retain_committed: bool = False
    chunk_bytes: int = 16 * 1024**2
    connections: int = 4
    stall_seconds: float = 20.0
    retries: int = 6
    reap_seconds: float = 10.0
    #: a compressed layer's unpacked size ÷ its size, for the room asked before a fetch
    #: (as ``mlnode pull --unpack-factor``; 2.0 errs on the safe side for ML layers)
    unpack_factor: float = 2.0
    default_registry: str | None = None
    upstreams: Mapping[str, UpstreamConfig] = field(default_factory=dict)

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def upstream_for(self, namespace: str | None) -> UpstreamConfig | None:
        """The configured upstream for containerd's ``?ns=`` (None: not ours, 404)."""
        name = namespace if namespace else self.default_registry
        if not name:
            return None
        return self.upstreams.get(canonical_registry(name))


def canonical_registry(name: str) -> str:
    """docker.io's aliases are one registry (containerd sends ``ns=docker.io``)."""
    low = name.strip().lower()
    return "docker.io" if low in _DOCKER_ALIASES else low


def default_endpoint(registry: str) -> str:
    """The URL containerd itself would use for ``registry`` (https; http on loopback;
    registry-1.docker.io for docker.io): :func:`mlnode.hostnames.default_registry_url`."""
    return default_registry_url(canonical_registry(registry))


def _check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"{where}: {url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise InvalidValue(f"{where}: {url!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as e:
        raise InvalidValue(f"{where}: {url!r}: {e}") from None
    return url.rstrip("/")


_REGISTRY_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])"
    r"(?::[0-9]{1,5})?$"
)


def _check_registry(name: str, where: str) -> str:
    name = canonical_registry(name)
    if not _REGISTRY_RE.match(name):
        raise InvalidValue(f"{where}: {name!r} is not a registry host[:port]")
    return name


def parse_upstream_option(text: str) -> UpstreamConfig:
    """``--upstream REGISTRY=URL`` (or just ``REGISTRY``: the URL containerd would use)."""
    name, sep, url = text.partition("=")
    registry = _check_registry(name, "--upstream")
    endpoint = _check_url(url, "--upstream") if sep else default_endpoint(registry)
    return UpstreamConfig(registry=registry, endpoint=endpoint)


def parse_listen(text: str, where: str = "--listen") -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path:
        raise InvalidValue(f"{where}: {text!r} is not HOST:PORT")
    return parts.hostname, port


_KEYS = {
    "listen",
    "cache_dir",
    "cache_max_bytes",
    "retain_committed",
    "chunk_bytes",
    "connections",
    "stall_seconds",
    "retries",
    "reap_seconds",
    "unpack_factor",
    "default_registry",
    "upstreams",
}
_UPSTREAM_KEYS = {
    "registry",
    "endpoint",
    "mirrors",
    "ca_file",
    "client_cert",
    "client_key",
    "skip_verify",
}


_line = yaml_line


def _size(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise InvalidValue(f"{where}: expected a size such as 16MiB, not {value!r}")
    try:
        n = value if isinstance(value, int) else parse_bytes(str(value))
    except InvalidValue as e:
        raise InvalidValue(f"{where}: {e}") from None
    if n <= 0:
        raise InvalidValue(f"{where}: must be more than 0 bytes")
    return n


def _number(value: object, where: str, *, integer: bool, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"{where}: expected a number, not {value!r}")
    if integer and not isinstance(value, int):
        raise InvalidValue(f"{where}: expected a whole number, not {value!r}")
    if not low <= float(value) <= high:
        raise InvalidValue(f"{where}: {value!r} is outside {low:g}..{high:g}")
    return float(value)


def _upstream(node: Any, base: Path, where: str) -> UpstreamConfig:
    if not isinstance(node, Mapping):
        raise InvalidValue(f"{where}: each upstream is a mapping with registry and endpoint")
    unknown = sorted(set(node) - _UPSTREAM_KEYS)
    if unknown:
        raise InvalidValue(f"{where}: unknown key {unknown[0]!r}")
    if "registry" not in node:
        raise InvalidValue(f"{where}: registry is required")
    registry = _check_registry(str(node["registry"]), f"{where}: registry")
    endpoint = node.get("endpoint")
    endpoint = (
        _check_url(str(endpoint), f"{where}: endpoint") if endpoint else default_endpoint(registry)
    )
    mirrors = node.get("mirrors") or []
    if not isinstance(mirrors, Sequence) or isinstance(mirrors, str):
        raise InvalidValue(f"{where}: mirrors is a list of URLs")

    def path(key: str) -> Path | None:
        v = node.get(key)
        if v is None:
            return None
        p = base / str(v)
        if not p.is_file():
            raise InvalidValue(f"{where}: {key}: {p} is not a readable file")
        return p

    skip = node.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise InvalidValue(f"{where}: skip_verify is true or false")
    up = UpstreamConfig(
        registry=registry,
        endpoint=endpoint,
        mirrors=tuple(_check_url(str(m), f"{where}: mirrors") for m in mirrors),
        ca_file=path("ca_file"),
        client_cert=path("client_cert"),
        client_key=path("client_key"),
        skip_verify=skip,
    )
    if (up.client_cert is None) != (up.client_key is None):
        raise InvalidValue(f"{where}: client_cert and client_key go together")
    return up


def _apply_key(cfg: MirrorConfig, key: str, value: Any, doc: Any, base: Path) -> MirrorConfig:
    if key == "listen":
        host, port = parse_listen(str(value), "listen")
        return replace(cfg, listen_host=host, listen_port=port)
    if key == "cache_dir":
        return replace(cfg, cache_dir=base / str(value))
    if key == "cache_max_bytes":
        return replace(cfg, cache_max_bytes=_size(value, key))
    if key == "chunk_bytes":
        return replace(cfg, chunk_bytes=_size(value, key))
    if key == "retain_committed":
        if not isinstance(value, bool):
            raise InvalidValue("retain_committed: true or false")
        return replace(cfg, retain_committed=value)
    if key == "connections":
        return replace(cfg, connections=int(_number(value, key, integer=True, low=1, high=64)))
    if key == "retries":
        return replace(cfg, retries=int(_number(value, key, integer=True, low=0, high=100)))
    if key == "unpack_factor":
        return replace(cfg, unpack_factor=_number(value, key, integer=False, low=1.0, high=20.0))
    if key == "reap_seconds":
        return replace(cfg, reap_seconds=_number(value, key, integer=False, low=0.1, high=3600))
    if key == "stall_seconds":
        return replace(cfg, stall_seconds=_number(value, key, integer=False, low=0.1, high=3600))
    if key == "default_registry":
        return replace(cfg, default_registry=_check_registry(str(value), key))
    if not isinstance(value, list):
        raise InvalidValue("upstreams: a list of {registry, endpoint, ...}")
    ups = dict(cfg.upstreams)
    for i, item in enumerate(value):
        try:
            up = _upstream(item, base, f"upstreams[{i}]")
        except InvalidValue as e:
            raise _LineError(str(e), _line(value, i)) from None
        ups[up.registry] = up
    return replace(cfg, upstreams=ups)


class _LineError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_config(path: Path, cfg: MirrorConfig | None = None) -> MirrorConfig:
    """Read a mirror config file; relative paths in it are relative to the file."""
    cfg = cfg or MirrorConfig()
    doc = read_yaml_file(path)
    if doc is None:
        return cfg
    if not isinstance(doc, Mapping):
        raise InputError("the mirror config is a mapping of keys", path=path, line=1)
    base = path.parent
    for key in doc:
        if key not in _KEYS:
            raise InputError(f"unknown key {key!r}", path=path, line=_line(doc, str(key)))
        try:
            cfg = _apply_key(cfg, str(key), doc[key], doc, base)
        except _LineError as e:
            raise InputError(str(e), path=path, line=e.line) from None
        except InvalidValue as e:
            raise InputError(str(e), path=path, line=_line(doc, str(key))) from None
    return cfg


def check_config(cfg: MirrorConfig) -> MirrorConfig:
    """What must hold whatever the source: at least one upstream, a known default."""
    if not cfg.upstreams:
        raise UsageError(
            "no upstream registry configured: the mirror fetches only from registries it is "
            "told about (e.g. --upstream docker.io or --upstream 127.0.0.1:5000=http://127.0.0.1:5000)",
            option="--upstream",
        )
    if cfg.default_registry and cfg.default_registry not in cfg.upstreams:
        raise UsageError(
            f"{cfg.default_registry!r} is not among the upstreams", option="default_registry"
        )
    if cfg.chunk_bytes < 64 * 1024:
        raise UsageError("at least 64KiB", option="chunk_bytes")
    return cfg
