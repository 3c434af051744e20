"""``mlnode rollback``: put back the files of the last apply (or a given backup set).

Exit codes: 0 restored (and the services came back healthy), 2 bad input,
7 no backup to restore, another apply holds the lock, or the services did not come back.

JSON (``-o json``), schema ``mlnode.rollback/v1``::

    {"schema": "mlnode.rollback/v1", "status": "rolled-back" | "restored-unhealthy",
     "backup": {"id", "path", "created_at", "command"},
     "files": [{"path", "existed_before", "sha256_before", "sha256_after",
                "change": "restored" | "removed" | "unchanged"}],
     "actions": [{"action", "unit", "reason", "command", "done"}],
     "verification": {...} | null, "error": null | "..."}

``--list`` prints the backup sets instead (``{"schema": "mlnode.backups/v1", "backups":
[{"id", "created_at", "command", "status", "files": [...]}]}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlnode.cli._common import OutputFormat, duration_option, emit_json, run, stdout
from mlnode.cli._node import node_root, service_options
from mlnode.cli._options import (
    HealthzUrlOption,
    NoRestartOption,
    OutputOption,
    RootOption,
    SystemctlOption,
    TimeoutOption,
)
from mlnode.ops.apply import RollbackResult, execute_rollback
from mlnode.ops.backups import list_backups
from mlnode.ops.services import RecordingServiceManager
from mlnode.ops.verify import DEFAULT_HEALTHZ_URL, Verifier

__all__ = ["register"]

BackupOption = Annotated[
    str | None, typer.Option("--backup", help="Backup set id (default: the last apply's).")
]
ListOption = Annotated[bool, typer.Option("--list", help="List the backup sets.")]


def _list(node: Path, output: OutputFormat) -> None:
    sets = list_backups(node)
    if output is OutputFormat.JSON:
        emit_json(
            {
                "schema": "mlnode.backups/v1",
                "backups": [
                    {
                        "id": b.id,
                        "created_at": b.created_at,
                        "command": b.command,
                        "status": b.status,
                        "files": [e.to_json() for e in b.entries],
                    }
                    for b in sets
                ],
            }
        )
    else:
        for b in sets:
            paths = ", ".join(e.path for e in b.entries)
            stdout.print(f"{b.id}  {b.status:<11} {paths}", markup=False)


def _print_result(result: RollbackResult, why_not: str | None) -> None:
    for f in result.files:
        stdout.print(f"{f.change} {f.path}", markup=False)
    for d in result.actions_done:
        stdout.print(f"ran: {d}", markup=False)
    if why_not and result.actions:
        stdout.print(f"note: {why_not}", markup=False)
        for a in result.actions:
            stdout.print(f"would run: {a}", markup=False)
    if result.verification is not None:
        stdout.print(result.verification.summary(), markup=False)
    stdout.print(f"status: {result.status} (backup {result.backup.id})", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("rollback")
    def rollback(
        root: RootOption = Path("/"),
        backup: BackupOption = None,
        list_: ListOption = False,
        no_restart: NoRestartOption = False,
        timeout: TimeoutOption = "2m",
        systemctl: SystemctlOption = None,
        healthz_url: HealthzUrlOption = DEFAULT_HEALTHZ_URL,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Restore the files of the last apply (or --backup ID) byte for byte and restart."""

        def body() -> None:
            node = node_root(root)
            if list_:
                _list(node, output)
                return
            seconds = duration_option(timeout, "--timeout", positive=True)
            services, why_not = service_options(node, no_restart, systemctl)
            result = execute_rollback(
                node,
                backup_id=backup,
                services=services or RecordingServiceManager(),
                verifier=Verifier(services, healthz_url=healthz_url) if services else None,
                timeout_seconds=seconds,
                restart=services is not None,
            )
            if output is OutputFormat.JSON:
                emit_json(result.to_json())
            else:
                _print_result(result, why_not)
            result.raise_for_status()

        run(body)
