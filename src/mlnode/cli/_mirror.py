"""The node mirror options ``render`` and ``apply`` share: ``--mirror`` and
``--mirror-registry``, checked into a mirror URL and registry names."""

from __future__ import annotations

from typing import Annotated

import typer

from mlnode.errors import InvalidValue, UsageError
from mlnode.formats.containerd import MirrorUrl, parse_mirror_url, parse_registry_name

__all__ = ["MirrorOption", "MirrorRegistryOption", "mirror_options"]

MirrorOption = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        metavar="URL",
        help="The node mirror, http://127.0.0.1:PORT: put it first for the node's pulls.",
        rich_help_panel="Mirror",
    ),
]
MirrorRegistryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mirror-registry",
        metavar="HOST",
        help="A registry to wire to the mirror (repeat; default: containerd's _default).",
        rich_help_panel="Mirror",
    ),
]


def mirror_options(mirror: str | None, registries: list[str] | None) -> tuple[MirrorUrl, list[str]]:
    """The checked ``--mirror`` URL and ``--mirror-registry`` names (UsageError if bad)."""
    if mirror is None:
        raise UsageError("required with these formats", option="--mirror")
    try:
        url = parse_mirror_url(mirror)
    except InvalidValue as e:
        raise UsageError(str(e), option="--mirror") from None
    names = []
    for r in registries or []:
        try:
            names.append(parse_registry_name(r))
        except InvalidValue as e:
            raise UsageError(str(e), option="--mirror-registry") from None
    return url, names
