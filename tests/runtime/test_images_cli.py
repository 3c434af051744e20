"""``mlnode images``: pure report building, and the command against the real containerd."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import testbed
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.gc import ImageRecord, ImageState
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.images import SCHEMA, build_report, images_in_use, report_to_json
from mlnode.runtime.cri import (
    ContainerState,
    CriClient,
    CriContainer,
    CriImage,
    RuntimeVersion,
)
from mlnode.runtime.fs import FilesystemUsage

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _img(id_: str, tag: str, size: int = 10) -> CriImage:
    return CriImage(id_, (tag,), (f"{tag.split(':')[0]}@sha256:{id_[-4:]}",), size, False)


def _ctr(image: str, image_ref: str, state: ContainerState) -> CriContainer:
    return CriContainer("c1", "p1", "app", image, image_ref, None, state, 0)


def test_in_use_by_id_tag_or_digest_in_any_state() -> None:
    a, b, c, d = (_img(f"sha256:{n * 4}", f"r/{n}:1") for n in "abcd")
    containers = [
        _ctr("r/x:9", a.id, ContainerState.EXITED),  # by resolved id, exited counts
        _ctr(b.repo_tags[0], "", ContainerState.CREATED),  # by tag
        _ctr(c.repo_digests[0], "", ContainerState.RUNNING),  # by digest reference
    ]
    assert images_in_use([a, b, c, d], containers) == {a.id, b.id, c.id}


def test_report_json_schema_and_missing_records() -> None:
    big, small = _img("sha256:" + "1" * 64, "r/big:1", 900), _img("sha256:" + "2" * 64, "r/s:1")
    report = build_report(
        endpoint="unix:///run/containerd/containerd.sock",
        runtime=RuntimeVersion("0.1.0", "containerd", "1.6.20~ds1", "v1"),
        images=[small, big],
        containers=[_ctr("r/s:1", "", ContainerState.RUNNING)],
        filesystem=FilesystemUsage(Path("/var/lib/containerd"), 1000, 159, 841),
        image_records={big.id: ImageRecord(first_detected=T0, last_used=None)},
        namespace="k8s.io",
    )
    doc = report_to_json(report)
    assert doc["schema"] == SCHEMA
    assert [i["id"] for i in doc["images"]] == [big.id, small.id]  # largest first
    assert doc["images"][0] == {
        "id": big.id,
        "repo_tags": ["r/big:1"],
        "repo_digests": ["r/big@sha256:1111"],
        "size_bytes": 900,
        "pinned": False,
        "in_use": False,
        "first_detected": "2026-01-02T03:04:05Z",
        "last_used": None,
    }
    assert doc["images"][1]["in_use"] is True and doc["images"][1]["first_detected"] is None
    assert doc["image_filesystem"] == {
        "path": "/var/lib/containerd",
        "capacity_bytes": 1000,
        "available_bytes": 159,
        "used_bytes": 841,
        "usage_percent": 85,
    }
    assert doc["runtime"]["name"] == "containerd" and doc["downloads"] == []


def test_missing_socket_exits_3_with_one_line(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    r = CliRunner().invoke(
        app,
        [
            "images",
            "--runtime-endpoint",
            f"unix://{sock}",
            "--state-file",
            str(tmp_path / "s.json"),
        ],
    )
    assert r.exit_code == 3
    assert r.stderr.strip() == (
        f"mlnode: error: unix://{sock}: no socket at {sock} (is the runtime running?)"
    )


@pytest.mark.runtime
def test_images_against_containerd(
    containerd: testbed.Containerd,
    cri: CriClient,
    registry: testbed.Registry,
    unique_repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    image = testbed.build_image([1024 * 1024], seed=81)
    ref = registry.push(image, unique_repo("cli"), "1")
    cri.pull_image(ref)
    state = tmp_path / "state.json"
    ImageStateFile(state).save(
        ImageState(images={image.image_id: ImageRecord(first_detected=T0, last_used=T0)})
    )
    args = ["images", "--runtime-endpoint", containerd.endpoint, "--state-file", str(state)]
    try:
        r = CliRunner().invoke(app, [*args, "--output", "json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        row = next(i for i in doc["images"] if i["id"] == image.image_id)
        assert row["repo_tags"] == [ref]
        assert row["size_bytes"] == image.compressed_size
        assert row["in_use"] is False and row["pinned"] is False
        assert row["first_detected"] == row["last_used"] == "2026-01-02T03:04:05Z"
        fs = doc["image_filesystem"]
        assert fs["path"] == str(containerd.root)  # from containerd's verbose status
        assert 0 < fs["available_bytes"] <= fs["capacity_bytes"]
        assert 0 <= fs["usage_percent"] <= 100
        assert doc["runtime"]["name"] == "containerd"
        assert doc["runtime"]["endpoint"] == containerd.endpoint
        assert doc["namespace"] == "k8s.io"
        assert doc["runtime_image_fs"][0]["mountpoint"].startswith(str(containerd.root))

        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        assert image.image_id[7:19] in r.stdout and "IN USE" in r.stdout
        assert f"Image filesystem {containerd.root}:" in r.stdout
        assert "content store is not counted" in r.stdout
    finally:
        cri.remove_image(ref)
