"""What an apply did, and its JSON (schema ``mlnode.apply/v1``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnode.errors import ApplyError, VerificationFailed
from mlnode.ops.apply._model import ApplyPlan
from mlnode.ops.backups import BackupSet
from mlnode.ops.services import ActionKind, ServiceAction
from mlnode.ops.verify import Expectations, VerificationReport

__all__ = ["ApplyResult", "FileResult", "described", "health", "restart_actions", "units_of"]


@dataclass(frozen=True)
class FileResult:
    path: str
    existed_before: bool
    sha256_before: str | None
    sha256_after: str | None
    change: str  # created | modified | restored | removed | unchanged

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "existed_before": self.existed_before,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "change": self.change,
        }


@dataclass
class ApplyResult:
    """What :func:`execute_apply` did. ``status``: no-change | applied | written | restored."""

    plan: ApplyPlan
    status: str
    backup: BackupSet | None = None
    files: list[FileResult] = field(default_factory=list)
    actions_done: list[str] = field(default_factory=list)
    verification: VerificationReport | None = None
    restore_verification: VerificationReport | None = None
    error: str | None = None
    error_kind: str | None = None  # "verification" | "write" | "restart"

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_status(self) -> None:
        if self.error is None:
            return
        if self.error_kind == "verification":
            raise VerificationFailed(self.error)
        raise ApplyError(self.error)

    def to_json(self) -> dict[str, Any]:
        return _result_json(self.plan, self.status, self)


def _result_json(plan: ApplyPlan, status: str, result: ApplyResult | None) -> dict[str, Any]:
    files = []
    by_path = {f.path: f for f in (result.files if result else [])}
    for e in plan.edits:
        d = e.to_json()
        fr = by_path.get(e.path)
        if fr is not None:
            d["sha256_after"] = fr.sha256_after
            d["result"] = fr.change
        files.append(d)
    done = set(result.actions_done) if result else set()
    return {
        "schema": "mlnode.apply/v1",
        "status": status,
        "root": str(plan.layout.root),
        "layout": plan.layout.to_json(),
        "files": files,
        "removed_flags": [r.to_json() for r in plan.removed_flags],
        "actions": [
            {**a.to_json(), "command": str(a), "done": str(a) in done or described(a, done)}
            for a in plan.actions
        ],
        "verification": result.verification.to_json() if result and result.verification else None,
        "restore_verification": (
            result.restore_verification.to_json()
            if result and result.restore_verification
            else None
        ),
        "backup": (
            {"id": result.backup.id, "path": str(result.backup.directory)}
            if result and result.backup
            else None
        ),
        "mirror": plan.mirror_url,
        "warnings": list(plan.warnings),
        "notes": list(plan.notes) + list(plan.layout.notes),
        "error": result.error if result else None,
    }


def described(action: ServiceAction, done: set[str]) -> bool:
    tail = "daemon-reload" if action.kind is ActionKind.DAEMON_RELOAD else f"restart {action.unit}"
    return any(d.endswith(tail) for d in done)


def units_of(paths: Sequence[str]) -> list[str]:
    units = []
    if any(p.startswith("/etc/containerd/") for p in paths):
        units.append("containerd")
    if any(p.startswith("/etc/crio/") for p in paths):
        units.append("crio")
    if any(not p.startswith(("/etc/containerd/", "/etc/crio/")) for p in paths):
        units.append("kubelet")
    return units


def restart_actions(units: Sequence[str], reason: str) -> list[ServiceAction]:
    return [ServiceAction(ActionKind.DAEMON_RELOAD, None, reason)] + [
        ServiceAction(ActionKind.RESTART, u, reason) for u in units
    ]


def health(units: Sequence[str]) -> Expectations:
    return Expectations(units=tuple(units), check_healthz="kubelet" in units)
