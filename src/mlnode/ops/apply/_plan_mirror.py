""":func:`plan_mirror`: wire a node to the node mirror, as file edits. Pure.

containerd: for each registry (``_default`` when none is named and this containerd reads
it), ``<config_path>/<registry>/hosts.toml`` with the mirror first and the registry (its
``server``) as the fallback; an existing file keeps its other hosts after the mirror.
When ``config_path`` is unset and this containerd has no default, it is set to
``/etc/containerd/certs.d`` — read only at start, so containerd is restarted; the
hosts.toml files alone need no restart (containerd re-reads them on every pull).
CRI-O: the drop-in ``/etc/containers/registries.conf.d/90-mlnode-mirror.conf``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from mlnode.errors import UsageError
from mlnode.formats.base import ParsedDocument
from mlnode.formats.containerd import (
    DEFAULT_HOSTS_DIR,
    DEFAULT_NAMESPACE,
    MirrorUrl,
    config_path_roots,
    legacy_registry_keys,
    merge_hosts_toml,
    read_containerd,
    render_hosts_toml,
    set_config_path,
)
from mlnode.formats.crio_mirror import CRIO_MIRROR_DROPIN, render_crio_mirror
from mlnode.formats.facts import ContainerdFacts
from mlnode.formats.mirror_files import mirror_namespaces
from mlnode.knowledge.model import ImageSettings, Origin
from mlnode.knowledge.placement import place
from mlnode.knowledge.table import hosts_config_path, hosts_dial_timeout
from mlnode.node import CONTAINERD_CONFIG
from mlnode.ops.apply._model import ApplyPlan, ApplyRefused, FileEdit, NodeLayout
from mlnode.ops.apply._staging import Staging
from mlnode.ops.services import ActionKind, ServiceAction
from mlnode.ops.verify import Expectations, RuntimeExpectation
from mlnode.versions import RuntimeKind, Version

__all__ = ["MirrorRequest", "containerd_config_path", "hosts_targets", "plan_mirror"]


@dataclass(frozen=True)
class MirrorRequest:
    """What ``apply --mirror`` was asked: the mirror and the registries (empty: all)."""

    mirror: MirrorUrl
    registries: tuple[str, ...] = ()


def _docs(layout: NodeLayout) -> list[ParsedDocument]:
    out = []
    for p in layout.containerd_files:
        text = layout.files.get(p)
        if text is not None:
            out.append(read_containerd(p, text))
    return out


def containerd_config_path(docs: Sequence[ParsedDocument]) -> tuple[str | None, Origin | None]:
    """The last CRI ``registry.config_path`` of containerd's files (merge order)."""
    found: tuple[str | None, Origin | None] = (None, None)
    for doc in docs:
        for rv in doc.runtime_values:
            if (
                rv.name == "config_path"
                and rv.table[2:] == ("registry",)
                and isinstance(rv.value, str)
            ):
                found = (rv.value, rv.origin)
    return found


def hosts_targets(roots: Sequence[str], namespace: str) -> list[str]:
    """Where containerd looks for ``namespace``'s hosts.toml, in its order (each root:
    ``host_port_``, then ``host:port``); the first existing one is edited, else the last
    of the first root's is created."""
    out: list[str] = []
    for root in roots:
        base = root.rstrip("/")
        if ":" in namespace and namespace != DEFAULT_NAMESPACE and not namespace.startswith("["):
            host, _, port = namespace.rpartition(":")
            out.append(f"{base}/{host}_{port}_/hosts.toml")
        out.append(f"{base}/{namespace}/hosts.toml")
    return out


def _config_target(layout: NodeLayout, docs: Sequence[ParsedDocument], table: str) -> str:
    """The containerd file to set config_path in: on 1.x an imported [plugins."<cri>"] table
    replaces the main file's, so the last file that has the CRI table; else config.toml."""
    target = CONTAINERD_CONFIG
    for doc in docs:
        facts = doc.facts
        if isinstance(facts, ContainerdFacts) and table in facts.plugin_tables:
            target = doc.path
    return target


