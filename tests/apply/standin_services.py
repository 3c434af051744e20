"""A service manager that runs the kubelet stand-in as a real process, by pid.

:class:`StandinServiceManager` implements mlnode's ServiceManager protocol in-process.
The same logic runs as a ``systemctl`` look-alike (``python standin_services.py --root R
--state-dir S --version V --port P restart kubelet``), which the CLI tests hand to
``mlnode apply --systemctl``: each call is a separate short-lived process, so the state
(the kubelet's pid, a log of calls) lives in ``--state-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STANDIN = Path(__file__).with_name("standin_kubelet.py")


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class StandinServiceManager:
    root: Path
    state_dir: Path
    version: str
    port: int
    calls: list[str] = field(default_factory=list)
    start_wait_seconds: float = 5.0

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "kubelet.pid"

    @property
    def log(self) -> Path:
        return self.state_dir / "kubelet.log"

    def _record(self, call: str) -> None:
        self.calls.append(call)
        with (self.state_dir / "calls.log").open("a") as f:
            f.write(call + "\n")

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)

    def start(self) -> None:
        with self.log.open("a") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(STANDIN),
                    "--root",
                    str(self.root),
                    "--version",
                    self.version,
                    "--port",
                    str(self.port),
                    "--state-dir",
                    str(self.state_dir),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        # Like systemd with Type=notify-ish patience: wait until it serves or dies.
        deadline = time.monotonic() + self.start_wait_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/healthz", timeout=0.5
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)

    # ServiceManager protocol -------------------------------------------------------

    def daemon_reload(self) -> None:
        self._record("daemon-reload")

    def restart(self, unit: str) -> None:
        self._record(f"restart {unit}")
        if unit == "kubelet":
            self.stop()
            self.start()

    def is_active(self, unit: str) -> bool:
        if unit != "kubelet":
            return True
        pid = self._pid()
        return pid is not None and _alive(pid)

    def describe_action(self, action: object) -> str:
        kind = getattr(getattr(action, "kind", None), "value", "")
        unit = getattr(action, "unit", None)
        return "systemctl daemon-reload" if kind == "daemon-reload" else f"systemctl restart {unit}"

    def last_argv(self) -> list[str]:
        data: list[str] = json.loads((self.state_dir / "kubelet.argv.json").read_text())
        return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="systemctl (stand-in)")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    mgr = StandinServiceManager(ns.root, ns.state_dir, ns.version, ns.port)
    args = [a for a in ns.args if a != "--quiet"]
    if args == ["daemon-reload"]:
        mgr.daemon_reload()
        return 0
    if len(args) == 2 and args[0] == "restart":
        mgr.restart(args[1])
        return 0
    if len(args) == 2 and args[0] == "is-active":
        return 0 if mgr.is_active(args[1]) else 3
    print(f"systemctl stand-in: unsupported {args}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
