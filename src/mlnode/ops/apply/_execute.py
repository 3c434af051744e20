"""Carry a plan out: lock, back up, write atomically, restart, verify; restore on failure."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlnode.errors import ApplyError
from mlnode.knowledge.model import ImageSettings
from mlnode.node import host_path
from mlnode.ops.apply._model import ApplyPlan
from mlnode.ops.apply._result import ApplyResult, FileResult, restart_actions
from mlnode.ops.apply._result import health as health_of
from mlnode.ops.backups import create_backup, restore_backup, update_backup
from mlnode.ops.fileio import ApplyLock, atomic_write, file_sha256
from mlnode.ops.services import ActionKind, ServiceManager, perform
from mlnode.ops.verify import Verifier

__all__ = ["execute_apply"]


def execute_apply(
    plan: ApplyPlan,
    *,
    services: ServiceManager,
    verifier: Verifier | None = None,
    timeout_seconds: float = 120.0,
    restart: bool = True,
    write: Callable[..., None] = atomic_write,
    now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> ApplyResult:
    """Carry out ``plan``: lock, back up, write atomically, restart, verify; restore on failure.

    Raises :class:`~mlnode.node.RootEscape` when a file would be written outside the root
    (through a symlink or ``..``), :class:`LockHeld` when another apply runs,
    :class:`ApplyError` when the files changed since the plan was made. Failures after the
    backup are *returned* (status ``restored``, ``error`` set;
    :meth:`ApplyResult.raise_for_status` raises them).
    """
    root = plan.layout.root
    if plan.no_changes:
        return ApplyResult(plan, "no-change")
    # Every target resolved before anything is touched (the lock file included): a path
    # that would leave the root is RootEscape (exit 2) with not one byte written.
    for e in plan.edits:
        host_path(root, e.path)
    lock = ApplyLock(root)
    try:
        lock.acquire()
    except PermissionError as e:
        raise ApplyError(f"{lock.path}: permission denied (run as root)") from e
    try:
        return _execute_locked(plan, services, verifier, timeout_seconds, restart, write, now)
    finally:
        lock.release()


def _execute_locked(
    plan: ApplyPlan,
    services: ServiceManager,
    verifier: Verifier | None,
    timeout_seconds: float,
    restart: bool,
    write: Callable[..., None],
    now: Callable[[], _dt.datetime],
) -> ApplyResult:
    root = plan.layout.root
    for e in plan.edits:
        if file_sha256(host_path(root, e.path)) != e.sha256_before:
            raise ApplyError(
                f"{host_path(root, e.path)} changed since the plan was made; run again"
            )
    units = [a.unit for a in plan.actions if a.kind is ActionKind.RESTART and a.unit]
    try:
        backup = create_backup(
            root,
            [e.path for e in plan.edits],
            command="apply",
            extra={"units": units, "settings": _settings_json(plan.settings)},
            now=now,
        )
    except OSError as err:
        raise ApplyError(f"cannot create the backup set, nothing written: {err}") from err
    result = ApplyResult(plan, "written", backup=backup)
    written: list[str] = []
    try:
        for e in plan.edits:
            write(host_path(root, e.path), e.new_text.encode(), root=root)
            written.append(e.path)
    except Exception as exc:  # any failure mid-way: put every file back
        restore_backup(root, backup)
        update_backup(backup, status="restored")
        result.status = "restored"
        result.error = (
            f"writing {host_path(root, plan.edits[len(written)].path)} failed ({exc}); "
            f"restored {len(plan.edits)} file(s) from backup {backup.id}"
        )
        result.error_kind = "write"
        result.files = _file_results(plan, root, restored=True)
        return result
    result.backup = backup = update_backup(backup, status="written", root=root)
    result.files = _file_results(plan, root, restored=False)
    if not restart:
        return result
    try:
        result.actions_done = perform(services, plan.actions)
    except ApplyError as exc:
        return _rollback_after_failure(
            plan, result, services, verifier, timeout_seconds, f"restart failed: {exc}", "restart"
        )
    if verifier is not None:
        report = verifier.verify(plan.expectations, timeout_seconds)
        result.verification = report
        if not report.ok:
            return _rollback_after_failure(
                plan, result, services, verifier, timeout_seconds, report.summary(), "verification"
            )
    result.backup = update_backup(backup, status="applied")
    result.status = "applied"
    return result


def _rollback_after_failure(
    plan: ApplyPlan,
    result: ApplyResult,
    services: ServiceManager,
    verifier: Verifier | None,
    timeout_seconds: float,
    why: str,
    kind: str,
) -> ApplyResult:
    root = plan.layout.root
    assert result.backup is not None
    restore_backup(root, result.backup)
    result.backup = update_backup(result.backup, status="restored")
    result.files = _file_results(plan, root, restored=True)
    units = [a.unit for a in plan.actions if a.kind is ActionKind.RESTART and a.unit]
    restart_note = ""
    try:
        result.actions_done += perform(services, restart_actions(units, "after restoring"))
    except ApplyError as exc:
        restart_note = f"; restarting after the restore failed too: {exc}"
    if verifier is not None and not restart_note:
        health = verifier.verify(health_of(units), timeout_seconds)
        result.restore_verification = health
        if not health.ok:
            restart_note = f"; after the restore: {health.summary()}"
    result.status = "restored"
    result.error_kind = kind
    result.error = (
        f"{why}; restored {len(plan.edits)} file(s) from backup {result.backup.id}{restart_note}"
    )
    return result


def _file_results(plan: ApplyPlan, root: Path, *, restored: bool) -> list[FileResult]:
    out = []
    for e in plan.edits:
        after = file_sha256(host_path(root, e.path))
        if restored:
            change = "restored" if e.old_text is not None else "removed"
        else:
            change = "created" if e.old_text is None else "modified"
        out.append(FileResult(e.path, e.old_text is not None, e.sha256_before, after, change))
    return out


def _settings_json(settings: ImageSettings) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in settings.set_fields().items()}
