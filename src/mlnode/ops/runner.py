"""Running an external command behind an injectable port.

Everything in :mod:`mlnode.ops` that starts a program (``systemctl``, ``kubelet --version``,
``containerd config dump``, ``kubectl get --raw``) takes a :data:`Runner`, so tests pass a
function instead of spawning anything.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["CommandResult", "Runner", "run_command"]


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left: exit status and its decoded output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """One line: the command and, when it failed, its status and first stderr line."""
        cmd = " ".join(self.argv)
        if self.ok:
            return cmd
        first = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = f": {first[0][:300]}" if first else ""
        return f"{cmd} exited {self.returncode}{tail}"


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str], *, timeout_seconds: float = 60.0) -> CommandResult:
    """Run ``argv`` without a shell; a missing program is exit status 127, a timeout 124."""
    args = tuple(argv)
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except FileNotFoundError as e:
        return CommandResult(args, 127, "", str(e))
    except subprocess.TimeoutExpired:
        return CommandResult(args, 124, "", f"timed out after {timeout_seconds:g}s")
    return CommandResult(args, proc.returncode, proc.stdout, proc.stderr)
