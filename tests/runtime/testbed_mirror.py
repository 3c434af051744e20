"""A real ``mlnode mirror`` process for the runtime tests: own port, own cache dir, stopped
by pid; its status endpoint read over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from testbed import free_port, start_until_healthy, stop_process


class MirrorProcess:
    """``mlnode mirror`` serving ``upstreams`` (``REGISTRY=URL`` strings) from ``cache_dir``."""

    def __init__(
        self,
        cache_dir: Path,
        upstreams: list[str],
        *,
        extra: tuple[str, ...] = (),
        port: int | None = None,
        runtime_endpoint: str | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.upstreams = upstreams
        self.extra = extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.runtime_endpoint = runtime_endpoint
        self.log = cache_dir.parent / f"mirror-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        args = [
            sys.executable,
            "-c",
            "from mlnode.cli.app import main; main()",
            "mirror",
            "--listen",
            self.host,
            "--cache-dir",
            str(self.cache_dir),
            "--log-format",
            "json",
        ]
        for up in self.upstreams:
            args += ["--upstream", up]
        if self.runtime_endpoint:
            args += ["--runtime-endpoint", self.runtime_endpoint]
        return [*args, *self.extra]

    def start(self) -> MirrorProcess:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.proc = start_until_healthy(
            self.argv(),
            log=self.log,
            health_url=f"{self.url}/healthz",
            what="mlnode mirror",
            logs=self.logs,
            timeout_seconds=20,
        )
        return self

    def kill(self) -> None:
        """``kill -9``: no checkpoint, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def status(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/mlnode/v1/status", timeout=5)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def blob(self, digest: str) -> dict[str, Any] | None:
        for b in self.status()["blobs"]:
            if b["digest"] == digest:
                return dict(b)
        return None

    def logs(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> MirrorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
