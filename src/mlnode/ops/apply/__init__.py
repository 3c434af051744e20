"""``mlnode apply`` and ``mlnode rollback``: pure planning, thin execution.

:func:`detect_layout` reads a node's kubelet and runtime files under a root (``/`` on the
node) into a :class:`NodeLayout` through :mod:`mlnode.node` — which installer laid them
out, which files feed the kubelet's command line, its ``--config``/``--config-dir``, the
runtime's config files, and the versions (from the binaries when they are there).
:func:`plan_apply` is pure: from a layout and the settings it returns an :class:`ApplyPlan`
(every file's old and new text, the flags removed, the service actions, what verification
must see). :func:`lint_plan` is the gate the planned files must pass.
:func:`execute_apply` and :func:`execute_rollback` carry a plan out under the node lock
with a backup set. :func:`apply_settings` is ``mlnode apply`` end to end (layout,
settings with the node's versions as defaults, plan, lint gate, execution); the CLI only
parses options and prints.

Where each setting goes (the most durable place for the layout; docs/apply.md explains):

* **kubelet 1.29+ with a --config-dir**: a drop-in ``<config-dir>/90-mlnode-images.conf``.
* **kubeadm, 1.29+, no --config-dir yet**: ``--config-dir=/etc/kubernetes/kubelet.conf.d``
  is added to ``KUBELET_EXTRA_ARGS`` in ``/etc/default/kubelet`` (deb) or
  ``/etc/sysconfig/kubelet`` (rpm) — files kubeadm never rewrites — and the drop-in goes
  there. On 1.29 the kubelet also needs ``KUBELET_CONFIG_DROPIN_DIR_ALPHA`` in its
  environment; it is added to the same EnvironmentFile (systemd exports every assignment
  of an EnvironmentFile to the process), so one durable file carries both.
  ``/var/lib/kubelet/config.yaml`` and ``kubeadm-flags.env`` (rewritten by ``kubeadm
  upgrade``) are never the only home of a value.
* **kubelet 1.28**: its drop-in merge (mergo on defaulted structs) can reset fields a
  drop-in does not mention, so mlnode does not use --config-dir there and treats 1.28 as
  older versions.
* **kubeadm before 1.29**: settings that have a flag go to ``KUBELET_EXTRA_ARGS`` (durable;
  deprecated but honoured, and they override the config file); settings without a flag
  are written to ``/var/lib/kubelet/config.yaml`` with a warning that ``kubeadm upgrade``
  replaces it (edit the ``kube-system/kubelet-config`` ConfigMap too).
* **kubespray**: 1.29+: ``--config-dir`` in ``KUBELET_ARGS`` of
  ``/etc/kubernetes/kubelet.env`` plus the drop-in; before: the fields in
  ``/etc/kubernetes/kubelet-config.yaml``. kubespray re-renders both files on its next
  run, so the plan's notes give the inventory variables (``mlnode render --format
  kubespray``).
* **plain systemd unit**: the drop-in when the unit passes --config-dir, else the
  ``--config`` file itself (nothing else rewrites it).
* Flags that would override the new values (the same setting as a flag in any
  EnvironmentFile) and flags this kubelet no longer has (``--image-pull-progress-deadline``
  from 1.24, ``--container-runtime`` from 1.27) are removed from every EnvironmentFile,
  keeping comments and the rest of the line.
* ``apply --mirror URL`` (:func:`apply_mirror`, :mod:`._plan_mirror`) wires the node to
  the node mirror instead: hosts.toml files with the mirror first, ``config_path`` where
  containerd has none (a containerd restart), CRI-O's registries.conf.d drop-in.
* The pull deadline goes to the runtime: containerd's ``config.toml`` (or the imported file
  that already sets it, since an import overrides the main file), CRI-O's drop-in
  ``/etc/crio/crio.conf.d/90-mlnode-images.conf``.
"""

from mlnode.ops.apply._execute import execute_apply
from mlnode.ops.apply._layout import detect_layout
from mlnode.ops.apply._lint_gate import lint_plan
from mlnode.ops.apply._model import (
    DROPIN_NAME,
    KUBEADM_CONFIG_DIR,
    ApplyPlan,
    ApplyRefused,
    FileEdit,
    LayoutKind,
    NodeLayout,
    RemovedFlag,
)
from mlnode.ops.apply._plan import plan_apply
from mlnode.ops.apply._plan_mirror import MirrorRequest, plan_mirror
from mlnode.ops.apply._result import ApplyResult, FileResult
from mlnode.ops.apply._rollback import RollbackResult, execute_rollback, interrupted_backups
from mlnode.ops.apply._run import (
    VerifyOptions,
    apply_mirror,
    apply_settings,
    plan_node_apply,
    plan_node_mirror,
)

__all__ = [
    "DROPIN_NAME",
    "KUBEADM_CONFIG_DIR",
    "ApplyPlan",
    "ApplyRefused",
    "ApplyResult",
    "FileEdit",
    "FileResult",
    "LayoutKind",
    "MirrorRequest",
    "NodeLayout",
    "RemovedFlag",
    "RollbackResult",
    "VerifyOptions",
    "apply_mirror",
    "apply_settings",
    "detect_layout",
    "execute_apply",
    "execute_rollback",
    "interrupted_backups",
    "lint_plan",
    "plan_apply",
    "plan_mirror",
    "plan_node_apply",
    "plan_node_mirror",
]