def _plan_containerd(staging: Staging, request: MirrorRequest, version: Version) -> bool:
    """Stage the hosts.toml files (and config_path); True when containerd must restart."""
    layout = staging.layout
    docs = _docs(layout)
    legacy = [
        k
        for d in docs
        for k in legacy_registry_keys((rv.table, rv.name) for rv in d.runtime_values)
    ]
    if legacy:
        raise ApplyRefused(
            "containerd refuses config_path while deprecated registry settings are set"
            ' ("`mirrors` cannot be set when `config_path` is provided"): '
            + ", ".join(sorted(set(legacy)))
            + "; move them to hosts.toml files first"
        )
    row = hosts_config_path(version)
    value, _origin = containerd_config_path(docs)
    roots = config_path_roots(value) or config_path_roots(row.default)
    restart = False
    if not roots:
        target = _config_target(layout, docs, row.table[1])
        text = staging.current(target)
        new = set_config_path(text, target, version, DEFAULT_HOSTS_DIR)
        staging.stage(
            target,
            new,
            f"config_path = {DEFAULT_HOSTS_DIR}: where containerd finds hosts.toml files"
            " (read only at start: containerd restarts)",
            "containerd",
        )
        restart = new != text
        roots = [DEFAULT_HOSTS_DIR]
    for namespace in mirror_namespaces(request.registries, version):
        candidates = hosts_targets(roots, namespace)
        existing = next((p for p in candidates if staging.current(p) is not None), None)
        target = existing or f"{roots[0].rstrip('/')}/{namespace}/hosts.toml"
        current = staging.current(target)
        if current is None:
            new_text = render_hosts_toml(namespace, request.mirror, version)
        else:
            new_text = merge_hosts_toml(current, target, namespace, request.mirror, version)
        staging.stage(
            target,
            new_text,
            f"the node mirror first for {namespace}, the registry as the fallback"
            " (containerd re-reads this file on every pull: no restart)",
            "containerd",
        )
    return restart


def _warnings(request: MirrorRequest, version: Version | None, kind: RuntimeKind) -> list[str]:
    out = []
    if not request.mirror.loopback:
        timeout = (
            "its dial_timeout is 200ms"
            if kind is RuntimeKind.CONTAINERD
            and version is not None
            and hosts_dial_timeout(version).supported
            else "this runtime waits up to 30 s to connect (no dial_timeout)"
        )
        out.append(
            f"the mirror {request.mirror.url} is not on loopback: keep the node mirror on"
            f" 127.0.0.1; if that address stops answering, pulls wait for it ({timeout})"
        )
    return out


def plan_mirror(layout: NodeLayout, request: MirrorRequest) -> ApplyPlan:
    """The edits that put the mirror first for the node's runtime. Pure.

    ``layout.files`` must hold every hosts.toml :func:`hosts_targets` names that exists
    (and CRI-O's drop-in). Raises :class:`ApplyRefused` when the node cannot be wired
    safely and :class:`UsageError` when registries must be named.
    """
    runtime = layout.runtime
    staging = Staging(layout, warnings=_warnings(request, runtime.version, runtime.kind))
    restart = False
    if runtime.kind is RuntimeKind.CONTAINERD:
        if runtime.version is None:
            raise UsageError("give the containerd version", option="--runtime")
        restart = _plan_containerd(staging, request, runtime.version)
    elif runtime.kind is RuntimeKind.CRIO:
        if not request.registries:
            raise UsageError(
                "CRI-O has no default registry entry: pass --mirror-registry HOST for each"
                " registry to wire",
                option="--mirror-registry",
            )
        text = render_crio_mirror(request.registries, request.mirror)
        staging.stage(CRIO_MIRROR_DROPIN, text, "the node mirror first for CRI-O pulls", "crio")
        restart = CRIO_MIRROR_DROPIN in staging.new
    else:
        raise ApplyRefused(
            f"{runtime.kind.value} has no registry mirror configuration mlnode edits"
        )
    return _assemble(layout, staging, request, restart)


def _assemble(
    layout: NodeLayout, staging: Staging, request: MirrorRequest, restart: bool
) -> ApplyPlan:
    runtime = layout.runtime
    unit = runtime.kind.value
    edits = tuple(
        FileEdit(p, layout.files.get(p), t, staging.reasons[p], staging.units[p])
        for p, t in staging.new.items()
    )
    actions: list[ServiceAction] = []
    expect: list[RuntimeExpectation] = []
    notes = list(staging.notes)
    if restart and unit == "containerd":
        actions.append(
            ServiceAction(ActionKind.RESTART, unit, "containerd reads config_path only at start")
        )
        table = hosts_config_path_table(runtime.version)
        expect.append(RuntimeExpectation(table, "config_path", DEFAULT_HOSTS_DIR))
    elif restart:
        actions.append(
            ServiceAction(ActionKind.RESTART, unit, "CRI-O reads registries.conf.d at start")
        )
    elif edits:
        notes.append("no restart needed: containerd reads hosts.toml again on every pull")
    placement = place(ImageSettings(), layout.kubernetes_version, runtime)
    return ApplyPlan(
        layout=layout,
        settings=ImageSettings(),
        placement=placement,
        edits=edits,
        actions=tuple(actions),
        removed_flags=(),
        expectations=Expectations(
            units=(unit,) if actions else (), check_healthz=False, runtime_values=tuple(expect)
        ),
        warnings=tuple(dict.fromkeys(staging.warnings)),
        notes=tuple(notes),
        mirror_url=request.mirror.url,
    )


def hosts_config_path_table(version: Version | None) -> tuple[str, ...]:
    """The table ``containerd config dump`` shows config_path in (its native version)."""
    assert version is not None
    return hosts_config_path(version).table


def is_hosts_file(path: str) -> bool:
    return posixpath.basename(path) == "hosts.toml"
