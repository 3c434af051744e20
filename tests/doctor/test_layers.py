"""Layer formats of the node's images and the D306 estimate from the measured unpack times."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from mlnode.doctor._layers import (
    MEASURED_GZIP_BYTES,
    ImageLayers,
    layer_findings,
    read_image_layers,
    zstd_tag,
)
from mlnode.runtime.containerd import ContainerdClient, ContainerdImage, Descriptor
from mlnode.runtime.errors import ContentNotFound

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
GB = 1_000_000_000


@dataclass
class FakeImages:
    """containerd's Images.List and Content.Read, as read_image_layers uses them."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    images: list[ContainerdImage] = field(default_factory=list)

    def put(self, doc: Mapping[str, Any]) -> str:
        data = json.dumps(doc).encode()
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[d] = data
        return d

    def record(self, name: str, target: str, media_type: str = OCI_MANIFEST) -> None:
        self.images.append(ContainerdImage(name, Descriptor(media_type, target, 1)))

    def list_images(self, filters: Sequence[str] = ()) -> list[ContainerdImage]:
        return list(self.images)

    def read_content(self, digest: str, *, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        if digest not in self.blobs:
            raise ContentNotFound(f"Content/Read: not found: {digest}", endpoint="fake")
        yield self.blobs[digest]


def _d(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def _manifest(layers: Sequence[tuple[str, int]], media_type: str = OCI_MANIFEST) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _d(0),
            "size": 9,
        },
        "layers": [
            {"mediaType": t, "digest": _d(i + 1), "size": s} for i, (t, s) in enumerate(layers)
        ],
    }


def _client(fake: FakeImages) -> ContainerdClient:
    return cast(ContainerdClient, fake)


def test_cri_records_of_one_image_are_read_once_and_named_by_tag() -> None:
    fake = FakeImages()
    m = fake.put(_manifest([(GZ, 3 * GB), (GZ, 100)]))
    fake.record(f"reg.example/ml/model@{m}", m)
    fake.record(_d(0), m)
    fake.record("reg.example/ml/model:v1", m)
    (img,) = read_image_layers(_client(fake))
    assert img.image == "reg.example/ml/model:v1"
    assert img.size_bytes == 3 * GB + 100
    assert img.layers == ((_d(1), GZ, 3 * GB), (_d(2), GZ, 100))


def test_index_gives_the_platforms_manifest() -> None:
    fake = FakeImages()
    amd = fake.put(_manifest([(ZSTD, 5 * GB)]))
    arm = fake.put(_manifest([(GZ, 7 * GB)]))
    entries = [
        {"digest": arm, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": amd, "platform": {"os": "linux", "architecture": "amd64"}},
    ]
    idx = fake.put({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    fake.record("reg.example/multi:1", idx, OCI_INDEX)
    (img,) = read_image_layers(_client(fake))
    assert img.layers == ((_d(1), ZSTD, 5 * GB),)
    (arm_img,) = read_image_layers(_client(fake), platform="linux/arm64/v8")
    assert arm_img.layers[0][1] == GZ
    assert read_image_layers(_client(fake), platform="linux/s390x") == []


def test_missing_or_broken_targets_are_left_out() -> None:
    fake = FakeImages()
    fake.record("reg.example/gone:1", _d(77))
    bad = "sha256:" + "b" * 64
    fake.blobs[bad] = b"{not json"
    fake.record("reg.example/bad:1", bad)
    assert read_image_layers(_client(fake)) == []


def test_big_gzip_image_gets_d306_scaled_from_the_measurement() -> None:
    image = ImageLayers(
        "reg.example/ml/model:v1",
        2 * MEASURED_GZIP_BYTES + 5 * GB,
        (
            (_d(1), GZ, 2 * MEASURED_GZIP_BYTES),
            (_d(2), ZSTD, 5 * GB),
        ),
    )
    (f,) = layer_findings("n1", [image], min_image_bytes=GB)
    assert f.code == "D306" and f.severity.value == "info" and f.subject == image.image
    # 2x the measured 1.07 GB layer: 2 x 53.9 s vs 2 x 32.5 s
    assert "about 108 s of unpack now, 65 s as zstd" in f.cause
    assert "53.9 s" in f.cause and "32.5 s" in f.cause and "estimate" in f.cause
    text = "\n".join(f.evidence)
    assert f"gzip: {2 * MEASURED_GZIP_BYTES} bytes" in text and f"largest layer {_d(1)}" in text
    assert (
        "`skopeo copy --dest-compress-format zstd docker://reg.example/ml/model:v1 "
        "docker://reg.example/ml/model:v1-zstd`"
    ) in f.fix
    assert "containerd 1.5" in f.fix and "CRI-O" in f.fix


def test_small_or_zstd_images_get_nothing() -> None:
    small = ImageLayers("a:1", 10, ((_d(1), GZ, 10),))
    zstd = ImageLayers("b:1", 9 * GB, ((_d(1), ZSTD, 9 * GB),))
    docker = ImageLayers("c:1", 2 * GB, ((_d(1), DOCKER_GZ, 2 * GB),))
    found = layer_findings("n", [small, zstd, docker], min_image_bytes=GB)
    assert [f.subject for f in found] == ["c:1"]  # docker's gzip type counts as gzip


def test_zstd_tag() -> None:
    assert zstd_tag("reg:5000/ml/model:v1") == "reg:5000/ml/model:v1-zstd"
    assert zstd_tag("reg:5000/ml/model") == "reg:5000/ml/model:zstd"
    assert zstd_tag("reg:5000/ml/model@sha256:" + "a" * 64) == "reg:5000/ml/model:zstd"
