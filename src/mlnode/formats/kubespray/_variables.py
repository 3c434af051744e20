"""The kubespray variables mlnode knows, and what each one becomes on the node."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from mlnode.versions import RuntimeKind

__all__ = [
    "BY_NAME",
    "DEDICATED",
    "KUBESPRAY_VARIABLES",
    "RUNTIME_VAR",
    "TEMPLATED",
    "TEMPLATE_ALWAYS_WRITES",
    "KubesprayVariable",
    "Target",
]


class Target(enum.StrEnum):
    FIELD = "field"  # one KubeletConfiguration field
    FIELDS = "fields"  # a dict of KubeletConfiguration fields
    FLAGS = "flags"  # a list of kubelet flags appended to KUBELET_ARGS
    FEATURE_GATES = "feature-gates"  # a list of "Gate=bool" strings
    RUNTIME = "runtime"  # a key in the runtime's TOML


@dataclass(frozen=True)
class KubesprayVariable:
    variable: str
    target: Target
    setting: str  # field name, runtime key, or "" for FIELDS/FLAGS/FEATURE_GATES
    runtime: RuntimeKind | None
    table: tuple[str, ...]  # TOML table for RUNTIME
    since: str  # first kubespray release with it
    until: str | None  # first release without it
    default: Any
    note: str
    source: str


_NODE = "roles/kubernetes/node"
KUBESPRAY_VARIABLES: tuple[KubesprayVariable, ...] = (
    KubesprayVariable(
        "kubelet_image_gc_high_threshold",
        Target.FIELD,
        "imageGCHighThresholdPercent",
        None,
        (),
        "v2.22.0",
        None,
        None,
        "written only when defined",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_image_gc_low_threshold",
        Target.FIELD,
        "imageGCLowThresholdPercent",
        None,
        (),
        "v2.22.0",
        None,
        None,
        "written only when defined",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_max_parallel_image_pulls",
        Target.FIELD,
        "maxParallelImagePulls",
        None,
        (),
        "v2.26.0",
        None,
        1,
        "always written; with >= 2 the kubelet (1.27+) defaults serializeImagePulls to false",
        f"{_NODE}/defaults/main.yml; kubelet-config.v1beta1.yaml.j2 (last line)",
    ),
    KubesprayVariable(
        "eviction_hard",
        Target.FIELD,
        "evictionHard",
        None,
        (),
        "v2.19.0",
        None,
        {},
        "written only when non-empty (v2.22-v2.27: not on control-plane nodes when"
        " eviction_hard_control_plane is set)",
        f"{_NODE}/defaults/main.yml; kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "eviction_hard_control_plane",
        Target.FIELD,
        "evictionHard",
        None,
        (),
        "v2.24.0",
        "v2.28.0",
        {},
        "control-plane nodes only",
        f"{_NODE}/templates (v2.24.0-v2.27.0)",
    ),
    KubesprayVariable(
        "kubelet_config_extra_args",
        Target.FIELDS,
        "",
        None,
        (),
        "v2.15.0",
        None,
        {},
        "dumped verbatim (to_nice_yaml) into kubelet-config.yaml; duplicating a template key"
        " writes it twice",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kubelet_node_config_extra_args",
        Target.FIELDS,
        "",
        None,
        (),
        "v2.15.0",
        "v2.27.0",
        {},
        "kube_node hosts only",
        f"{_NODE}/templates (up to v2.26.0)",
    ),
    KubesprayVariable(
        "kubelet_custom_flags",
        Target.FLAGS,
        "",
        None,
        (),
        "v2.15.0",
        None,
        [],
        "joined with spaces into KUBELET_ARGS (docs/ansible/vars.md calls it deprecated);"
        " from v2.27.0 it must be a list (a string is joined character by character)",
        f"{_NODE}/templates/kubelet.env.v1beta1.j2",
    ),
    KubesprayVariable(
        "kubelet_node_custom_flags",
        Target.FLAGS,
        "",
        None,
        (),
        "v2.15.0",
        "v2.27.0",
        [],
        "kube_node hosts only",
        f"{_NODE}/templates/kubelet.env.v1beta1.j2 (up to v2.26.0)",
    ),
    KubesprayVariable(
        "kubelet_feature_gates",
        Target.FEATURE_GATES,
        "",
        None,
        (),
        "v2.20.0",
        None,
        [],
        "replaces kube_feature_gates for the kubelet when non-empty",
        f"{_NODE}/templates/kubelet-config.v1beta1.yaml.j2",
    ),
    KubesprayVariable(
        "kube_feature_gates",
        Target.FEATURE_GATES,
        "",
        None,
        (),
        "v2.15.0",
        None,
        [],
        "all components; the kubelet uses it only when kubelet_feature_gates is empty",
        "roles/kubespray_defaults/defaults/main/main.yml",
    ),
    KubesprayVariable(
        "containerd_image_pull_progress_timeout",
        Target.RUNTIME,
        "image_pull_progress_timeout",
        RuntimeKind.CONTAINERD,
        ("plugins", "io.containerd.cri.v1.images"),
        "v2.26.0",
        None,
        "5m",
        "written into the CRI images table (io.containerd.grpc.v1.cri for containerd 1.x,"
        " config-v1.toml.j2 from v2.28.0)",
        "roles/container-engine/containerd/defaults/main.yml; templates/config.toml.j2",
    ),
    KubesprayVariable(
        "crio_pull_progress_timeout",
        Target.RUNTIME,
        "pull_progress_timeout",
        RuntimeKind.CRIO,
        ("crio", "image"),
        "v2.30.0",
        None,
        "10s",
        "",
        "roles/container-engine/cri-o/defaults/main.yml; templates/crio.conf.j2",
    ),
)
BY_NAME = {r.variable: r for r in KUBESPRAY_VARIABLES}
# Fields the v2.31 template writes whatever the variables say.
TEMPLATE_ALWAYS_WRITES = frozenset({"maxParallelImagePulls", "containerRuntimeEndpoint"})
# Field -> the dedicated variable mlnode writes it with.
DEDICATED = {
    "imageGCHighThresholdPercent": "kubelet_image_gc_high_threshold",
    "imageGCLowThresholdPercent": "kubelet_image_gc_low_threshold",
    "maxParallelImagePulls": "kubelet_max_parallel_image_pulls",
    "evictionHard": "eviction_hard",
}
RUNTIME_VAR = {
    (
        RuntimeKind.CONTAINERD,
        "image_pull_progress_timeout",
    ): "containerd_image_pull_progress_timeout",
    (RuntimeKind.CRIO, "pull_progress_timeout"): "crio_pull_progress_timeout",
}
TEMPLATED = re.compile(r"\{\{.*\}\}|\{%.*%\}", re.S)
