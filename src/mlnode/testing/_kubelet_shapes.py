"""Builders for what a cluster's nodes report, shaped as the real API and kubelet answer,
each beside its upstream source (written from those documents; no upstream code copied):

- :func:`node_object`: a core/v1 Node as ``kubectl get node NAME -o json`` prints it;
- :func:`configz_document`: the kubelet's ``/configz`` (through the node proxy);
- :func:`stats_summary`: the kubelet's ``/stats/summary`` (stats/v1alpha1 Summary).

Every Node built here passes ``kubernetes_validate.validate(node, v, strict=True)``
(tests/kube/test_kubelet_shapes.py).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from mlnode.knowledge.table import eviction_hard_defaults
from mlnode.versions import Version

__all__ = [
    "DEFAULT_CONDITIONS",
    "configz_document",
    "node_object",
    "stats_summary",
]

_STAMP = "2026-01-01T00:00:00Z"

# Node conditions. Types, reasons and messages as the kubelet sets them
# (kubernetes/kubernetes pkg/kubelet/nodestatus/setters.go: MemoryPressureCondition,
# DiskPressureCondition, PIDPressureCondition, ReadyCondition); "Ready" False with
# KubeletNotReady, "Unknown" with NodeStatusUnknown as the node lifecycle controller writes
# it when the kubelet stops posting (pkg/controller/nodelifecycle).
_CONDITION_TEXT: dict[tuple[str, str], tuple[str, str]] = {
    ("MemoryPressure", "False"): (
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("MemoryPressure", "True"): (
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
    ),
    ("DiskPressure", "False"): ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("DiskPressure", "True"): ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    ("PIDPressure", "False"): ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("PIDPressure", "True"): (
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
    ),
    ("Ready", "True"): ("KubeletReady", "kubelet is posting ready status"),
    ("Ready", "False"): ("KubeletNotReady", "container runtime network not ready"),
}
_UNKNOWN = ("NodeStatusUnknown", "Kubelet stopped posting node status.")

#: The four conditions a kubelet posts, in its order, healthy.
DEFAULT_CONDITIONS: Mapping[str, str] = {
    "MemoryPressure": "False",
    "DiskPressure": "False",
    "PIDPressure": "False",
    "Ready": "True",
}


def _conditions(wanted: Mapping[str, str]) -> list[dict[str, str]]:
    out = []
    for kind, state in {**DEFAULT_CONDITIONS, **wanted}.items():
        reason, message = _CONDITION_TEXT.get((kind, state), _UNKNOWN)
        out.append(
            {
                "type": kind,
                "status": state,
                "lastHeartbeatTime": _STAMP,
                "lastTransitionTime": _STAMP,
                "reason": reason,
                "message": message,
            }
        )
    return out


def _uuidish(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# Node. Fields: kubernetes.io/docs/reference/kubernetes-api/cluster-resources/node-v1
# (NodeSpec podCIDR(s); NodeStatus addresses, allocatable, capacity, conditions,
# daemonEndpoints.kubeletEndpoint.Port, images [{names, sizeBytes}], nodeInfo with its ten
# required keys); the well-known labels of kubernetes.io/docs/reference/labels-annotations-
# taints; images sorted largest first, at most 5 names each, at most nodeStatusMaxImages
# (50) (pkg/kubelet/nodestatus/setters.go Images()). Layout checked against recorded
# `kubectl get node -o json` outputs in public repositories (a Docker Desktop v1.25.4
# node, EKS v1.10 and v1.21 nodes): keys sorted, capacity ephemeral-storage in Ki and
# allocatable in plain bytes, hugepages-* "0", the digest name before the tag name,
# kubeletEndpoint Port 10250. kubeProxyVersion is deprecated from v1.31 (KEP-4004) and
# left empty.
def node_object(
    name: str,
    *,
    kubelet_version: str = "v1.30.2",
    runtime_version: str = "containerd://1.7.13",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    images: Sequence[tuple[Sequence[str], int]] = (),
    conditions: Mapping[str, str] | None = None,
    ephemeral_capacity_bytes: int = 214_643_507_200,
    ephemeral_allocatable_bytes: int | None = None,
    addresses: Sequence[tuple[str, str]] | None = None,
    pod_cidr: str = "10.244.1.0/24",
    max_images: int = 50,
) -> dict[str, Any]:
    """A whole Node; ``images`` (names, size_bytes) in any order, ``conditions`` type →
    ``"True"``/``"False"``/``"Unknown"`` over :data:`DEFAULT_CONDITIONS`."""
    if ephemeral_allocatable_bytes is None:
        ephemeral_allocatable_bytes = ephemeral_capacity_bytes * 9 // 10  # nodefs.available 10%
    listed = sorted(images, key=lambda i: -i[1])
    if max_images >= 0:
        listed = listed[:max_images]
    if addresses is None:
        addresses = (("InternalIP", "10.0.0.11"), ("Hostname", name))
    resources = {"cpu": "96", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                **(annotations or {}),
            },
            "creationTimestamp": _STAMP,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
            "name": name,
            "resourceVersion": "1",
            "uid": _uuidish("uid/" + name),
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "addresses": [{"address": a, "type": t} for t, a in addresses],
            "allocatable": {
                **resources,
                "ephemeral-storage": str(ephemeral_allocatable_bytes),
                "memory": "1056462828Ki",
                "nvidia.com/gpu": "8",
            },
            "capacity": {
                **resources,
                "ephemeral-storage": f"{ephemeral_capacity_bytes // 1024}Ki",
                "memory": "1056565228Ki",
                "nvidia.com/gpu": "8",
            },
            "conditions": _conditions(conditions or {}),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [{"names": list(n)[:5], "sizeBytes": size} for n, size in listed],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": _uuidish("boot/" + name),
                "containerRuntimeVersion": runtime_version,
                "kernelVersion": "6.1.0-18-amd64",
                "kubeProxyVersion": "",
                "kubeletVersion": kubelet_version,
                "machineID": hashlib.sha256(("machine/" + name).encode()).hexdigest()[:32],
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.4 LTS",
                "systemUUID": _uuidish("system/" + name),
            },
        },
    }


# configz. The kubelet serves {"kubeletconfig": {...}}: its merged configuration in the
# kubelet.config.k8s.io/v1beta1 JSON field names, every default filled in, durations as Go
# prints them ("2m0s"), and no kind/apiVersion. Sources: kubernetes/kubernetes
# cmd/kubelet/app/server.go (initConfigz registers configz.New("kubeletconfig") and
# setConfigz stores the running config converted to a v1beta1 KubeletConfiguration whose
# TypeMeta is empty); pkg/kubelet/server (InstallDebuggingHandlers serves /configz); the
# kubernetes website's "Reconfigure a Node's Kubelet" task, whose jq line adds kind and
# apiVersion to .kubeletconfig because configz lacks them;
# defaults from pkg/kubelet/apis/config/v1beta1/defaults.go and the field table of
# kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1 (and
# ../shared/reference/kubelet-facts.md section 2). Version-gated fields: imageMaximumGCAge
# (v1.29+), containerLogMaxWorkers/containerLogMonitorInterval (v1.30+),
# mergeDefaultEvictionSettings (v1.33+); maxParallelImagePulls is nil by default and so
# absent unless set.
_CONFIGZ_BASE: dict[str, Any] = {
    "enableServer": True,
    "staticPodPath": "/etc/kubernetes/manifests",
    "podLogsDir": "/var/log/pods",
    "syncFrequency": "1m0s",
    "fileCheckFrequency": "20s",
    "httpCheckFrequency": "20s",
    "address": "0.0.0.0",
    "port": 10250,
    "tlsCertFile": "/var/lib/kubelet/pki/kubelet.crt",
    "tlsPrivateKeyFile": "/var/lib/kubelet/pki/kubelet.key",
    "rotateCertificates": True,
    "authentication": {
        "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        "webhook": {"enabled": True, "cacheTTL": "2m0s"},
        "anonymous": {"enabled": False},
    },
    "authorization": {
        "mode": "Webhook",
        "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
    },
    "registryPullQPS": 5,
    "registryBurst": 10,
    "eventRecordQPS": 50,
    "eventBurst": 100,
    "enableDebuggingHandlers": True,
    "healthzPort": 10248,
    "healthzBindAddress": "127.0.0.1",
    "oomScoreAdj": -999,
    "clusterDomain": "cluster.local",
    "clusterDNS": ["10.96.0.10"],
    "streamingConnectionIdleTimeout": "4h0m0s",
    "nodeStatusUpdateFrequency": "10s",
    "nodeStatusReportFrequency": "5m0s",
    "nodeLeaseDurationSeconds": 40,
    "imageMinimumGCAge": "2m0s",
    "imageGCHighThresholdPercent": 85,
    "imageGCLowThresholdPercent": 80,
    "volumeStatsAggPeriod": "1m0s",
    "cgroupsPerQOS": True,
    "cgroupDriver": "systemd",
    "cpuManagerPolicy": "none",
    "cpuManagerReconcilePeriod": "10s",
    "memoryManagerPolicy": "None",
    "topologyManagerPolicy": "none",
    "topologyManagerScope": "container",
    "runtimeRequestTimeout": "2m0s",
    "hairpinMode": "promiscuous-bridge",
    "maxPods": 110,
    "podPidsLimit": -1,
    "resolvConf": "/run/systemd/resolve/resolv.conf",
    "cpuCFSQuota": True,
    "cpuCFSQuotaPeriod": "100ms",
    "nodeStatusMaxImages": 50,
    "maxOpenFiles": 1000000,
    "contentType": "application/vnd.kubernetes.protobuf",
    "kubeAPIQPS": 50,
    "kubeAPIBurst": 100,
    "serializeImagePulls": True,
    "evictionHard": {
        "imagefs.available": "15%",
        "memory.available": "100Mi",
        "nodefs.available": "10%",
        "nodefs.inodesFree": "5%",
    },
    "evictionPressureTransitionPeriod": "5m0s",
    "enableControllerAttachDetach": True,
    "makeIPTablesUtilChains": True,
    "iptablesMasqueradeBit": 14,
    "iptablesDropBit": 15,
    "failSwapOn": True,
    "memorySwap": {},
    "containerLogMaxSize": "10Mi",
    "containerLogMaxFiles": 5,
    "configMapAndSecretChangeDetectionStrategy": "Watch",
    "enforceNodeAllocatable": ["pods"],
    "volumePluginDir": "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/",
    "logging": {
        "format": "text",
        "flushFrequency": "5s",
        "verbosity": 0,
        "options": {"text": {"infoBufferSize": "0"}, "json": {"infoBufferSize": "0"}},
    },
    "enableSystemLogHandler": True,
    "enableSystemLogQuery": False,
    "shutdownGracePeriod": "0s",
    "shutdownGracePeriodCriticalPods": "0s",
    "enableProfilingHandler": True,
    "enableDebugFlagsHandler": True,
    "seccompDefault": False,
    "memoryThrottlingFactor": 0.9,
    "registerNode": True,
    "localStorageCapacityIsolation": True,
    "containerRuntimeEndpoint": "unix:///var/run/containerd/containerd.sock",
}
_CONFIGZ_SINCE: tuple[tuple[tuple[int, int], str, Any], ...] = (
    ((1, 29), "imageMaximumGCAge", "0s"),
    ((1, 30), "containerLogMaxWorkers", 1),
    ((1, 30), "containerLogMonitorInterval", "10s"),
    ((1, 33), "mergeDefaultEvictionSettings", False),
)


def configz_document(
    kubelet_version: str = "v1.30.2", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{"kubeletconfig": {...}}`` for that kubelet version; ``overrides`` replace
    top-level fields (a value of None removes the field, as an unset pointer is omitted)."""
    version = Version.parse(kubelet_version)
    config = copy.deepcopy(_CONFIGZ_BASE)
    for since, key, value in _CONFIGZ_SINCE:
        if version.minor_line >= since:
            config[key] = value
    # the defaulted evictionHard is the version's (imagefs.inodesFree joins in 1.30:
    # mlnode.knowledge's table, read at pkg/kubelet/eviction/defaults_linux.go; a recorded
    # 1.33+ configz shows the same five signals)
    config["evictionHard"] = dict(sorted(eviction_hard_defaults(version).items()))
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = copy.deepcopy(value)
    return {"kubeletconfig": config}


