"""``mlnode rollback``: put a backup set back and check the services come back healthy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnode.errors import ApplyError, VerificationFailed
from mlnode.ops.apply._result import FileResult, described, health, restart_actions, units_of
from mlnode.ops.backups import (
    BackupSet,
    latest_backup,
    list_backups,
    load_backup,
    restore_backup,
    update_backup,
)
from mlnode.ops.fileio import ApplyLock
from mlnode.ops.services import ServiceAction, ServiceManager, perform
from mlnode.ops.verify import VerificationReport, Verifier

__all__ = ["RollbackResult", "execute_rollback", "interrupted_backups"]


@dataclass
class RollbackResult:
    backup: BackupSet
    status: str  # rolled-back | restored-unhealthy
    files: list[FileResult] = field(default_factory=list)
    actions: list[ServiceAction] = field(default_factory=list)
    actions_done: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None
    error: str | None = None

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise VerificationFailed(self.error)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "mlnode.rollback/v1",
            "status": self.status,
            "backup": {
                "id": self.backup.id,
                "path": str(self.backup.directory),
                "created_at": self.backup.created_at,
                "command": self.backup.command,
            },
            "files": [f.to_json() for f in self.files],
            "actions": [
                {**a.to_json(), "command": str(a), "done": described(a, set(self.actions_done))}
                for a in self.actions
            ],
            "verification": self.verification.to_json() if self.verification else None,
            "error": self.error,
        }


_ROLLBACK_FROM = ("prepared", "written", "applied")


def execute_rollback(
    root: Path,
    *,
    backup_id: str | None = None,
    services: ServiceManager,
    verifier: Verifier | None = None,
    timeout_seconds: float = 120.0,
    restart: bool = True,
) -> RollbackResult:
    """Restore the newest backup set that is not already undone (or ``backup_id``),
    then restart what it touched and check the services come back healthy.

    An interrupted apply (status ``prepared``: the process died mid-way) is rolled back too.
    """
    root = root.resolve()
    lock = ApplyLock(root)
    lock.acquire()
    try:
        backup = (
            load_backup(root, backup_id)
            if backup_id
            else latest_backup(root, statuses=_ROLLBACK_FROM)
        )
        restored = restore_backup(root, backup)
        files = [
            FileResult(
                r.path,
                backup.entry(r.path).existed,
                r.sha256_before,
                r.sha256_after,
                r.action,
            )
            for r in restored
        ]
        backup = update_backup(backup, status="rolled-back")
        changed = [r.path for r in restored if r.action != "unchanged"]
        units = list(backup.extra.get("units") or units_of([e.path for e in backup.entries]))
        actions = restart_actions(units, f"rollback to before {backup.id}") if changed else []
        result = RollbackResult(backup, "rolled-back", files, actions)
        if not restart or not actions:
            return result
        try:
            result.actions_done = perform(services, actions)
        except ApplyError as exc:
            result.status = "restored-unhealthy"
            result.error = f"files restored from {backup.id}, but {exc}"
            return result
        if verifier is not None:
            result.verification = verifier.verify(health(units), timeout_seconds)
            if not result.verification.ok:
                result.status = "restored-unhealthy"
                result.error = (
                    f"files restored from {backup.id}, but {result.verification.summary()}"
                )
        return result
    finally:
        lock.release()


def interrupted_backups(root: Path) -> list[BackupSet]:
    """Backup sets of applies that died before finishing (status ``prepared``)."""
    return [b for b in list_backups(root) if b.status == "prepared"]
