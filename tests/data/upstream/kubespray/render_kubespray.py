"""Render kubespray v2.31.0's kubelet templates (copied verbatim next to this file) for
plain default values, the way Ansible's template module would.

Run once by hand (``python3 render_kubespray.py`` in this folder; needs jinja2 and
PyYAML); its outputs ``kubelet.env`` and ``kubelet-config.yaml`` are checked in. The
variables are kubespray v2.31.0's role defaults (``roles/kubernetes/node/defaults/
main.yml``, ``roles/kubespray_defaults/defaults/main/main.yml``), with every templated
default resolved by hand for one node ``node1`` at ``10.0.0.11`` running containerd;
each value's origin is in PROVENANCE.md. Variables the roles leave undefined (for example
``kubelet_image_gc_high_threshold``) stay undefined, so the template omits them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

HERE = Path(__file__).parent

VARIABLES: dict[str, Any] = {
    # roles/kubernetes/node/defaults/main.yml
    "kube_log_level": 2,
    "kubelet_address": "10.0.0.11",  # "{{ main_ips | join(',') }}"
    "kube_override_hostname": "node1",  # "{{ inventory_hostname }}"
    "kubelet_runtime_cgroups": "/system.slice/containerd.service",
    "kubelet_kubelet_cgroups": "/system.slice/kubelet.service",
    "kubelet_custom_flags": [],
    "kubelet_status_update_frequency": "10s",
    "kubelet_fail_swap_on": True,
    "kubelet_authentication_token_webhook": True,
    "kubelet_authorization_mode_webhook": True,
    "kubelet_fail_cgroup_v1": True,
    "kubelet_enforce_node_allocatable": '""',
    "kubelet_logfiles_max_nr": 5,
    "kubelet_logfiles_max_size": "10Mi",
    "kubelet_max_pods": 110,
    "kubelet_pod_pids_limit": -1,
    "kubelet_bind_address": "10.0.0.11",  # "{{ main_ip | default('::') }}"
    "kubelet_healthz_port": 10248,
    "kubelet_healthz_bind_address": "127.0.0.1",
    "kubelet_protect_kernel_defaults": True,
    "kubelet_rotate_certificates": True,
    "kubelet_rotate_server_certificates": False,
    "kube_reserved": False,
    "system_reserved": False,
    "kube_cpu_reserved": "100m",
    "kube_memory_reserved": "256Mi",
    "kube_ephemeral_storage_reserved": "500Mi",
    "kube_pid_reserved": "1000",
    "system_cpu_reserved": "500m",
    "system_memory_reserved": "512Mi",
    "system_ephemeral_storage_reserved": "500Mi",
    "system_pid_reserved": 1000,
    "eviction_hard": {},
    "kube_resolv_conf": "/etc/resolv.conf",
    "kubelet_config_extra_args": {},
    "kubelet_feature_gates": [],
    "kubelet_event_record_qps": 50,
    "kubelet_shutdown_grace_period": "60s",
    "kubelet_shutdown_grace_period_critical_pods": "20s",
    "kubelet_swap_behavior": "LimitedSwap",
    "kubelet_tracing": False,
    "kubelet_max_parallel_image_pulls": 1,
    # roles/kubespray_defaults/defaults/main/main.yml
    "kube_config_dir": "/etc/kubernetes",
    "kube_cert_dir": "/etc/kubernetes/ssl",  # "{{ kube_config_dir }}/ssl"
    "kube_manifest_dir": "/etc/kubernetes/manifests",  # "{{ kube_config_dir }}/manifests"
    "kube_network_plugin": "calico",
    "cloud_provider": "",
    "bin_dir": "/usr/local/bin",
    "kube_version": "1.35.4",  # first amd64 key of kubelet_checksums (vars/main/checksums.yml)
    "cri_socket": "unix:///var/run/containerd/containerd.sock",  # container_manager containerd
    "kube_read_only_port": 0,
    "dns_domain": "cluster.local",  # "{{ cluster_name }}"
    "enable_nodelocaldns": True,
    "nodelocaldns_ip": "169.254.25.10",
    "dns_mode": "coredns",
    "skydns_server": "10.233.0.3",  # 3rd address of kube_service_addresses 10.233.0.0/18
    "kube_feature_gates": [],
}


def _to_nice_yaml(value: object, indent: int = 4) -> str:
    return str(yaml.dump(value, indent=indent, allow_unicode=True, default_flow_style=False))


def _version(value: str, other: str, op: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.lstrip("v").split("."))

    a, b = key(value), key(other)
    return {">=": a >= b, ">": a > b, "<": a < b, "<=": a <= b, "==": a == b}[op]


def render(template: str) -> str:
    # Ansible's template module: trim_blocks on, trailing newline kept.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["to_nice_yaml"] = _to_nice_yaml
    env.filters["bool"] = lambda v: (
        v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    )
    env.tests["version"] = _version
    env.globals["lookup"] = lambda _plugin, name: VARIABLES[name]
    return env.get_template(template).render(**VARIABLES)


if __name__ == "__main__":
    (HERE / "kubelet.env").write_text(render("kubelet.env.v1beta1.j2"))
    (HERE / "kubelet-config.yaml").write_text(render("kubelet-config.v1beta1.yaml.j2"))
