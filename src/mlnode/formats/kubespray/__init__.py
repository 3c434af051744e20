"""kubespray group_vars (``inventory/<cluster>/group_vars/k8s_cluster/*.yml``, ``all/*.yml``).

kubespray renders ``/etc/kubernetes/kubelet-config.yaml`` from
``roles/kubernetes/node/templates/kubelet-config.v1beta1.yaml.j2`` and the flags in
``/etc/kubernetes/kubelet.env`` from ``kubelet.env.v1beta1.j2``; the containerd and CRI-O
settings come from ``roles/container-engine/*/templates``. :data:`KUBESPRAY_VARIABLES` maps
each variable mlnode knows to the kubelet field, flag or runtime key it ends up in, with the
kubespray release it appeared in (checked against the kubespray tags v2.15.0 to v2.31.0).

``kubelet_config_extra_args`` is dumped verbatim at the end of the template's config, so a key
the template already writes (``maxParallelImagePulls`` always, since v2.26.0; the
``imageGC*`` fields, ``evictionHard`` and ``featureGates`` when their variables are set) would
appear twice. The kubelet's lenient decoding then keeps the last one, and the template writes
``maxParallelImagePulls: {{ kubelet_max_parallel_image_pulls }}`` as its very last line, so an
extra-args ``maxParallelImagePulls`` is silently overridden by the default 1 (derived). The
renderer and merger therefore use the dedicated variable where one exists and remove the same
key from ``kubelet_config_extra_args``; ``facts.extra_args_duplicating_template`` lists
such keys for the linter. There is no kubespray variable for containerd's
``max_concurrent_downloads``.
"""

from __future__ import annotations

from mlnode.formats.kubespray._read import read_kubespray
from mlnode.formats.kubespray._variables import (
    KUBESPRAY_VARIABLES,
    TEMPLATE_ALWAYS_WRITES,
    KubesprayVariable,
    Target,
)
from mlnode.formats.kubespray._write import merge_kubespray, render_kubespray

__all__ = [
    "KUBESPRAY_VARIABLES",
    "TEMPLATE_ALWAYS_WRITES",
    "KubesprayVariable",
    "Target",
    "merge_kubespray",
    "read_kubespray",
    "render_kubespray",
]
