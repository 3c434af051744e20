"""The lint rules, by subject; :data:`RULES` is every rule in the order the engine runs them.

Each rule is a small function over the documents, the effective settings and the
:class:`~mlnode.lint.engine.LintContext`; the knowledge (which flag was removed when, which
wording the kubelet uses, where a setting lives) comes from :mod:`mlnode.knowledge`, so the
rules hold no version numbers. Findings that tie on severity and place keep this order.
"""

from __future__ import annotations

from mlnode.lint._context import Rule
from mlnode.lint.rules._containerd_version import config_version_rule
from mlnode.lint.rules._disk import eviction_rule, gc_rule
from mlnode.lint.rules._feature_gates import feature_gate_rule
from mlnode.lint.rules._files import (
    config_dir_rule,
    kubeadm_ignored_rule,
    kubeadm_managed_rule,
    kubespray_duplicates_rule,
)
from mlnode.lint.rules._flags import flag_rule
from mlnode.lint.rules._kubelet_values import (
    eviction_threshold_rule,
    fields_unknown_rule,
    overrides_rule,
    problems_rule,
    validation_rule,
)
from mlnode.lint.rules._mirror import hosts_dir_rule, hosts_parse_rule, mirror_first_rule
from mlnode.lint.rules._runtime import deadline_info_rule, runtime_keys_rule

__all__ = ["RULES"]

RULES: tuple[Rule, ...] = (
    flag_rule,
    problems_rule,
    validation_rule,
    eviction_threshold_rule,
    feature_gate_rule,
    config_dir_rule,
    fields_unknown_rule,
    config_version_rule,
    runtime_keys_rule,
    gc_rule,
    eviction_rule,
    overrides_rule,
    kubeadm_managed_rule,
    kubeadm_ignored_rule,
    kubespray_duplicates_rule,
    deadline_info_rule,
    hosts_parse_rule,
    hosts_dir_rule,
    mirror_first_rule,
)
