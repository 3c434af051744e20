"""containerd's registry host configuration: ``<config_path>/<host>/hosts.toml``.

The same rules as containerd (``docs/hosts.md``; ``remotes/docker/config`` in 1.6):

- the directory for ``host:port`` is looked up as ``host_port_``, then ``host:port``,
  then ``_default``; the first that exists is used;
- ``[host."URL"]`` entries are tried first, **in file order**, then ``server``;
  without ``server`` the registry's own namespace is the last host
  (``https://<host>``; ``https://registry-1.docker.io`` for ``docker.io``; ``http://``
  for ``localhost`` and loopback addresses, as containerd's default for local hosts);
- a host URL's path gets ``/v2`` appended unless it ends in ``/v2`` already or
  ``override_path = true``; no path means ``/v2``;
- ``capabilities`` default to ``["pull", "resolve", "push"]``; only hosts with
  ``resolve`` may turn a tag into a digest, only hosts with ``pull`` serve blobs;
- ``skip_verify``, ``ca`` (path or list, relative to the hosts.toml) and ``[header]``
  apply per host; a host other than the registry's namespace gets ``?ns=<namespace>``.

No ``hosts.toml`` at all (and no directory) → the registry's namespace only.
``client`` certificates and ``dial_timeout``/``proxy`` are read but not used.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlnode.errors import InputError
from mlnode.hostnames import default_registry_url
from mlnode.registry.reference import DOCKER_HUB, DOCKER_HUB_API

__all__ = ["RegistryHost", "default_host", "host_directories", "hosts_for", "parse_hosts_toml"]

ALL_CAPABILITIES = frozenset({"pull", "resolve", "push"})


@dataclass(frozen=True)
class RegistryHost:
    """One place to send registry requests to, e.g. a mirror or the registry itself."""

    scheme: str
    host: str
    path: str = "/v2"
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool = False
    ca_files: tuple[Path, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    namespace: str = ""

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def is_mirror(self) -> bool:
        """True when this host stands in for another registry (containerd adds ``ns=``)."""
        return (
            bool(self.namespace)
            and self.namespace != self.host
            and not (self.namespace == DOCKER_HUB and self.host == DOCKER_HUB_API)
        )

    def url(self, suffix: str) -> str:
        """``/<repo>/blobs/<digest>`` → the full URL on this host, with ``ns=`` for a mirror."""
        out = f"{self.scheme}://{self.host}{self.path}{suffix}"
        if self.is_mirror:
            out += ("&" if "?" in out else "?") + f"ns={self.namespace}"
        return out


def default_host(namespace: str) -> RegistryHost:
    """The host containerd uses when nothing is configured for ``namespace``."""
    scheme, _, host = default_registry_url(namespace).partition("://")
    return RegistryHost(scheme, host, namespace=namespace)


def host_directories(hosts_dir: Path, namespace: str) -> list[Path]:
    """Directories searched for ``namespace``'s hosts.toml, in containerd's order."""
    out: list[Path] = []
    if ":" in namespace and not namespace.startswith("["):
        host, _, port = namespace.rpartition(":")
        out.append(hosts_dir / f"{host}_{port}_")
    out.append(hosts_dir / namespace)
    out.append(hosts_dir / "_default")
    return out


def _str_list(value: object, *, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"{key}: expected a string or a list of strings", path=path)


def _host_entry(
    url: str, table: Mapping[str, object], *, namespace: str, base_dir: Path, path: Path
) -> RegistryHost:
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"host {url!r}: expected http(s)://host[:port][/path]", path=path)
    override = table.get("override_path", False)
    if not isinstance(override, bool):
        raise InputError("override_path: expected true or false", path=path)
    url_path = parts.path.rstrip("/")
    if not url_path:
        api_path = "" if override else "/v2"
    elif override or url_path.endswith("/v2"):
        api_path = url_path
    else:
        api_path = url_path + "/v2"
    caps_raw = table.get("capabilities")
    caps = (
        ALL_CAPABILITIES
        if caps_raw is None
        else frozenset(_str_list(caps_raw, key="capabilities", path=path))
    )
    skip = table.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise InputError("skip_verify: expected true or false", path=path)
    ca_raw = table.get("ca")
    ca = () if ca_raw is None else _str_list(ca_raw, key="ca", path=path)
    headers: dict[str, tuple[str, ...]] = {}
    header_table = table.get("header", {})
    if not isinstance(header_table, dict):
        raise InputError("header: expected a table", path=path)
    for name, value in header_table.items():
        headers[str(name)] = _str_list(value, key=f"header.{name}", path=path)
    return RegistryHost(
        scheme=parts.scheme,
        host=parts.netloc,
        path=api_path,
        capabilities=caps,
        skip_verify=skip,
        ca_files=tuple(p if Path(p).is_absolute() else base_dir / p for p in map(Path, ca)),
        headers=headers,
        namespace=namespace,
    )


def parse_hosts_toml(text: str, *, namespace: str, path: Path) -> list[RegistryHost]:
    """The hosts of one hosts.toml, in the order containerd tries them."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", path=path) from e
    base_dir = path.parent
    hosts: list[RegistryHost] = []
    host_tables = doc.get("host", {})
    if not isinstance(host_tables, dict):
        raise InputError('host: expected [host."URL"] tables', path=path)
    for url, table in host_tables.items():  # tomllib keeps file order
        if not isinstance(table, dict):
            raise InputError(f'host."{url}": expected a table', path=path)
        hosts.append(_host_entry(url, table, namespace=namespace, base_dir=base_dir, path=path))
    server = doc.get("server")
    if server is None:
        fallback = default_host(namespace)
        top = {k: v for k, v in doc.items() if k not in ("host", "server")}
        hosts.append(
            _host_entry(
                f"{fallback.scheme}://{fallback.host}",
                top,
                namespace=namespace,
                base_dir=base_dir,
                path=path,
            )
        )
    elif isinstance(server, str):
        top = {k: v for k, v in doc.items() if k not in ("host", "server")}
        server_url = server
        if urlsplit(server if "://" in server else f"https://{server}").netloc == DOCKER_HUB:
            server_url = server.replace(DOCKER_HUB, DOCKER_HUB_API, 1)  # as containerd does
        hosts.append(
            _host_entry(server_url, top, namespace=namespace, base_dir=base_dir, path=path)
        )
    else:
        raise InputError("server: expected a URL string", path=path)
    return hosts


def hosts_for(namespace: str, hosts_dir: Path | None) -> list[RegistryHost]:
    """Where to send requests for images of ``namespace`` (e.g. ``docker.io``)."""
    if hosts_dir is not None:
        for directory in host_directories(hosts_dir, namespace):
            toml_path = directory / "hosts.toml"
            if toml_path.is_file():
                try:
                    text = toml_path.read_text()
                except OSError as e:
                    raise InputError(f"cannot read: {e.strerror}", path=toml_path) from e
                return parse_hosts_toml(text, namespace=namespace, path=toml_path)
    return [default_host(namespace)]
