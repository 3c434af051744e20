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
from mlnode.cli.apply import service_options
from mlnode.errors import UsageError
from mlnode.ops.apply import execute_rollback
from mlnode.ops.backups import list_backups
from mlnode.ops.services import RecordingServiceManager
from mlnode.ops.verify import DEFAULT_HEALTHZ_URL, Verifier

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("rollback")
    def rollback(
        root: Annotated[
            Path, typer.Option("--root", help="The node's filesystem root (default /).")
        ] = Path("/"),
        backup: Annotated[
            str | None,
            typer.Option("--backup", help="Backup set id (default: the last apply's)."),
        ] = None,
        list_: Annotated[bool, typer.Option("--list", help="List the backup sets.")] = False,
        no_restart: Annotated[
            bool, typer.Option("--no-restart", help="Restore the files only.")
        ] = False,
        timeout: Annotated[
            str, typer.Option("--timeout", help="How long the health check may take.")
        ] = "2m",
        systemctl: Annotated[
            str | None,
            typer.Option("--systemctl", help="systemctl program to run (default: systemctl)."),
        ] = None,
        healthz_url: Annotated[
            str, typer.Option("--healthz-url", help="The kubelet's healthz endpoint.")
        ] = DEFAULT_HEALTHZ_URL,
        output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.HUMAN,
    ) -> None:
        """Restore the files of the last apply (or --backup ID) byte for byte and restart."""

        def body() -> None:
            node_root = root.resolve()
            if not node_root.is_dir():
                raise UsageError(f"{root} is not a directory", option="--root")
            if list_:
                sets = list_backups(node_root)
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
                return
            seconds = duration_option(timeout, "--timeout", positive=True)
            services, why_not = service_options(node_root, no_restart, systemctl)
            result = execute_rollback(
                node_root,
                backup_id=backup,
                services=services or RecordingServiceManager(),
                verifier=Verifier(services, healthz_url=healthz_url) if services else None,
                timeout_seconds=seconds,
                restart=services is not None,
            )
            if output is OutputFormat.JSON:
                emit_json(result.to_json())
            else:
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
            result.raise_for_status()

        run(body)
