"""containerd's registry hosts files: one containerd cannot decode (E113), one it never
reads because ``config_path`` does not point at its directory (E114), and a mirror that is
not the first host (W215). The version facts (``config_path``'s table and default) are
rows of :mod:`mlnode.knowledge.table`; reading the files is
:mod:`mlnode.formats.containerd`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.containerd import (
    CRI_V1,
    CRI_V2,
    CRI_V3_IMAGES,
    config_path_roots,
    is_loopback_host,
)
from mlnode.formats.facts import HostsTomlFacts
from mlnode.knowledge.model import Origin
from mlnode.knowledge.table import hosts_config_path
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding
from mlnode.versions import RuntimeKind

__all__ = ["hosts_dir_rule", "hosts_parse_rule", "mirror_first_rule"]

_CRI_TABLES = (CRI_V1, CRI_V2, CRI_V3_IMAGES)


def _hosts_docs(docs: Sequence[ParsedDocument]) -> list[tuple[ParsedDocument, HostsTomlFacts]]:
    return [
        (d, d.facts)
        for d in docs
        if d.kind is DocumentKind.CONTAINERD_HOSTS and isinstance(d.facts, HostsTomlFacts)
    ]


def _whose(namespace: str) -> str:
    if namespace == "_default":
        return "images of every registry without a directory of its own"
    return f"{namespace} images"


def hosts_parse_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc, facts in _hosts_docs(docs):
        if facts.error is None:
            continue
        yield Finding(
            "E113",
            f"containerd cannot decode this hosts.toml: {facts.error}",
            'containerd only logs "failed to decode hosts.toml" and pulls '
            f"{_whose(facts.namespace)} without any host of this file: the mirror is"
            " bypassed silently",
            "fix the file (`mlnode render --format containerd-hosts` prints a correct one)",
            Origin(doc.path, facts.error_line),
        )


def _config_path(docs: Sequence[ParsedDocument]) -> tuple[str | None, Origin | None]:
    """The last ``registry.config_path`` of the containerd documents (merge order)."""
    found: tuple[str | None, Origin | None] = (None, None)
    for doc in docs:
        if doc.kind is not DocumentKind.CONTAINERD:
            continue
        for rv in doc.runtime_values:
            if (
                rv.name == "config_path"
                and rv.table[:2] in _CRI_TABLES
                and rv.table[2:] == ("registry",)
            ):
                found = (rv.value if isinstance(rv.value, str) else None, rv.origin)
    return found


def _read_from(hosts_file: str, roots: list[str]) -> bool:
    """True when ``hosts_file`` (a path on the node or under a --root tree) is
    ``<root>/<namespace>/hosts.toml`` for one of the ``config_path`` roots."""
    directory = posixpath.dirname(posixpath.dirname(posixpath.normpath(hosts_file)))
    for root in roots:
        r = posixpath.normpath(root)
        if directory == r or directory.endswith(r if r.startswith("/") else "/" + r):
            return True
    return False


def hosts_dir_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    """E114: a hosts.toml outside every ``config_path`` root. Checked on a whole node, or
    when the containerd config is among the files (else where config_path is is unknown)."""
    runtime = ctx.runtime
    if runtime.kind is not RuntimeKind.CONTAINERD or runtime.version is None:
        return
    hosts = _hosts_docs(docs)
    has_config = any(d.kind is DocumentKind.CONTAINERD for d in docs)
    if not hosts or not (has_config or ctx.whole_node):
        return
    row = hosts_config_path(runtime.version)
    value, origin = _config_path(docs)
    roots = config_path_roots(value) or config_path_roots(row.default)
    table = ".".join(f'"{t}"' if "." in t else t for t in row.table)
    for doc, facts in hosts:
        if _read_from(doc.path, roots):
            continue
        directory = posixpath.dirname(posixpath.dirname(doc.path))
        if value:
            why = f"config_path = {value!r} ({origin}) does not include its directory"
        elif roots:
            why = (
                f"config_path is not set and {runtime}'s default ({row.default}) does not"
                " include its directory"
            )
        else:
            why = (
                f"config_path is not set, and {runtime} reads no hosts directory without it"
                f" ({row.source})"
            )
        yield Finding(
            "E114",
            f"containerd never reads this hosts.toml: {why}",
            f"pulls of {_whose(facts.namespace)} ignore every host in it (the mirror included)",
            f"set config_path to the directory holding it ({directory} on the node) under"
            f" [{table}] and restart containerd (`mlnode apply --mirror URL` does both)",
            Origin(doc.path, 1),
        )


def _is_mirror(url: str, namespace: str, mirror_url: str | None) -> bool:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if mirror_url is not None:
        return f"{parts.scheme}://{parts.netloc}".lower() == mirror_url.rstrip("/").lower()
    return parts.scheme == "http" and is_loopback_host(parts.netloc) and parts.netloc != namespace


def mirror_first_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    """W215: a mirror (the ``--mirror`` URL, else a loopback plain-HTTP host other than the
    registry itself) that containerd tries only after another host."""
    for doc, facts in _hosts_docs(docs):
        if facts.error is not None or not facts.hosts:
            continue
        first = facts.hosts[0]
        if _is_mirror(first.url, facts.namespace, ctx.mirror_url):
            continue
        for index, host in enumerate(facts.hosts[1:], start=2):
            if not _is_mirror(host.url, facts.namespace, ctx.mirror_url):
                continue
            yield Finding(
                "W215",
                f"the mirror {host.url} is host {index} of {len(facts.hosts)}: containerd tries"
                f" {first.url} first",
                "pulls reach the mirror only when the hosts before it fail (connection refused,"
                " 404, 5xx): the node mirror's parallel, resumable fetch is not used",
                f'move [host."{host.url}"] to the top of the file'
                " (`mlnode apply --mirror URL` does)",
                Origin(doc.path, host.line),
            )
