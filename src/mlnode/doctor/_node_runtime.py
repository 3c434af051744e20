"""The node doctor's questions to the runtime: images and their sizes (CRI), downloads in
flight and whether they are stalled (containerd's ingests, sampled twice, joined with the
node mirror's blobs), and big images whose layers are gzip.

The runtime is asked only when a socket is named (``--runtime-endpoint``) or, on the node
itself (``--root /``), at its default path; a copy of a node's files has no runtime. A runtime
that does not answer is an info finding (D311), not an error of the doctor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlnode.doctor._holders import HeldImage
from mlnode.doctor._model import Finding, Setting
from mlnode.errors import MlnodeError, RuntimeUnavailable
from mlnode.versions import RuntimeKind

if TYPE_CHECKING:
    from mlnode.doctor._node import NodeRequest, _Acc
    from mlnode.ops.inspect import Inspection

__all__ = ["gather_runtime"]


def gather_runtime(
    req: NodeRequest, node: str, acc: _Acc, deadline: Setting | None, seen: Inspection
) -> None:
    # an explicit socket, or on the node itself the default one (discover_runtime's)
    endpoint = req.runtime_endpoint
    if endpoint is None and req.root != Path("/"):
        acc.findings.append(
            Finding(
                "D311",
                "the runtime was not asked: --root is a copy of a node's files",
                "images, their sizes, downloads in flight and layer formats are not known",
                "on the node, run `mlnode doctor` (or give --runtime-endpoint SOCKET)",
                node=node,
            )
        )
        return
    from mlnode.doctor._layers import images_of_layers, layer_findings, read_image_layers
    from mlnode.doctor._pulls import pull_findings, sample_pulls
    from mlnode.ops.images import collect_report
    from mlnode.runtime.containerd import ContainerdClient
    from mlnode.runtime.discovery import discover_runtime

    try:
        found = discover_runtime(endpoint, root=req.root)
        report = collect_report(endpoint, namespace=req.namespace, root=req.root)
    except MlnodeError as e:
        acc.errors.append(f"runtime: {e}")
        acc.findings.append(
            Finding(
                "D311",
                f"the runtime could not be asked: {e}",
                "images, their sizes, downloads in flight and layer formats are not known",
                "check the socket (`--runtime-endpoint`), and run as root"
                if not isinstance(e, RuntimeUnavailable)
                else "is the runtime running? `systemctl status containerd`",
                node=node,
            )
        )
        return
    images = [r.image for r in report.images]
    acc.images_count = len(images)
    acc.held = tuple(
        HeldImage(
            ref=(r.image.repo_tags or r.image.repo_digests or (r.image.id,))[0],
            size_bytes=r.image.size_bytes,
            in_use=r.in_use,
            pinned=r.image.pinned,
        )
        for r in report.images
    )
    if images:
        big = max(images, key=lambda i: i.size_bytes)
        ref = (big.repo_tags or big.repo_digests or (big.id,))[0]
        acc.largest = (ref, big.size_bytes, True)
    if found.kind is not RuntimeKind.CONTAINERD and "containerd" not in report.runtime.runtime_name:
        return
    blobs = acc.mirror.blobs if acc.mirror is not None else ()
    seconds = deadline.value if deadline is not None and isinstance(deadline.value, float) else None
    source = deadline.source if deadline is not None else "unknown"
    try:
        with ContainerdClient(found.socket_path, namespace=req.namespace) as ctrd:
            owners = images_of_layers(ctrd)
            acc.pulls = sample_pulls(
                ctrd,
                interval_seconds=req.sample_seconds,
                mirror_blobs=blobs,
                images_by_digest=owners,
            )
            layered = read_image_layers(ctrd)
    except MlnodeError as e:
        acc.errors.append(f"containerd: {e}")
        return
    acc.findings.extend(
        pull_findings(
            node,
            acc.pulls,
            deadline_seconds=seconds,
            deadline_source=source,
            stall_after_seconds=req.stall_after_seconds,
            mirror_url=acc.mirror.url if acc.mirror is not None else None,
        )
    )
    acc.findings.extend(layer_findings(node, layered, min_image_bytes=req.min_gzip_image_bytes))
