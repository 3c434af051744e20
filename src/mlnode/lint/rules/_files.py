"""The kubelet's files: --config-dir and its drop-ins, kubeadm's file, kubespray's duplicates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.facts import KubeletConfigFacts, KubesprayFacts, SystemdUnitFacts
from mlnode.knowledge.model import Origin
from mlnode.knowledge.table import (
    config_dir_support,
    kubelet_setting_by_field,
)
from mlnode.lint._context import LintContext
from mlnode.lint.effective import EffectiveSettings
from mlnode.lint.findings import Finding

__all__ = [
    "config_dir_rule",
    "kubeadm_ignored_rule",
    "kubeadm_managed_rule",
    "kubespray_duplicates_rule",
]


_KUBEADM_LOSES = (
    "image_gc_high_threshold_percent",
    "image_gc_low_threshold_percent",
    "image_minimum_gc_age_seconds",
    "image_maximum_gc_age_seconds",
    "serialize_image_pulls",
    "max_parallel_image_pulls",
    "eviction_hard",
)


def config_dir_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    support = config_dir_support(ctx.kubernetes_version)
    env_names = {a.name for d in docs for a in d.env}
    for d in docs:
        if isinstance(d.facts, SystemdUnitFacts):
            env_names.update(d.facts.environment)
    for doc in docs:
        for flag in doc.flags:
            if flag.name != "config-dir":
                continue
            if not support.supported:
                yield Finding(
                    "E106",
                    f"--config-dir does not exist in kubelet {ctx.kubernetes_version}"
                    " (added in 1.28)",
                    'the kubelet does not start: "unknown flag: --config-dir"',
                    "put the settings in the --config file instead",
                    flag.origin,
                )
            elif support.env_required and support.env_required not in env_names:
                consequence = (
                    'the kubelet does not start: "flag --config-dir specified but environment '
                    f'variable {support.env_required} not set, cannot start kubelet"'
                )
                yield Finding(
                    "E106" if ctx.whole_node else "W203",
                    f"--config-dir needs {support.env_required} in the kubelet's environment in"
                    f" {ctx.kubernetes_version}, and "
                    + (
                        "the node's units do not set it"
                        if ctx.whole_node
                        else "the files given do not set it"
                    ),
                    consequence,
                    f"add Environment={support.env_required}=<dir> in a kubelet.service drop-in,"
                    " or use the --config file",
                    flag.origin,
                )
    for doc in docs:
        if doc.kind is not DocumentKind.KUBELET_DROPIN or not support.requires_type_meta:
            continue
        meta = doc.facts_as(KubeletConfigFacts)
        if not meta.api_version or not meta.kind:
            yield Finding(
                "E107",
                f"drop-in {doc.path} has no apiVersion/kind",
                'the kubelet does not start: "failed to load kubelet dropin file, path: '
                f'{doc.path}, no apiVersion/kind"',
                "start the file with apiVersion: kubelet.config.k8s.io/v1beta1 and "
                "kind: KubeletConfiguration",
                Origin(doc.path, 1),
            )


def kubeadm_managed_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        managed = doc.path.endswith("/var/lib/kubelet/config.yaml")
        if doc.kind is not DocumentKind.KUBELET_CONFIG or not managed:
            continue
        for occ in doc.fields:
            row = kubelet_setting_by_field(occ.field)
            if row is None or row.key not in _KUBEADM_LOSES:
                continue
            if occ.value in ("0s", 0) or occ.value == row.default:
                continue  # what kubeadm itself writes: nothing of the operator's to lose
            yield Finding(
                "W209",
                f"{occ.field} is set in {doc.path}, which kubeadm writes",
                "`kubeadm upgrade` (and `kubeadm upgrade node phase kubelet-config`) rewrite this"
                " file from the kube-system/kubelet-config ConfigMap: the value is lost",
                "put it in a --config-dir drop-in (1.28+) or in the kubelet-config ConfigMap; "
                "`mlnode apply` does this",
                occ.origin,
            )


def kubeadm_ignored_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    """W214: a KubeletConfiguration document in a file only ``kubeadm join`` reads.

    The reader marks it (formats._kubeadm_read, with the kubeadm sources); the effective
    view does not credit its fields.
    """
    for doc in docs:
        facts = doc.facts
        if doc.kind is not DocumentKind.KUBEADM or not isinstance(facts, KubeletConfigFacts):
            continue
        reader = facts.kubeadm_ignored_by
        if not reader:
            continue
        named = [f.field for f in doc.fields]
        yield Finding(
            "W214",
            f"the KubeletConfiguration document in {doc.path} is ignored by `{reader}`"
            + (f" ({', '.join(named)} not in effect)" if named else ""),
            "kubeadm join decodes only the JoinConfiguration of its --config file and takes the"
            " kubelet config from the cluster's kubelet-config ConfigMap (kubeadm"
            " util/config/joinconfiguration.go documentMapToJoinConfiguration; cmd/join.go"
            " fetchInitConfigurationFromJoinConfiguration): these settings are silently lost",
            "put per-node settings in JoinConfiguration.nodeRegistration.kubeletExtraArgs as"
            " flags (`mlnode render --merge` does this), and config-only fields in the"
            " kube-system/kubelet-config ConfigMap or the `kubeadm init` config",
            Origin(doc.path, facts.document_line),
        )


def kubespray_duplicates_rule(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        if doc.kind is not DocumentKind.KUBESPRAY:
            continue
        duplicated = set(doc.facts_as(KubesprayFacts).extra_args_duplicating_template)
        for occ in doc.fields:
            if occ.field not in duplicated or occ.origin.detail != "kubelet_config_extra_args":
                continue
            yield Finding(
                "W212",
                f"kubelet_config_extra_args sets {occ.field}, which kubespray's kubelet-config"
                " template also writes",
                "the rendered kubelet-config.yaml holds the key twice; the kubelet's lenient"
                " decoding keeps the template's later value, so this one has no effect",
                "use kubespray's own variable for it (see `mlnode render --format kubespray`)",
                occ.origin,
            )
