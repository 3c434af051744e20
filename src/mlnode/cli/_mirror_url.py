"""The ``--mirror URL`` option of ``mlnode progress`` (any http(s) mirror to read the status
of; render and apply have their own in cli/_mirror.py, for the URL they write)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlnode.errors import UsageError
from mlnode.ops.mirror_status import mirror_base_url

__all__ = ["MirrorUrlOption", "mirror_url_option"]

MirrorUrlOption = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        metavar="URL",
        help="The node mirror's URL, e.g. http://127.0.0.1:6055 (default: the one the "
        "node's hosts.toml names first, else 127.0.0.1:6055 if it answers).",
    ),
]


def mirror_url_option(text: str | None) -> str | None:
    """The base URL from ``--mirror`` (None when not given); exit 2 when malformed."""
    if text is None:
        return None
    try:
        return mirror_base_url(text)
    except ValueError as e:
        raise UsageError(str(e), option="--mirror") from None
