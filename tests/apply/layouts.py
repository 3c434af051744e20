"""Node file trees as the installers leave them, built under a temporary root.

Each builder writes the files a real node of that kind has (contents follow the kubeadm
deb/rpm packages, kubeadm's generated files, and kubespray's templates) plus fake
``kubelet``/``containerd`` binaries that answer ``--version`` like the real ones.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KUBELET_SERVICE_DEB = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-{extra}
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""  # noqa: E501

KUBEADM_CONFIG_YAML = """\
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
healthzBindAddress: 127.0.0.1
healthzPort: 10248
imageMinimumGCAge: 0s
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"""

KUBEADM_FLAGS_ENV = (
    'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
    'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n'
)

DEFAULT_KUBELET = """\
# Extra kubelet flags for this GPU node (managed by hand).
KUBELET_EXTRA_ARGS="--node-labels=gpu=a100 --image-gc-high-threshold=90"
"""

CONTAINERD_CONFIG_V2 = """\
# containerd config for GPU nodes
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"
    # keep at most 3 layer downloads per pull
    max_concurrent_downloads = 3

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
"""

KUBESPRAY_SERVICE = """\
[Unit]
Description=Kubernetes Kubelet Server
Documentation=https://github.com/GoogleCloudPlatform/kubernetes
After=containerd.service
Wants=containerd.service

[Service]
EnvironmentFile=-/etc/kubernetes/kubelet.env
ExecStart=/usr/local/bin/kubelet \\
\t\t$KUBE_LOGTOSTDERR \\
\t\t$KUBE_LOG_LEVEL \\
\t\t$KUBELET_API_SERVER \\
\t\t$KUBELET_ADDRESS \\
\t\t$KUBELET_PORT \\
\t\t$KUBELET_HOSTNAME \\
\t\t$KUBELET_ARGS \\
\t\t$DOCKER_SOCKET \\
\t\t$KUBELET_NETWORK_PLUGIN \\
\t\t$KUBELET_VOLUME_PLUGIN \\
\t\t$KUBELET_CLOUDPROVIDER
Restart=always
RestartSec=10s

[Install]
WantedBy=multi-user.target
"""

KUBESPRAY_ENV = """\
KUBE_LOG_LEVEL="--v=2"
KUBELET_ADDRESS="--node-ip=10.0.0.5"
KUBELET_HOSTNAME="--hostname-override=gpu-node-1"

KUBELET_ARGS="--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \\
--config=/etc/kubernetes/kubelet-config.yaml \\
--kubeconfig=/etc/kubernetes/kubelet.conf \\
--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock \\
--runtime-cgroups=/system.slice/containerd.service \\
 --node-labels=  "
KUBELET_CLOUDPROVIDER=""

PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""

KUBESPRAY_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
nodeStatusUpdateFrequency: "10s"
failSwapOn: True
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: True
  x509:
    clientCAFile: /etc/kubernetes/ssl/ca.crt
authorization:
  mode: Webhook
staticPodPath: /etc/kubernetes/manifests
cgroupDriver: systemd
containerLogMaxFiles: 5
containerLogMaxSize: 10Mi
maxPods: 110
podPidsLimit: -1
address: 10.0.0.5
readOnlyPort: 0
healthzPort: 10248
healthzBindAddress: 127.0.0.1
kubeletCgroups: /system.slice/kubelet.service
clusterDomain: cluster.local
protectKernelDefaults: true
rotateCertificates: true
clusterDNS:
- 169.254.25.10
resolvConf: "/run/systemd/resolve/resolv.conf"
eventRecordQPS: 50
shutdownGracePeriod: 60s
shutdownGracePeriodCriticalPods: 20s
maxParallelImagePulls: 1
"""

PLAIN_SERVICE = """\
[Unit]
Description=Kubernetes kubelet
After=containerd.service
Requires=containerd.service

[Service]
ExecStart=/usr/bin/kubelet \\
  --config=/etc/kubernetes/kubelet.yaml \\
  --config-dir=/etc/kubernetes/kubelet.conf.d \\
  --kubeconfig=/etc/kubernetes/kubelet.conf \\
  --container-runtime-endpoint=unix:///run/containerd/containerd.sock
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""

