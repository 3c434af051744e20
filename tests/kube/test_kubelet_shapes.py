"""The builders of mlnode.testing._kubelet_shapes: every Node passes kubernetes-validate
strict (the newest schema and one four minors older), configz is the kubelet's document
(its key, v1beta1 names, Go durations, version-gated fields), and stats/summary has the
stats/v1alpha1 fields the doctor reads."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from mlnode.testing._kube_reads import SchemaCache
from mlnode.testing._kubelet_shapes import (
    DEFAULT_CONDITIONS,
    configz_document,
    node_object,
    stats_summary,
)

NEWEST = kubernetes_validate.latest_version()
OLDER = "1.{}.0".format(int(NEWEST.split(".")[1]) - 4)
GIB = 1024**3

NODES: dict[str, dict[str, Any]] = {
    "default": node_object("gpu-1"),
    "images": node_object(
        "gpu-2",
        images=[
            (["nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io/nvidia/pytorch@sha256:" + "a" * 64],
             14 * GIB),
            (["registry.k8s.io/pause:3.9"], 321_520),
            ([f"n{i}" for i in range(8)], 5 * GIB),
        ],
        labels={"node.kubernetes.io/instance-type": "p4d.24xlarge", "pool": "a100"},
    ),
    "pressure": node_object(
        "gpu-3",
        kubelet_version="v1.24.17",
        runtime_version="cri-o://1.24.6",
        conditions={"DiskPressure": "True", "Ready": "False"},
        ephemeral_capacity_bytes=100 * GIB,
        ephemeral_allocatable_bytes=80 * GIB,
    ),
    "unknown": node_object("gpu-4", conditions={"Ready": "Unknown"}),
}  # fmt: skip


@pytest.mark.parametrize("version", [NEWEST, OLDER])
@pytest.mark.parametrize("which", sorted(NODES))
def test_every_node_passes_the_strict_schema(which: str, version: str) -> None:
    assert kubernetes_validate.validate(NODES[which], version, strict=True)


def test_the_cached_validator_agrees_with_kubernetes_validate() -> None:
    cache = SchemaCache(NEWEST)
    bad = node_object("x")
    bad["status"]["nodeInfo"]["kubeletVersoin"] = "v1.30.2"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, NEWEST, strict=True)
    assert cache.problems(bad) and cache.problems(bad)[0][0] == "status.nodeInfo"
    assert cache.problems(NODES["images"]) == []


def test_node_fields_the_doctor_reads() -> None:
    node = NODES["images"]
    status = node["status"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.30.2"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.7.13"
    sizes = [i["sizeBytes"] for i in status["images"]]
    assert sizes == sorted(sizes, reverse=True)  # largest first, as the kubelet lists them
    assert max(len(i["names"]) for i in status["images"]) == 5  # at most 5 names each
    assert status["capacity"]["ephemeral-storage"].endswith("Ki")
    assert int(status["allocatable"]["ephemeral-storage"]) > 0
    assert [c["type"] for c in status["conditions"]] == list(DEFAULT_CONDITIONS)
    assert node["metadata"]["labels"]["pool"] == "a100"
    pressure = {c["type"]: c for c in NODES["pressure"]["status"]["conditions"]}
    assert pressure["DiskPressure"]["reason"] == "KubeletHasDiskPressure"
    assert pressure["Ready"]["status"] == "False"
    assert (
        len(node_object("x", images=[([f"i{i}"], i) for i in range(60)])["status"]["images"]) == 50
    )


_GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(s|ms))$|^0s$")


def test_configz_is_the_kubelets_document() -> None:
    doc = configz_document("v1.30.2")
    assert list(doc) == ["kubeletconfig"]
    config = doc["kubeletconfig"]
    assert "kind" not in config and "apiVersion" not in config
    assert config["imageGCHighThresholdPercent"] == 85
    assert config["imageGCLowThresholdPercent"] == 80
    assert config["imageMinimumGCAge"] == "2m0s"
    assert config["evictionHard"]["imagefs.available"] == "15%"
    assert config["serializeImagePulls"] is True and "maxParallelImagePulls" not in config
    for key in (
        "imageMinimumGCAge",
        "imageMaximumGCAge",
        "runtimeRequestTimeout",
        "streamingConnectionIdleTimeout",
        "evictionPressureTransitionPeriod",
    ):
        assert _GO_DURATION.match(config[key]), (key, config[key])  # fmt: skip


def test_configz_fields_follow_the_version_and_overrides() -> None:
    old = configz_document("v1.28.9")["kubeletconfig"]
    assert "imageMaximumGCAge" not in old and "containerLogMaxWorkers" not in old
    new = configz_document("v1.33.1")["kubeletconfig"]
    assert new["imageMaximumGCAge"] == "0s" and new["mergeDefaultEvictionSettings"] is False
    changed = configz_document(
        "v1.30.2", {"serializeImagePulls": False, "maxParallelImagePulls": 3, "port": None}
    )["kubeletconfig"]
    assert changed["maxParallelImagePulls"] == 3 and "port" not in changed
    assert configz_document()["kubeletconfig"]["serializeImagePulls"] is True  # not shared


def test_stats_summary_fields() -> None:
    doc = stats_summary(
        "gpu-1", imagefs=(500 * GIB, 20 * GIB, 410 * GIB), nodefs=(100 * GIB, 60 * GIB, 40 * GIB)
    )
    node = doc["node"]
    assert node["nodeName"] == "gpu-1" and doc["pods"] == []
    image_fs = node["runtime"]["imageFs"]
    assert (image_fs["capacityBytes"], image_fs["availableBytes"], image_fs["usedBytes"]) == (
        500 * GIB, 20 * GIB, 410 * GIB)  # fmt: skip
    assert node["runtime"]["containerFs"] == image_fs  # no split image filesystem
    assert node["fs"]["availableBytes"] == 60 * GIB
    for key in ("time", "inodes", "inodesFree", "inodesUsed"):
        assert key in image_fs
    shared = stats_summary("n", imagefs=(1, 1, 0))["node"]
    assert shared["fs"] == shared["runtime"]["imageFs"]
