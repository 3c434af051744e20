"""Restarting the kubelet and the container runtime, behind a port.

:class:`ServiceManager` is what :mod:`mlnode.ops.apply` needs from an init system.
:class:`SystemdServiceManager` runs ``systemctl`` through an injectable runner;
:class:`RecordingServiceManager` only records what it was asked to do (``--dry-run``,
``--no-restart``, and tests).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mlnode.errors import ApplyError
from mlnode.node import Runner, run_command

__all__ = [
    "ActionKind",
    "RecordingServiceManager",
    "ServiceAction",
    "ServiceManager",
    "SystemdServiceManager",
    "perform",
]


class ActionKind(enum.StrEnum):
    DAEMON_RELOAD = "daemon-reload"
    RESTART = "restart"


@dataclass(frozen=True)
class ServiceAction:
    """One thing to do to the init system after the files are written."""

    kind: ActionKind
    unit: str | None = None  # None for daemon-reload
    reason: str = ""

    def __str__(self) -> str:
        if self.kind is ActionKind.DAEMON_RELOAD:
            return "systemctl daemon-reload"
        return f"systemctl restart {self.unit}"

    def to_json(self) -> dict[str, str | None]:
        return {"action": self.kind.value, "unit": self.unit, "reason": self.reason}


@runtime_checkable
class ServiceManager(Protocol):
    """The operations apply and rollback need; each raises ApplyError when it fails."""

    def daemon_reload(self) -> None: ...

    def restart(self, unit: str) -> None: ...

    def is_active(self, unit: str) -> bool: ...

    def describe_action(self, action: ServiceAction) -> str: ...


def perform(manager: ServiceManager, actions: Sequence[ServiceAction]) -> list[str]:
    """Carry out ``actions`` in order; returns each one's description."""
    done = []
    for action in actions:
        if action.kind is ActionKind.DAEMON_RELOAD:
            manager.daemon_reload()
        else:
            assert action.unit is not None
            manager.restart(action.unit)
        done.append(manager.describe_action(action))
    return done


class SystemdServiceManager:
    """``systemctl`` on this host. ``systemctl`` may be another program with its interface."""

    def __init__(self, runner: Runner | None = None, *, systemctl: str = "systemctl") -> None:
        self._run: Runner = runner or run_command
        self.systemctl = systemctl

    def _call(self, *args: str) -> None:
        result = self._run([self.systemctl, *args])
        if not result.ok:
            raise ApplyError(result.describe())

    def daemon_reload(self) -> None:
        self._call("daemon-reload")

    def restart(self, unit: str) -> None:
        self._call("restart", unit)

    def is_active(self, unit: str) -> bool:
        return self._run([self.systemctl, "is-active", "--quiet", unit]).ok

    def describe_action(self, action: ServiceAction) -> str:
        if action.kind is ActionKind.DAEMON_RELOAD:
            return f"{self.systemctl} daemon-reload"
        return f"{self.systemctl} restart {action.unit}"


@dataclass
class RecordingServiceManager:
    """Does nothing but record; ``active`` answers :meth:`is_active` (default: active)."""

    calls: list[str] = field(default_factory=list)
    active: dict[str, bool] = field(default_factory=dict)

    def daemon_reload(self) -> None:
        self.calls.append("daemon-reload")

    def restart(self, unit: str) -> None:
        self.calls.append(f"restart {unit}")

    def is_active(self, unit: str) -> bool:
        return self.active.get(unit, True)

    def describe_action(self, action: ServiceAction) -> str:
        if action.kind is ActionKind.DAEMON_RELOAD:
            return "systemctl daemon-reload"
        return f"systemctl restart {action.unit}"
