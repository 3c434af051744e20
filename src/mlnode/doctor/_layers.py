"""The node's images and their layers' formats, and what gzip costs a big image (D306).

:func:`read_image_layers` walks containerd's image records in the namespace: each
record's target is read from the content store (``Content.Read``); an index gives the
platform's manifest; a manifest gives its layers (digest, mediaType, size). CRI keeps
three records per image (``repo:tag``, ``repo@sha256:…``, and the config's ``sha256:``
id), all pointing at one target: the target is read once, named by its tag.
:func:`images_of_layers` answers the other way round, for downloads in flight: which
image a layer belongs to, from the manifests already in the content store.

:func:`layer_findings` turns an image whose layers are gzip into a D306 with the
unpack time measured here: a 1.07 GB gzip layer (a 2.80 GiB tar of 75.8k files)
unpacked in 53.9 s with containerd 1.6.20 on 2 cores, the same layer as zstd (1.01 GB)
in 32.5 s (mirror-and-agent-facts.md, "Where a realistic ML image's pull time goes").
The numbers for another image are that measurement scaled by its gzip bytes, an
estimate: unpack time follows the files and bytes in the tar, not only its size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnode.doctor._model import Finding
from mlnode.runtime.errors import ContentNotFound
from mlnode.units import format_bytes

if TYPE_CHECKING:
    from mlnode.runtime.containerd import ContainerdClient

__all__ = [
    "GZIP_LAYER_TYPES",
    "MEASURED_GZIP_BYTES",
    "MEASURED_GZIP_UNPACK_SECONDS",
    "MEASURED_ZSTD_UNPACK_SECONDS",
    "ImageLayers",
    "images_of_layers",
    "layer_findings",
    "read_image_layers",
    "zstd_tag",
]

GZIP_LAYER_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)

# Measured (mirror-and-agent-facts.md): containerd 1.6.20, 2 cores, CRI PullImage onto a
# fresh ext4, mean of 3; one layer, a 2.80 GiB tar of 75.8k real files.
MEASURED_GZIP_BYTES = 1_070_000_000
MEASURED_GZIP_UNPACK_SECONDS = 53.9
MEASURED_ZSTD_UNPACK_SECONDS = 32.5

_MANIFEST_MAX_BYTES = 4 * 1024 * 1024  # real manifests and indexes are a few KiB
_SOURCE_LABEL = "containerd.io/distribution.source."
_GC_LAYER_LABEL = "containerd.io/gc.ref.content.l."
_GC_CONFIG_LABEL = "containerd.io/gc.ref.content.config"
_GC_MANIFEST_LABEL = "containerd.io/gc.ref.content.m."


@dataclass(frozen=True)
class ImageLayers:
    image: str
    size_bytes: int  # the layers' sizes summed (compressed, as the registry serves them)
    layers: tuple[tuple[str, str, int], ...]  # (digest, mediaType, size)


def _read_json(client: ContainerdClient, digest: str) -> dict[str, Any] | None:
    try:
        data = b"".join(client.read_content(digest))
    except ContentNotFound:
        return None
    if len(data) > _MANIFEST_MAX_BYTES:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _platform_matches(entry: Mapping[str, Any], want: Sequence[str]) -> bool:
    p = entry.get("platform")
    if not isinstance(p, dict):
        return False
    have = (p.get("os"), p.get("architecture"))
    if have != (want[0], want[1] if len(want) > 1 else None):
        return False
    return len(want) < 3 or p.get("variant") == want[2]


def _platform_manifest(index: Mapping[str, Any], platform: str) -> str | None:
    """The digest of the index's manifest for ``platform`` (``os/arch[/variant]``)."""
    want = platform.split("/")
    entries = index.get("manifests")
    if not isinstance(entries, list):
        return None
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("digest"), str) and _platform_matches(e, want):
            return str(e["digest"])
    return None


def _layers(doc: Mapping[str, Any]) -> tuple[tuple[str, str, int], ...]:
    out: list[tuple[str, str, int]] = []
    items = doc.get("layers")
    for d in items if isinstance(items, list) else []:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            size = d.get("size")
            out.append(
                (d["digest"], str(d.get("mediaType", "")), size if isinstance(size, int) else 0)
            )
    return tuple(out)


def _best_names(client: ContainerdClient) -> dict[str, str]:
    """Target digest → its best record name: a tag, else a digest reference, else an id."""
    best: dict[str, tuple[int, str]] = {}
    for rec in client.list_images():
        kind = 2 if rec.name.startswith("sha256:") else 1 if "@" in rec.name else 0
        have = best.get(rec.target.digest)
        if have is None or (kind, rec.name) < have:
            best[rec.target.digest] = (kind, rec.name)
    return {d: name for d, (_, name) in best.items()}


