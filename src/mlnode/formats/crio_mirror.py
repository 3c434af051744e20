"""CRI-O's registries.conf.d drop-in that puts the node mirror in front of registries. Pure.

containers/image (``docs/containers-registries.conf.5.md``, ``...conf.d.5.md``): CRI-O
reads ``/etc/containers/registries.conf``, then every ``*.conf`` of
``/etc/containers/registries.conf.d`` in alpha-numerical order. A ``[[registry]]`` table
is chosen by its ``prefix`` (the longest match); its ``[[registry.mirror]]`` entries are
tried in order, then ``location``. ``insecure = true`` allows plain HTTP. A drop-in's
``[[registry]]`` replaces an earlier one with the same prefix as a whole. CRI-O reads the
files at start and again on SIGHUP (crio.conf(5)).

CRI-O has no ``_default``: each registry is named. It sends no ``?ns=`` to a mirror: the
reference is rewritten by replacing the prefix with the mirror's location. So each
registry's mirror location carries the registry as a first path segment,
``127.0.0.1:6055/docker.io`` (a ``:`` in it written ``_``, as repository paths allow no
colon: ``127.0.0.1_5000``), and ``mlnode mirror`` reads the registry from it when a request
has no ``?ns=``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlnode.formats.containerd._hosts import MirrorUrl, is_loopback_host
from mlnode.knowledge.table import CRIO_REGISTRIES_DROPIN_DIR

__all__ = ["CRIO_MIRROR_DROPIN", "render_crio_mirror"]

CRIO_MIRROR_DROPIN = f"{CRIO_REGISTRIES_DROPIN_DIR}/90-mlnode-mirror.conf"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_crio_mirror(registries: Sequence[str], mirror: MirrorUrl) -> str:
    """The drop-in: one ``[[registry]]`` per registry, the mirror as its first mirror."""
    out = [
        "# Written by mlnode: CRI-O pulls go through the node mirror first, then the registry.",
        "# CRI-O reads registries.conf.d at start and on SIGHUP (systemctl reload crio).",
        "# Each [[registry]] here replaces one with the same prefix in registries.conf.",
    ]
    for name in registries:
        out += ["", "[[registry]]", f"prefix = {_q(name)}", f"location = {_q(name)}"]
        if is_loopback_host(name):
            out.append("insecure = true  # a loopback registry speaks plain HTTP")
        segment = name.replace(":", "_")
        out += ["", "[[registry.mirror]]", f"location = {_q(f'{mirror.host}/{segment}')}"]
        if mirror.scheme == "http":
            out.append("insecure = true  # the node mirror speaks plain HTTP on loopback")
    return "\n".join(out) + "\n"
