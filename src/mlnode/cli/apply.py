"""``mlnode apply``: write the settings into the node's files, restart, verify, or restore.

Exit codes: 0 applied, nothing to change, ``--dry-run`` or ``--no-restart`` done;
2 bad input, or refused because the resulting files would be invalid (nothing written);
7 the apply failed and every file was restored (also: another apply holds the lock).

JSON (``-o json``), schema ``mlnode.apply/v1``::

    {"schema": "mlnode.apply/v1",
     "status": "dry-run" | "no-change" | "written" | "applied" | "restored",
     "root": "/", "layout": {"kind": "kubeadm-deb", "kubernetes_version": "1.30.2",
                             "runtime": "containerd@1.7.13", "versions_from": {...},
                             "config_dir": ..., "args_file": ..., ...},
     "files": [{"path", "change": "created" | "modified", "reason", "unit",
                "sha256_before" (null: did not exist), "sha256_after", "diff",
                "result": "created" | "modified" | "restored" | "removed"}],
     "removed_flags": [{"path", "flag", "reason"}],
     "actions": [{"action": "daemon-reload" | "restart", "unit", "reason", "command", "done"}],
     "verification": {"ok", "attempts", "elapsed_seconds", "timeout_seconds",
                      "checks": [{"check", "ok", "detail"}]} | null,
     "restore_verification": same | null,
     "backup": {"id", "path"} | null,
     "mirror": null | "http://127.0.0.1:6055",   (apply --mirror)
     "warnings": [...], "notes": [...], "error": null | "..."}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlnode.cli._common import OutputFormat, duration_option, emit_json, run, stdout
from mlnode.cli._mirror import MirrorOption, MirrorRegistryOption, mirror_options
from mlnode.cli._node import node_root, service_options
from mlnode.cli._options import (
    DryRunOption,
    HealthzUrlOption,
    NoRestartOption,
    OutputOption,
    RootOption,
    SystemctlOption,
    TimeoutOption,
)
from mlnode.cli._settings_options import SettingsRequest, with_settings_options
from mlnode.errors import UsageError
from mlnode.ops.apply import (
    ApplyPlan,
    ApplyResult,
    MirrorRequest,
    VerifyOptions,
    apply_mirror,
    apply_settings,
)
from mlnode.ops.verify import DEFAULT_HEALTHZ_URL
from mlnode.planning.settings_input import SettingsSources

__all__ = ["register"]

ConfigzUrlOption = Annotated[
    str | None,
    typer.Option("--configz-url", help='URL answering {"kubeletconfig": ...} (live values).'),
]
NodeNameOption = Annotated[
    str | None,
    typer.Option(
        "--node-name",
        help="Check live values with kubectl get --raw .../nodes/NODE/proxy/configz.",
    ),
]
KubectlOption = Annotated[str, typer.Option("--kubectl", help="kubectl program.")]


def _print_plan(plan: ApplyPlan, *, diffs: bool) -> None:
    lay = plan.layout
    stdout.print(
        f"node: {lay.kind.value}, kubelet {lay.kubernetes_version}, {lay.runtime}"
        f" ({', '.join(f'{k} from {v}' for k, v in lay.versions_from.items())})",
        markup=False,
    )
    if plan.no_changes:
        stdout.print("no changes: the node already has these settings", markup=False)
    for e in plan.edits:
        verb = "create" if e.old_text is None else "modify"
        stdout.print(f"{verb} {e.path}: {e.reason}", markup=False)
        if diffs:
            stdout.print(e.diff().rstrip("\n"), markup=False)
    for r in plan.removed_flags:
        stdout.print(f"remove {r.flag} from {r.path}: {r.reason}", markup=False)
    for a in plan.actions:
        stdout.print(f"then: {a}  ({a.reason})", markup=False)
    for w in plan.warnings:
        stdout.print(f"warning: {w}", markup=False)
    for n in (*plan.notes, *lay.notes):
        stdout.print(f"note: {n}", markup=False)


def _print_result(result: ApplyResult) -> None:
    for f in result.files:
        stdout.print(
            f"{f.change} {f.path}  sha256 {(f.sha256_before or '-')[:12]} -> "
            f"{(f.sha256_after or '-')[:12]}",
            markup=False,
        )
    for d in result.actions_done:
        stdout.print(f"ran: {d}", markup=False)
    if result.verification is not None:
        for c in result.verification.checks:
            mark = "ok  " if c.ok else "FAIL"
            stdout.print(f"{mark} {c.name}: {c.detail}", markup=False)
        stdout.print(result.verification.summary(), markup=False)
    if result.backup is not None:
        stdout.print(f"backup: {result.backup.id} ({result.backup.directory})", markup=False)
    stdout.print(f"status: {result.status}", markup=False)


def _emit(result: ApplyResult, output: OutputFormat, *, dry_run: bool) -> None:
    if dry_run or result.plan.no_changes:
        if output is OutputFormat.JSON:
            emit_json(result.to_json())
        else:
            _print_plan(result.plan, diffs=True)
            if dry_run:
                stdout.print("dry run: nothing written", markup=False)
        return
    if output is OutputFormat.JSON:
        emit_json(result.to_json())
    else:
        _print_plan(result.plan, diffs=False)
        _print_result(result)
        if result.status == "written":
            for a in result.plan.actions:
                stdout.print(f"would run: {a}", markup=False)
    result.raise_for_status()


def _mirror_request(
    sources: SettingsSources, mirror: str | None, registries: list[str] | None
) -> MirrorRequest | None:
    """``--mirror``/``--mirror-registry`` checked; None when apply is about settings."""
    if mirror is None and not registries:
        return None
    url, names = mirror_options(mirror, registries)
    if (
        sources.plan_file
        or sources.from_kubelet_args
        or any(v is not None for v in sources.explicit.values())
    ):
        raise UsageError(
            "wires the node mirror only: apply image settings in a run of their own",
            option="--mirror",
        )
    return MirrorRequest(url, tuple(names))


def register(app: typer.Typer) -> None:
    @app.command("apply")
    @with_settings_options
    def apply(
        settings_input: SettingsRequest,
        root: RootOption = Path("/"),
        dry_run: DryRunOption = False,
        no_restart: NoRestartOption = False,
        timeout: TimeoutOption = "2m",
        systemctl: SystemctlOption = None,
        healthz_url: HealthzUrlOption = DEFAULT_HEALTHZ_URL,
        configz_url: ConfigzUrlOption = None,
        node_name: NodeNameOption = None,
        kubectl: KubectlOption = "kubectl",
        mirror: MirrorOption = None,
        mirror_registry: MirrorRegistryOption = None,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Write image settings into the node's files, restart the kubelet (and the runtime
        when its config changed), verify, and restore everything if that fails.

        With --mirror URL it wires the node to the node mirror instead: hosts.toml files
        with the mirror first (and config_path where containerd has none), or CRI-O's
        registries.conf.d drop-in.

        Exit 0: applied, nothing to change, --dry-run, or written with --no-restart.
        2: bad input, or refused because the result would not start (nothing written).
        7: failed; every file restored byte for byte.
        """

        def body() -> None:
            sources = settings_input.sources
            request = _mirror_request(sources, mirror, mirror_registry)
            node = node_root(root)
            seconds = duration_option(timeout, "--timeout", positive=True)
            services, why_not = service_options(node, no_restart, systemctl)
            verify = VerifyOptions(healthz_url, configz_url, node_name, kubectl)
            if request is not None:
                result = apply_mirror(
                    node,
                    request,
                    root=root,
                    dry_run=dry_run,
                    services=services,
                    why_not=why_not,
                    timeout_seconds=seconds,
                    verify=verify,
                    kubernetes_version=sources.kubernetes_version,
                    runtime=sources.runtime,
                )
            else:
                result = apply_settings(
                    node,
                    sources,
                    root=root,
                    dry_run=dry_run,
                    services=services,
                    why_not=why_not,
                    timeout_seconds=seconds,
                    verify=verify,
                )
            _emit(result, output, dry_run=dry_run)

        run(body)
