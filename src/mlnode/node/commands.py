"""Running an external command behind an injectable port, and asking a binary its version.

Everything that starts a program (``systemctl``, ``kubelet --version``, ``containerd config
dump``, ``kubectl get --raw``) takes a :data:`Runner`, so tests pass a function instead of
spawning anything. :func:`probe_version` is the one ``<binary> --version`` probe; each
binary has its own parser (:data:`VERSION_PARSERS`), because their outputs differ.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlnode.versions import Version

__all__ = [
    "VERSION_PARSERS",
    "CommandResult",
    "Runner",
    "VersionProbe",
    "parse_containerd_version",
    "parse_crio_version",
    "parse_kubelet_version",
    "probe_version",
    "run_command",
]


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


_TRIPLE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def _triple(token: str) -> Version | None:
    m = _TRIPLE.match(token)
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_kubelet_version(output: str) -> Version | None:
    """``Kubernetes v1.30.2`` → 1.30.2 (None when the text is not that)."""
    m = re.search(r"\bKubernetes\s+(v?\d+\.\d+\.\d+)", output)
    return _triple(m.group(1)) if m else None


def parse_containerd_version(output: str) -> Version | None:
    """The version in ``containerd <package> <version> <revision>``.

    Handles upstream (``v1.7.13``), Docker's containerd.io (``1.7.13``) and Debian
    (``1.6.20~ds1``) builds: the third word, minus a leading ``v`` and any distro suffix.
    """
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "containerd":
            return _triple(words[2])
    return None


def parse_crio_version(output: str) -> Version | None:
    """``crio version 1.30.0`` (current) or a ``Version:  1.20.0`` table row (older)."""
    m = re.search(r"\bcrio version\s+(v?\d+\.\d+\.\d+)", output)
    if not m:
        m = re.search(r"^\s*Version:\s+(v?\d+\.\d+\.\d+)", output, re.MULTILINE)
    return _triple(m.group(1)) if m else None


VERSION_PARSERS: Mapping[str, Callable[[str], Version | None]] = {
    "kubelet": parse_kubelet_version,
    "containerd": parse_containerd_version,
    "crio": parse_crio_version,
}


@dataclass(frozen=True)
class VersionProbe:
    """What ``<binary> --version`` said: ``version`` None when it failed or said nothing
    :data:`VERSION_PARSERS` understands (``result`` None: the binary was not run)."""

    binary: Path
    result: CommandResult | None
    version: Version | None

    @property
    def ran(self) -> bool:
        return self.result is not None and self.result.ok

    def first_line(self) -> str:
        out = (self.result.stdout + self.result.stderr).strip() if self.result else ""
        return out.splitlines()[0] if out else "(no output)"


def probe_version(name: str, binary: Path, runner: Runner) -> VersionProbe:
    """Run ``binary --version`` and parse it with the parser for ``name`` (kubelet,
    containerd, crio). Never raises for a binary that fails: the probe says so."""
    result = runner([str(binary), "--version"])
    if not result.ok:
        return VersionProbe(binary, result, None)
    return VersionProbe(binary, result, VERSION_PARSERS[name](result.stdout + result.stderr))
