"""The DaemonSet agrees with the config it mounts and with SPEC10: hostNetwork for the loopback
mirror, NODE_NAME, the mounts each path of the config needs, probes on the listen port,
tolerations, and a container that holds no capability."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from .manifests import agent_container, configmap_file, daemonset, the


def _pod() -> dict[str, Any]:
    spec: dict[str, Any] = daemonset()["spec"]["template"]["spec"]
    return spec


def _agent_config() -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load(configmap_file("agent.yaml"))
    return cfg


def _mounts() -> dict[str, dict[str, Any]]:
    """mountPath -> the mount, with its volume under "volume"."""
    volumes = {v["name"]: v for v in _pod()["volumes"]}
    out = {}
    for m in agent_container()["volumeMounts"]:
        out[m["mountPath"]] = {**m, "volume": volumes[m["name"]]}
    assert len(volumes) == len(out), "a volume nobody mounts"
    return out


def _mount_of(path: str) -> dict[str, Any]:
    """The mount a path inside the container lives on (the longest mountPath above it)."""
    p = PurePosixPath(path)
    best = max(
        (mp for mp in _mounts() if p == PurePosixPath(mp) or PurePosixPath(mp) in p.parents),
        key=len,
        default=None,
    )
    assert best is not None, f"{path} is on no mount (the root filesystem is read-only)"
    return _mounts()[best]


def test_host_network_for_the_loopback_mirror() -> None:
    pod = _pod()
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    mirror = yaml.safe_load(configmap_file("mirror.yaml"))
    assert mirror["listen"] == "127.0.0.1:6055"
    agent = _agent_config()
    assert agent["mirror"] == {"enabled": True, "config": "/etc/mlnode/mirror.yaml"}


def test_node_name_from_the_downward_api() -> None:
    env = {e["name"]: e for e in agent_container()["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "node_name" not in _agent_config()  # so $NODE_NAME is what the agent uses


def test_mounts_for_every_path_the_config_names() -> None:
    agent = _agent_config()
    mirror = yaml.safe_load(configmap_file("mirror.yaml"))
    socket = agent["runtime_endpoint"].removeprefix("unix://")
    run = _mount_of(socket)
    assert run["mountPath"] == "/run/containerd"
    assert run["volume"]["hostPath"] == {"path": "/run/containerd", "type": "Directory"}

    image_fs = _mount_of(agent["image_fs"])
    assert image_fs["mountPath"] == "/var/lib/containerd" == agent["image_fs"]
    assert image_fs["readOnly"] is True  # statvfs only
    assert image_fs["volume"]["hostPath"] == {"path": "/var/lib/containerd", "type": "Directory"}

    for path in (agent["state_dir"], mirror["cache_dir"]):
        state = _mount_of(path)
        assert state["mountPath"] == "/var/lib/mlnode"
        assert not state.get("readOnly", False), path
        assert state["volume"]["hostPath"] == {
            "path": "/var/lib/mlnode",
            "type": "DirectoryOrCreate",
        }
    # The same path inside as on the host: what the agent logs and stores is the node's path.
    for m in _mounts().values():
        if "hostPath" in m["volume"]:
            assert m["volume"]["hostPath"]["path"] == m["mountPath"]

    config = _mount_of(agent["mirror"]["config"])
    assert config["mountPath"] == "/etc/mlnode" and config["readOnly"] is True
    items = {i["key"]: i["path"] for i in config["volume"]["configMap"]["items"]}
    assert config["volume"]["configMap"]["name"] == "mlnode-agent"
    assert items == {k: k for k in the("ConfigMap", "mlnode-agent")["data"]}
    args = agent_container()["args"]
    assert args[args.index("--config") + 1] == "/etc/mlnode/agent.yaml"
    assert PurePosixPath(agent["mirror"]["config"]).name in items


def test_probes_on_the_listen_address() -> None:
    host, port = _agent_config()["listen"].rsplit(":", 1)
    c = agent_container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        get = probe["httpGet"]
        assert get["port"] == int(port)
        # The kubelet probes the pod IP, i.e. the node's IP with hostNetwork: the agent must
        # listen there, or the probe must name the host it listens on.
        assert host == "0.0.0.0" or get.get("host") == host
    (p,) = c["ports"]
    assert p["containerPort"] == p["hostPort"] == int(port)
    svc = the("Service", "mlnode-agent-metrics")
    assert svc["spec"]["clusterIP"] == "None"
    assert [x["port"] for x in svc["spec"]["ports"]] == [int(port)]
    assert svc["spec"]["ports"][0]["targetPort"] == p["name"]
    assert svc["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": port,
        "prometheus.io/path": "/metrics",
    }
    labels = daemonset()["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


def test_tolerations_selector_priority_rollout() -> None:
    pod = _pod()
    tolerations = pod["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert {"operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    strategy = daemonset()["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}
    resources = agent_container()["resources"]
    assert set(resources) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_no_privilege_beyond_uid_0() -> None:
    sc = agent_container()["securityContext"]
    assert sc["runAsUser"] == 0  # the socket is root:root 0660
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = _pod()
    for key in ("hostPID", "hostIPC"):
        assert not pod.get(key, False)
    # Only the agent's own state is writable on the host.
    writable = [m["mountPath"] for m in _mounts().values()
                if "hostPath" in m["volume"] and not m.get("readOnly", False)]  # fmt: skip
    assert writable == ["/var/lib/mlnode"]


def test_grace_period_covers_the_units_stop_timeout() -> None:
    from .manifests import UNIT, unit_sections, unit_values

    (timeout,) = unit_values(unit_sections(UNIT.read_text()), "Service", "TimeoutStopSec")
    assert daemonset()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == int(
        timeout.removesuffix("s")
    )
