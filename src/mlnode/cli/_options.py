"""The options several commands share, defined once: one name, one type, one help text.

Each alias is an ``Annotated`` type for a command parameter; the command gives only the
default, e.g. ``root: RootOption = Path("/")``. Sizes and durations stay text here and
are parsed in the command body (:func:`mlnode.cli._common.size_option`,
:func:`~mlnode.cli._common.duration_option`) so a bad value is reported the way every
other mlnode error is. Options only one command has stay in that command's module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlnode.cli._common import OutputFormat

__all__ = [
    "KUBERNETES_VERSION_HELP",
    "RUNTIME_HELP",
    "DryRunOption",
    "HealthzUrlOption",
    "ImageDiskOption",
    "ImageFsOption",
    "KubernetesVersionOption",
    "MirrorCacheOption",
    "NamespaceOption",
    "NoRestartOption",
    "OptionalRootOption",
    "OutputOption",
    "RootOption",
    "RuntimeEndpointOption",
    "RuntimeOption",
    "StateFileOption",
    "SystemctlOption",
    "TimeoutOption",
]

#: Shared with the settings options of render and apply (cli/_settings_options.py).
KUBERNETES_VERSION_HELP = (
    "Kubelet version X.Y[.Z] (default: what --plan or, with --root, the node's kubelet says)."
)
RUNTIME_HELP = "containerd@X.Y.Z | crio@X.Y.Z | cri-dockerd@X.Y.Z | docker."
_ROOT_HELP = "The node's filesystem root: / or where a node's tree is mounted."

OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="human (default) or json (schema in README)."),
]

RootOption = Annotated[Path, typer.Option("--root", help=_ROOT_HELP)]
#: lint's --root: without it, lint reads only the files it is given.
OptionalRootOption = Annotated[Path | None, typer.Option("--root", help=_ROOT_HELP)]

KubernetesVersionOption = Annotated[
    str | None, typer.Option("--kubernetes-version", help=KUBERNETES_VERSION_HELP)
]
RuntimeOption = Annotated[str | None, typer.Option("--runtime", help=RUNTIME_HELP)]

RuntimeEndpointOption = Annotated[
    str | None,
    typer.Option(
        "--runtime-endpoint",
        metavar="ENDPOINT",
        help="The runtime's socket, e.g. unix:///run/containerd/containerd.sock "
        "(default: discover).",
    ),
]
NamespaceOption = Annotated[
    str, typer.Option("--namespace", help="containerd namespace (the kubelet's: k8s.io).")
]
StateFileOption = Annotated[
    Path,
    typer.Option(
        "--state-file",
        help="mlnode's record of when each image was first seen and last used "
        "(kept by mlnode gc and pull).",
        dir_okay=False,
    ),
]
ImageFsOption = Annotated[
    Path | None,
    typer.Option(
        "--image-fs",
        help="A directory on the filesystem holding the images (default: the runtime's root).",
    ),
]
MirrorCacheOption = Annotated[
    Path,
    typer.Option(
        "--mirror-cache",
        metavar="DIR",
        help="The node mirror's cache directory (absent: no mirror on this node).",
        file_okay=False,
    ),
]
ImageDiskOption = Annotated[
    str | None,
    typer.Option(
        "--image-disk", metavar="SIZE", help="Capacity of the image filesystem, e.g. 1.75TiB."
    ),
]

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
]
NoRestartOption = Annotated[
    bool,
    typer.Option(
        "--no-restart", help="Only write (or restore) the files; print what would restart."
    ),
]
TimeoutOption = Annotated[
    str,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        help="How long the health check after a restart may take (2m, 90s).",
    ),
]
SystemctlOption = Annotated[
    str | None,
    typer.Option(
        "--systemctl",
        help="systemctl program to run (default: systemctl; with another --root, "
        "giving it restarts that root's services).",
    ),
]
HealthzUrlOption = Annotated[
    str, typer.Option("--healthz-url", help="The kubelet's healthz endpoint.")
]