PLAIN_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
# GC as shipped; mlnode's drop-in overrides these
imageGCHighThresholdPercent: 85
imageGCLowThresholdPercent: 80
"""

PLAIN_DROPIN = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 64
"""


def _write(root: Path, node_path: str, text: str, mode: int = 0o644) -> None:
    p = root / node_path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    p.chmod(mode)


def _binary(root: Path, node_path: str, script: str) -> None:
    _write(root, node_path, "#!/bin/sh\n" + script)
    p = root / node_path.lstrip("/")
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _containerd(root: Path, containerd_version: str, config: str | None, bindir: str) -> None:
    if config is not None:
        _write(root, "/etc/containerd/config.toml", config)
    _binary(
        root,
        f"{bindir}/containerd",
        'case "$1" in\n'
        f'  --version|-v) echo "containerd containerd.io {containerd_version} '
        'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";;\n'
        '  *) echo "containerd stand-in: $*" >&2; exit 1;;\n'
        "esac\n",
    )


def _kubelet_binary(root: Path, node_path: str, version: str) -> None:
    _binary(
        root,
        node_path,
        f'if [ "$1" = "--version" ]; then echo "Kubernetes v{version}"; exit 0; fi\n'
        'echo "kubelet stand-in binary: run by the tests\' service manager" >&2\nexit 1\n',
    )


def build_kubeadm(
    root: Path,
    *,
    flavor: str = "deb",
    kubelet_version: str = "1.30.2",
    containerd_version: str = "1.7.13",
    extra_args: str = DEFAULT_KUBELET,
    old_dropin_dir: bool = False,
    containerd_config: str | None = CONTAINERD_CONFIG_V2,
) -> Path:
    """A kubeadm node installed from the deb (/etc/default) or rpm (/etc/sysconfig) packages."""
    extra = "/etc/default/kubelet" if flavor == "deb" else "/etc/sysconfig/kubelet"
    unit_dir = "/etc/systemd/system" if old_dropin_dir else "/usr/lib/systemd/system"
    _write(root, f"{unit_dir}/kubelet.service", KUBELET_SERVICE_DEB)
    _write(
        root, f"{unit_dir}/kubelet.service.d/10-kubeadm.conf", KUBEADM_DROPIN.format(extra=extra)
    )
    _write(root, extra, extra_args)
    _write(root, "/var/lib/kubelet/kubeadm-flags.env", KUBEADM_FLAGS_ENV)
    _write(root, "/var/lib/kubelet/config.yaml", KUBEADM_CONFIG_YAML)
    _kubelet_binary(root, "/usr/bin/kubelet", kubelet_version)
    _containerd(root, containerd_version, containerd_config, "/usr/bin")
    return root


def build_kubespray(
    root: Path,
    *,
    kubelet_version: str = "1.30.2",
    containerd_version: str = "1.7.13",
    env: str = KUBESPRAY_ENV,
) -> Path:
    _write(root, "/etc/systemd/system/kubelet.service", KUBESPRAY_SERVICE)
    _write(root, "/etc/kubernetes/kubelet.env", env, 0o600)
    _write(root, "/etc/kubernetes/kubelet-config.yaml", KUBESPRAY_CONFIG, 0o600)
    _kubelet_binary(root, "/usr/local/bin/kubelet", kubelet_version)
    _containerd(root, containerd_version, CONTAINERD_CONFIG_V2, "/usr/local/bin")
    return root


def build_plain(
    root: Path,
    *,
    kubelet_version: str = "1.31.1",
    containerd_version: str = "2.0.2",
) -> Path:
    """A hand-made systemd unit that already passes --config-dir."""
    _write(root, "/etc/systemd/system/kubelet.service", PLAIN_SERVICE)
    _write(root, "/etc/kubernetes/kubelet.yaml", PLAIN_CONFIG)
    _write(root, "/etc/kubernetes/kubelet.conf.d/50-pods.conf", PLAIN_DROPIN)
    _kubelet_binary(root, "/usr/bin/kubelet", kubelet_version)
    _containerd(root, containerd_version, None, "/usr/bin")
    return root


def owner_ids() -> tuple[int, int]:
    return os.getuid(), os.getgid()
