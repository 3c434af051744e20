"""``mlnode render --format containerd-hosts|crio-mirror``: the files that put the node
mirror first, printed (each under a ``# <node path>`` line) or as JSON.

JSON (``-o json``), schema ``mlnode.render.mirror/v1``::

    {"schema": "mlnode.render.mirror/v1", "format": "containerd-hosts" | "crio-mirror",
     "runtime": "containerd@1.6.20", "mirror": "http://127.0.0.1:6055",
     "registries": ["_default"] | ["docker.io", ...],
     "files": [{"path": "/etc/containerd/certs.d/_default/hosts.toml", "content": "..."}],
     "notes": ["..."], "warnings": ["..."]}
"""

from __future__ import annotations

from typing import Any

from mlnode.cli._common import OutputFormat, emit_json, stderr, stdout
from mlnode.cli._mirror import mirror_options
from mlnode.errors import UsageError
from mlnode.formats.mirror_files import MirrorFormat, mirror_files
from mlnode.versions import RuntimeKind, RuntimeSpec, parse_runtime

__all__ = ["render_mirror"]


def render_mirror(
    fmt: MirrorFormat,
    runtime_text: str | None,
    mirror: str | None,
    registries: list[str] | None,
    output: OutputFormat,
) -> int:
    url, names = mirror_options(mirror, registries)
    if fmt is MirrorFormat.CRIO_MIRROR:
        runtime = parse_runtime(runtime_text) if runtime_text else RuntimeSpec(RuntimeKind.CRIO)
    elif runtime_text is None:
        raise UsageError("required for containerd-hosts (containerd@X.Y.Z)", option="--runtime")
    else:
        runtime = parse_runtime(runtime_text)
    files, notes = mirror_files(fmt, runtime, url, names)
    warnings = []
    if not url.loopback:
        warnings.append(
            f"the mirror {url.url} is not on loopback: keep the node mirror on 127.0.0.1"
            " (an unreachable mirror address makes pulls wait for it)"
        )
    if output is OutputFormat.JSON:
        doc: dict[str, Any] = {
            "schema": "mlnode.render.mirror/v1",
            "format": fmt.value,
            "runtime": str(runtime),
            "mirror": url.url,
            "registries": [f.path.rsplit("/", 2)[-2] for f in files]
            if fmt is MirrorFormat.CONTAINERD_HOSTS
            else names,
            "files": [{"path": f.path, "content": f.content} for f in files],
            "notes": notes,
            "warnings": warnings,
        }
        emit_json(doc)
        return 0
    for i, f in enumerate(files):
        stdout.out(("\n" if i else "") + f"# {f.path}", highlight=False)
        stdout.out(f.content, end="", highlight=False)
    for n in notes:
        stderr.print(f"mlnode: note: {n}", markup=False)
    for w in warnings:
        stderr.print(f"mlnode: warning: {w}", markup=False)
    return 0