# stats/summary. Shape: kubernetes/kubelet pkg/apis/stats/v1alpha1/types.go (Summary
# {node NodeStats, pods []PodStats}; NodeStats nodeName, systemContainers, startTime, cpu,
# memory, network, fs, runtime {imageFs, containerFs}, rlimit; FsStats time,
# availableBytes, capacityBytes, usedBytes, inodesFree, inodes, inodesUsed). runtime.
# containerFs is filled from v1.29 (KEP-4191); without a split image filesystem the kubelet
# reports containerFs equal to imageFs. imageFs.usedBytes counts image bytes only (not
# what else shares the filesystem): kubelet-facts.md section 7.
FsTriple = tuple[int, int, int]  # (capacity_bytes, available_bytes, used_bytes)


def _fs(triple: FsTriple, *, inodes: int = 26_214_400) -> dict[str, Any]:
    capacity, available, used = triple
    inodes_used = min(inodes, max(0, used // 65_536))
    return {
        "time": _STAMP,
        "availableBytes": available,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": inodes - inodes_used,
        "inodes": inodes,
        "inodesUsed": inodes_used,
    }


def stats_summary(
    node: str,
    *,
    imagefs: FsTriple,
    nodefs: FsTriple | None = None,
    container_fs: FsTriple | None = None,
    pods: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A Summary for ``node``: ``nodefs`` defaults to ``imagefs`` (one filesystem, the
    usual layout), ``container_fs`` to ``imagefs``."""
    return {
        "node": {
            "nodeName": node,
            "systemContainers": [
                {
                    "name": "kubelet",
                    "startTime": _STAMP,
                    "cpu": {"time": _STAMP, "usageNanoCores": 41_000_000},
                    "memory": {"time": _STAMP, "workingSetBytes": 98_000_000},
                }
            ],
            "startTime": _STAMP,
            "cpu": {"time": _STAMP, "usageNanoCores": 1_200_000_000, "usageCoreNanoSeconds": 9},
            "memory": {
                "time": _STAMP,
                "availableBytes": 900_000_000_000,
                "usageBytes": 120_000_000_000,
                "workingSetBytes": 110_000_000_000,
            },
            "network": {
                "time": _STAMP,
                "name": "eth0",
                "rxBytes": 1_000_000,
                "rxErrors": 0,
                "txBytes": 1_000_000,
                "txErrors": 0,
                "interfaces": [
                    {
                        "name": "eth0",
                        "rxBytes": 1_000_000,
                        "rxErrors": 0,
                        "txBytes": 1_000_000,
                        "txErrors": 0,
                    }
                ],
            },
            "fs": _fs(nodefs or imagefs),
            "runtime": {"imageFs": _fs(imagefs), "containerFs": _fs(container_fs or imagefs)},
            "rlimit": {"time": _STAMP, "maxpid": 4_194_304, "curproc": 1_234},
        },
        "pods": [copy.deepcopy(dict(p)) for p in pods],
    }
