"""The lint gate: the files as the plan leaves them must lint without errors."""

from __future__ import annotations

from collections.abc import Mapping

from mlnode.formats.base import ParsedDocument
from mlnode.node import read_path
from mlnode.ops.apply._model import KUBEADM_CONFIG_DIR, ApplyPlan, NodeLayout

__all__ = ["lint_plan"]


def _documents(layout: NodeLayout, files: Mapping[str, str | None]) -> list[ParsedDocument]:
    from mlnode.formats.base import DocumentKind
    from mlnode.formats.containerd import read_containerd, read_hosts_toml
    from mlnode.formats.crio import read_crio
    from mlnode.formats.envfile import read_env
    from mlnode.formats.kubelet_config import read_kubelet_config
    from mlnode.formats.systemd_unit import read_systemd_unit

    def hp(p: str) -> str:
        return str(read_path(layout.root, p))

    docs: list[ParsedDocument] = []
    for p in layout.unit_files:
        docs.append(read_systemd_unit(hp(p), files.get(p) or ""))
    for p in dict.fromkeys([*layout.env_files, *filter(None, [layout.args_file])]):
        text = files.get(p)
        if text is not None:
            docs.append(read_env(hp(p), text))
    if layout.config_file and files.get(layout.config_file) is not None:
        docs.append(read_kubelet_config(hp(layout.config_file), files[layout.config_file] or ""))
    dropins = sorted(
        p
        for p, t in files.items()
        if t is not None
        and p.endswith(".conf")
        and (
            (layout.config_dir and p.startswith(layout.config_dir.rstrip("/") + "/"))
            or p.startswith(KUBEADM_CONFIG_DIR + "/")
        )
    )
    for p in dropins:
        docs.append(read_kubelet_config(hp(p), files[p] or "", kind=DocumentKind.KUBELET_DROPIN))
    for p in sorted(
        p
        for p, t in files.items()
        if t is not None and p.startswith("/etc/containerd/") and not p.endswith("/hosts.toml")
    ):
        docs.append(read_containerd(hp(p), files[p] or ""))
    for p in sorted(p for p, t in files.items() if t is not None and p.endswith("/hosts.toml")):
        docs.append(read_hosts_toml(hp(p), files[p] or ""))
    for p in sorted(p for p, t in files.items() if t is not None and p.startswith("/etc/crio/")):
        docs.append(read_crio(hp(p), files[p] or ""))
    return docs


def lint_plan(plan: ApplyPlan) -> list[str]:
    """Lint errors in the files as the plan leaves them (each ``path:line: CODE message``)."""
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.lint.findings import Severity

    layout = plan.layout
    docs = _documents(layout, plan.new_files())
    report = lint_documents(
        docs,
        LintContext(
            plan.placement.kubernetes_version, plan.placement.runtime, mirror_url=plan.mirror_url
        ),
    )
    out = []
    for f in report.findings:
        if f.severity is not Severity.ERROR:
            continue
        where = ""
        if f.origin is not None:
            where = f"{f.origin.path}:{f.origin.line}: " if f.origin.line else f"{f.origin.path}: "
        out.append(f"{where}{f.code} {f.message}")
    return out