def read_image_layers(
    client: ContainerdClient, *, platform: str = "linux/amd64"
) -> list[ImageLayers]:
    """Every image record's layers (one entry per target, named by its best record name);
    a target whose manifest is not in the content store (or is not a manifest) is left out."""
    out: list[ImageLayers] = []
    for digest, name in sorted(_best_names(client).items(), key=lambda kv: kv[1]):
        doc = _read_json(client, digest)
        if doc is not None and (doc.get("mediaType") in INDEX_TYPES or "manifests" in doc):
            child = _platform_manifest(doc, platform)
            doc = _read_json(client, child) if child is not None else None
        if doc is None or not isinstance(doc.get("layers"), list):
            continue
        layers = _layers(doc)
        out.append(ImageLayers(name, sum(size for _, _, size in layers), layers))
    return out


def zstd_tag(image: str) -> str:
    """Where ``skopeo copy`` puts the zstd copy: ``repo:tag`` → ``repo:tag-zstd``; a digest
    reference (``repo@sha256:…``) or an untagged name → ``repo:zstd``."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if "@" in image or ":" not in last:
        return f"{repo}:zstd"
    return f"{repo}-zstd"


def _finding(node: str, image: ImageLayers) -> Finding | None:
    gz = [layer for layer in image.layers if layer[1] in GZIP_LAYER_TYPES]
    if not gz:
        return None
    gzip_bytes = sum(size for _, _, size in gz)
    digest, _, size = max(gz, key=lambda layer: layer[2])
    scale = gzip_bytes / MEASURED_GZIP_BYTES
    gzip_s = MEASURED_GZIP_UNPACK_SECONDS * scale
    zstd_s = MEASURED_ZSTD_UNPACK_SECONDS * scale
    evidence = (
        f"image {image.image}",
        f"{len(gz)} of {len(image.layers)} layers gzip: {gzip_bytes} bytes "
        f"({format_bytes(gzip_bytes)}) of {format_bytes(image.size_bytes)}",
        f"largest layer {digest} ({format_bytes(size)}, gzip)",
        f"estimated unpack: {gzip_s:.0f} s from gzip, {zstd_s:.0f} s from zstd",
    )
    cause = (
        "Unpacking, not downloading, is most of a big pull on a fast link, and gzip "
        "decompression is most of the unpack. Measured here (containerd 1.6.20, 2 cores): a "
        f"{MEASURED_GZIP_BYTES / 1e9:.2f} GB gzip layer unpacked in "
        f"{MEASURED_GZIP_UNPACK_SECONDS} s, the same files as zstd in "
        f"{MEASURED_ZSTD_UNPACK_SECONDS} s. Scaled by this image's gzip bytes, an estimate "
        f"from that measurement: about {gzip_s:.0f} s of unpack now, {zstd_s:.0f} s as zstd "
        f"(about {gzip_s - zstd_s:.0f} s less per pull, on every node that pulls it)."
    )
    fix = (
        f"convert the image: `skopeo copy --dest-compress-format zstd docker://{image.image} "
        f"docker://{zstd_tag(image.image)}` and use the new tag (containerd 1.5 and later "
        "unpack zstd layers, CRI-O too)"
    )
    return Finding(
        "D306",
        f"{image.image}: {format_bytes(gzip_bytes)} of gzip layers, about "
        f"{gzip_s - zstd_s:.0f} s of unpack zstd would save",
        cause,
        fix,
        evidence=evidence,
        node=node,
        subject=image.image,
    )


def layer_findings(
    node: str, images: Sequence[ImageLayers], *, min_image_bytes: int
) -> list[Finding]:
    """D306 for each image of at least ``min_image_bytes`` (its layers' sizes summed)
    with gzip layers, biggest image first."""
    out: list[Finding] = []
    for image in sorted(images, key=lambda i: (-i.size_bytes, i.image)):
        if image.size_bytes < min_image_bytes:
            continue
        f = _finding(node, image)
        if f is not None:
            out.append(f)
    return out


# --- which image a layer belongs to ------------------------------------------------------


def _hosts_with_ports(names: Sequence[str]) -> dict[tuple[str, str], str]:
    """(host without port, repository) → host as image records spell it (with its port)."""
    out: dict[tuple[str, str], str] = {}
    for name in names:
        repo = name.split("@", 1)[0]
        host, sep, path = repo.partition("/")
        if not sep or ("." not in host and ":" not in host and host != "localhost"):
            continue
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path = path[: len(path) - len(last)] + last.split(":", 1)[0]
        out.setdefault((host.split(":", 1)[0], path), host)
    return out


def _source_name(labels: Mapping[str, str], ports: Mapping[tuple[str, str], str]) -> str | None:
    """``host/repository`` from a distribution-source label (its key drops the port; an
    image record of the same repository gives it back)."""
    for key in sorted(labels):
        if key.startswith(_SOURCE_LABEL):
            host = key[len(_SOURCE_LABEL) :]
            repo = labels[key].split(",", 1)[0]
            return f"{ports.get((host, repo), host)}/{repo}"
    return None


def _descriptors(doc: Mapping[str, Any], key: str) -> list[str]:
    items = doc.get(key)
    if not isinstance(items, list):
        return []
    return [d["digest"] for d in items if isinstance(d, dict) and isinstance(d.get("digest"), str)]


def _is_manifest_like(labels: Mapping[str, str]) -> bool:
    return any(
        k == _GC_CONFIG_LABEL or k.startswith((_GC_LAYER_LABEL, _GC_MANIFEST_LABEL)) for k in labels
    )


def images_of_layers(client: ContainerdClient) -> dict[str, str]:
    """Layer (and config) digest → the name of the image it belongs to.

    An image record appears only when a pull has finished (containerd 1.6 creates it after
    the fetch; measured: no record while a layer was in flight), so the names come from the
    content store. A pull fetches and commits the index or manifest before any of its
    layers, and labels it: ``containerd.io/gc.ref.content.config`` and ``…l.<n>`` (the
    config and each layer) or ``…m.<n>`` (an index's manifests), and
    ``containerd.io/distribution.source.<host>=<repository>``. So: every content blob
    with such gc labels (and every image record's target) is read as JSON; an index's
    manifests are read too; each manifest's ``config`` and ``layers`` are mapped to

    - the image record's name when one targets the manifest or its index (a tag first:
      a re-pull, or an image whose blob went missing);
    - else ``host/repository@<index or manifest digest>`` from the distribution-source
      label. Its key carries the registry's host name without the port
      (``distribution.source.127.0.0.1`` for ``127.0.0.1:5000``); an image record of the
      same repository gives the port back, else the name has none. The tag of a pull in
      flight is nowhere in containerd (the kubelet's Pulling event has it).

    A layer two images share gets the name of the one with no record (the one being
    pulled), else the first name in order. The gc labels on a manifest (``l.<n>``) are
    used when its JSON cannot be read."""
    records = _best_names(client)
    ports = _hosts_with_ports(list(records.values()))
    infos = {i.digest: i for i in client.list_content()}
    candidates = sorted({d for d, i in infos.items() if _is_manifest_like(i.labels)} | set(records))
    parent: dict[str, str] = {}  # manifest → its index
    manifests: dict[str, list[str]] = {}
    for digest in candidates:
        info = infos.get(digest)
        labels = info.labels if info is not None else {}
        doc = None
        if info is None or info.size_bytes <= _MANIFEST_MAX_BYTES:
            doc = _read_json(client, digest)
        if doc is not None and (doc.get("mediaType") in INDEX_TYPES or "manifests" in doc):
            for child in _descriptors(doc, "manifests"):
                parent.setdefault(child, digest)
                child_info = infos.get(child)
                if child not in manifests and child_info is not None:
                    child_doc = _read_json(client, child)
                    manifests[child] = _manifest_blobs(child_doc, child_info.labels)
            continue
        manifests[digest] = _manifest_blobs(doc, labels)
    out: dict[str, tuple[bool, str]] = {}
    for digest in sorted(manifests):
        top = parent.get(digest, digest)
        name = records.get(digest) or records.get(top)
        in_flight = name is None
        if name is None:
            source = _source_name(infos[digest].labels if digest in infos else {}, ports)
            if source is None and top in infos:
                source = _source_name(infos[top].labels, ports)
            name = f"{source}@{top}" if source else top
        for blob in manifests[digest]:
            have = out.get(blob)
            if have is None or (in_flight and not have[0]):
                out[blob] = (in_flight, name)
    return {d: name for d, (_, name) in out.items()}


def _manifest_blobs(doc: Mapping[str, Any] | None, labels: Mapping[str, str]) -> list[str]:
    if doc is not None and isinstance(doc.get("layers"), list):
        config = doc.get("config")
        head = [config["digest"]] if isinstance(config, dict) and "digest" in config else []
        return head + _descriptors(doc, "layers")
    by_label = [v for k, v in labels.items() if k.startswith(_GC_LAYER_LABEL)]
    if _GC_CONFIG_LABEL in labels:
        by_label.append(labels[_GC_CONFIG_LABEL])
    return sorted(by_label)
