"""containerd's registry hosts files (``<config_path>/<registry>/hosts.toml``) and the
``config_path`` that points containerd at them: read, render, merge. Pure.

What containerd does with them (containerd ``docs/hosts.md``; ``remotes/docker/config/
hosts.go`` in 1.x, ``core/remotes/docker/config/hosts.go`` in 2.x):

- ``[host."URL"]`` tables are tried in file order, then ``server`` (without ``server``:
  the registry itself, ``https://registry-1.docker.io`` for ``docker.io``, ``http://``
  for loopback and ``localhost``); a host other than the registry gets ``?ns=<registry>``;
- a file that does not decode is only logged ("failed to decode hosts.toml", loadHostDir)
  and containerd carries on without any of its hosts: a mirror in a broken file is
  bypassed silently, so every file mlnode writes is parsed before it is written;
- the file is read again on every pull: changing it needs no restart. ``config_path``
  itself is read at start only.

Which containerd reads ``_default`` and ``dial_timeout``, and where ``config_path`` lives,
are rows of :mod:`mlnode.knowledge.table` (``hosts_default_dir``, ``hosts_dial_timeout``,
``hosts_config_path``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import tomlkit

from mlnode.errors import InputError, InvalidValue
from mlnode.formats._tomlscan import key_lines, parse_toml, set_value
from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.containerd._tables import table_for
from mlnode.formats.facts import HostEntry, HostsTomlFacts
from mlnode.formats.textcheck import check_text
from mlnode.hostnames import default_registry_url, is_loopback_host
from mlnode.knowledge.table import hosts_config_path, hosts_dial_timeout
from mlnode.versions import Version

__all__ = [
    "DEFAULT_HOSTS_DIR",
    "DEFAULT_NAMESPACE",
    "HOSTS_HEADER",
    "MIRROR_CAPABILITIES",
    "MIRROR_DIAL_TIMEOUT",
    "MirrorUrl",
    "config_path_roots",
    "default_server",
    "hosts_dir_namespace",
    "is_loopback_host",
    "legacy_registry_keys",
    "merge_hosts_toml",
    "parse_mirror_url",
    "parse_registry_name",
    "read_hosts_toml",
    "render_hosts_toml",
    "set_config_path",
]

DEFAULT_HOSTS_DIR = "/etc/containerd/certs.d"
DEFAULT_NAMESPACE = "_default"
MIRROR_CAPABILITIES = ("pull", "resolve")
MIRROR_DIAL_TIMEOUT = "200ms"  # as Spegel writes; a mirror on loopback answers in << 1 ms
HOSTS_HEADER = (
    "# Written by mlnode: pulls go through the node mirror first; server is the fallback."
)
# A DNS name or IPv4 address, an optional port; or a bracketed IPv6 address and a port.
_NAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*(?::[0-9]{1,5})?$"
)
_BRACKETED = re.compile(r"^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class MirrorUrl:
    """The node mirror's URL, checked: ``http(s)://host:port``."""

    scheme: str
    host: str  # host:port as written (lower-cased)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def parse_mirror_url(text: str) -> MirrorUrl:
    """``http://127.0.0.1:6055`` → :class:`MirrorUrl`; :class:`InvalidValue` when it is not
    ``http(s)://host:port`` with nothing else (no path, query, user or fragment)."""
    want = "expected http://HOST:PORT or https://HOST:PORT"
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as e:
        raise InvalidValue(f"{text!r}: {e}; {want}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidValue(f"{text!r}: scheme must be http or https; {want}")
    if not parts.hostname or port is None:
        raise InvalidValue(f"{text!r}: no host and port; {want}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidValue(f"{text!r}: user, query or fragment given; {want}")
    if parts.path not in ("", "/"):
        raise InvalidValue(f"{text!r}: a path is not supported (the mirror serves /v2/); {want}")
    host = parts.netloc.lower()
    if not (_NAME.match(host) or _BRACKETED.match(host)) or not 0 < port < 65536:
        raise InvalidValue(f"{text!r}: not a valid host:port; {want}")
    return MirrorUrl(parts.scheme, host)


def parse_registry_name(text: str) -> str:
    """A registry host as image references name it (``docker.io``, ``127.0.0.1:5000``,
    ``ghcr.io``); :class:`InvalidValue` for anything else (a URL, a path, ``_default``)."""
    name = text.strip().lower()
    if "://" in name or "/" in name:
        raise InvalidValue(f"{text!r}: give the registry host as images name it (e.g. docker.io)")
    if not (_NAME.match(name) or _BRACKETED.match(name)):
        raise InvalidValue(f"{text!r}: not a registry host name (host or host:port)")
    return name


def default_server(namespace: str) -> str:
    """The ``server`` containerd uses for ``namespace`` when the file names none."""
    return default_registry_url(namespace)


def hosts_dir_namespace(directory_name: str) -> str:
    """The registry a hosts directory is for: ``host_port_`` → ``host:port``."""
    m = re.match(r"^(.*)_([0-9]+)_$", directory_name)
    return f"{m.group(1)}:{m.group(2)}" if m else directory_name


def _mirror_table_text(mirror: MirrorUrl, runtime_version: Version) -> str:
    caps = ", ".join(f'"{c}"' for c in MIRROR_CAPABILITIES)
    out = [f'[host."{mirror.url}"]', f"  capabilities = [{caps}]"]
    if hosts_dial_timeout(runtime_version).supported:
        out.append(f'  dial_timeout = "{MIRROR_DIAL_TIMEOUT}"')
    return "\n".join(out) + "\n"


def render_hosts_toml(namespace: str, mirror: MirrorUrl, runtime_version: Version) -> str:
    """A new hosts.toml for ``namespace`` (a registry host or ``_default``): the mirror
    first, ``server`` kept as the fallback (none in ``_default``: each registry itself)."""
    lines = [HOSTS_HEADER]
    if namespace == DEFAULT_NAMESPACE:
        lines += [
            "# _default: for every registry without a directory of its own here; after the",
            "# mirror containerd goes to the image's own registry.",
        ]
    lines.append("# containerd reads this file on every pull: no restart is needed.")
    if not hosts_dial_timeout(runtime_version).supported:
        lines.append(
            f"# containerd {runtime_version} has no dial_timeout: keep the mirror on loopback."
        )
    if namespace != DEFAULT_NAMESPACE:
        lines.append(f'server = "{default_server(namespace)}"')
    text = "\n".join(lines) + "\n\n" + _mirror_table_text(mirror, runtime_version)
    return _decodable(text, namespace, mirror)


def merge_hosts_toml(
    text: str, path: str, namespace: str, mirror: MirrorUrl, runtime_version: Version
) -> str:
    """``text`` (an existing hosts.toml) with the mirror as its first host.

    Its other hosts stay, after the mirror, and so do its ``server`` and other keys (a
    file without ``server`` gets the registry's own, as containerd would use it anyway).
    An entry for the mirror's URL is kept as written and moved first, never duplicated; a
    file whose first host is already the mirror is returned unchanged. A file containerd
    cannot decode is refused (:class:`InputError`, with the line): fix it first.
    """
    facts = read_hosts_toml(path, text, namespace=namespace).facts_as(HostsTomlFacts)
    if facts.error is not None:
        raise InputError(
            f"containerd cannot decode this hosts.toml ({facts.error}); fix it first",
            path=path,
            line=facts.error_line,
        )
    if facts.hosts and _same_url(facts.hosts[0].url, mirror.url):
        return text
    doc = parse_toml(path, text)
    hosts_item = doc.get("host")
    existing: list[tuple[str, Any]] = list(hosts_item.items()) if hosts_item is not None else []
    if "host" in doc:
        del doc["host"]
    ours: Any = next((t for u, t in existing if _same_url(u, mirror.url)), None)
    if ours is None:
        ours = tomlkit.parse(_mirror_table_text(mirror, runtime_version))["host"][mirror.url]
    if "server" not in doc and namespace != DEFAULT_NAMESPACE:
        doc.add("server", default_server(namespace))
    head = doc.as_string()
    if HOSTS_HEADER not in head:
        head = HOSTS_HEADER + "\n" + head
    table = tomlkit.table(is_super_table=True)
    table.add(mirror.url, ours)
    for url, tbl in existing:
        if not _same_url(url, mirror.url):
            table.add(url, tbl)
    tail = tomlkit.document()
    tail.add("host", table)
    merged = head.rstrip("\n") + "\n\n" + tail.as_string().rstrip("\n") + "\n"
    return _decodable(merged, namespace, mirror, path=path)


def _decodable(text: str, namespace: str, mirror: MirrorUrl, *, path: str = "<rendered>") -> str:
    """``text`` once it is known to decode with the mirror first (containerd would bypass a
    file that does not, silently); an :class:`InputError` otherwise, so nothing is written."""
    facts = read_hosts_toml(path, text, namespace=namespace).facts_as(HostsTomlFacts)
    if facts.error is not None or not facts.hosts or not _same_url(facts.hosts[0].url, mirror.url):
        raise InputError(
            "the hosts.toml mlnode would write does not put the mirror first or does not"
            f" decode ({facts.error or 'mirror not first'}); nothing written",
            path=path,
            line=facts.error_line,
        )
    return text


def _same_url(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u if "://" in u else f"https://{u}"
        return u.rstrip("/").lower()

    return norm(a) == norm(b)


def read_hosts_toml(path: str, text: str, *, namespace: str | None = None) -> ParsedDocument:
    """One hosts.toml as lint sees it. A file containerd cannot decode is *not* an error
    here: it is a document whose facts carry the error and its line (lint's E113).

    ``namespace`` defaults to the name of the file's directory (``host_port_`` read back as
    ``host:port``).
    """
    check_text(path, text)
    ns = namespace if namespace is not None else _namespace_of(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        facts = HostsTomlFacts(ns, error=f"not valid TOML: {message}", error_line=line)
        return _hosts_doc(path, facts)
    lines = key_lines(text)
    problem = _shape_problem(data)
    if problem is not None:
        key, why = problem
        return _hosts_doc(path, HostsTomlFacts(ns, error=why, error_line=lines.get(key)))
    hosts_raw = data.get("host", {})
    entries = tuple(
        HostEntry(
            url=str(url),
            line=lines.get(("host", str(url))),
            capabilities=tuple(t["capabilities"]) if "capabilities" in t else None,
        )
        for url, t in hosts_raw.items()
    )
    return _hosts_doc(path, HostsTomlFacts(ns, hosts=entries, server=data.get("server")))


def _shape_problem(data: Mapping[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """A type containerd's decoder refuses (hostFileConfig: strings, string lists, bools),
    as (key path, why); None when the file decodes."""
    server = data.get("server")
    if server is not None and not isinstance(server, str):
        return ("server",), "server: expected a URL string"
    hosts = data.get("host", {})
    if not isinstance(hosts, dict):
        return ("host",), 'host: expected [host."URL"] tables'
    for url, table in hosts.items():
        if not isinstance(table, dict):
            return ("host", url), f'host."{url}": expected a table'
        for key in ("capabilities",):
            value = table.get(key)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(x, str) for x in value)
            ):
                return ("host", url, key), f'host."{url}".{key}: expected a list of strings'
        for key in ("skip_verify", "override_path"):
            value = table.get(key)
            if value is not None and not isinstance(value, bool):
                return ("host", url, key), f'host."{url}".{key}: expected true or false'
        value = table.get("dial_timeout")
        if value is not None and not isinstance(value, str):
            return ("host", url, "dial_timeout"), (
                f'host."{url}".dial_timeout: expected a duration string such as "200ms"'
            )
    return None


def _namespace_of(path: str) -> str:
    return hosts_dir_namespace(PurePosixPath(path).parent.name)


def _hosts_doc(path: str, facts: HostsTomlFacts) -> ParsedDocument:
    return ParsedDocument(kind=DocumentKind.CONTAINERD_HOSTS, path=path, facts=facts)


def config_path_roots(value: object) -> list[str]:
    """``config_path`` as containerd splits it (``filepath.SplitList``: ``:`` on Linux)."""
    if not isinstance(value, str):
        return []
    return [p for p in value.split(":") if p]


def set_config_path(
    text: str | None, path: str, runtime_version: Version, value: str = DEFAULT_HOSTS_DIR
) -> str:
    """containerd's config with ``config_path = value`` in its CRI registry table (the one
    this file's ``version`` uses on this containerd), everything else kept byte for byte.

    ``text`` None: a new minimal config. The caller decides whether it is needed (an
    existing non-empty ``config_path`` is kept as it is).
    """
    row = hosts_config_path(runtime_version)
    if text is None:
        head = ".".join(f'"{t}"' if "." in t else t for t in row.table)
        return (
            f"# containerd config written by mlnode: where containerd finds hosts.toml files.\n"
            f'version = {row.config_version}\n\n[{head}]\n  config_path = "{value}"\n'
        )
    doc = parse_toml(path, text)
    data = doc.unwrap()
    raw_version = data.get("version")
    file_version = raw_version if isinstance(raw_version, int) else 1
    if raw_version is None and not any(k in data for k in ("plugins",)):
        file_version = row.config_version
        doc.add("version", file_version)
    home = table_for(row.table, "config_path", max(file_version, 1))
    if home is None:  # pragma: no cover - every version has a registry table
        raise InputError("no CRI registry table for this config version", path=path)
    table, name = home
    set_value(doc, table, name, value, path=path, lines=key_lines(text))
    return doc.as_string()


def legacy_registry_keys(values: Iterable[tuple[Sequence[str], str]]) -> list[str]:
    """The deprecated registry settings that make containerd refuse ``config_path``
    (``mirrors``, ``configs.<host>.tls``), from (table, name) pairs of a config."""
    out = []
    for table, name in values:
        tail = list(table[2:])
        if tail[:2] == ["registry", "mirrors"] or (
            tail[:2] == ["registry", "configs"] and "tls" in tail[3:4]
        ):
            out.append(".".join([*tail, name]))
    return out
