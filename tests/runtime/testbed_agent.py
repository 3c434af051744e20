"""A real ``mlnode agent`` process for the runtime tests: its own config file, state dir,
listen port and log file; stopped by pid (SIGTERM, or ``kill -9``); its status and metrics
read over HTTP.

:func:`agent_config` writes the YAML the agent reads (``kubernetes: {enabled: false}``: the
API is tested elsewhere); :class:`AgentProcess` runs ``mlnode agent --config FILE --log-format
json`` as a subprocess in a session of its own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from testbed import free_port, start_until_healthy, stop_process


def agent_config(
    workdir: Path,
    *,
    runtime_endpoint: str,
    image_fs: Path,
    warm: Sequence[str | Mapping[str, Any]] = (),
    node_labels: Mapping[str, str] | None = None,
    port: int | None = None,
    interval_seconds: float = 0.5,
    headroom: Mapping[str, Any] | None = None,
    gc: Mapping[str, Any] | None = None,
    warm_options: Mapping[str, Any] | None = None,
    mirror_config: Path | None = None,
) -> dict[str, Any]:
    """The agent's config as a document (write it with :meth:`AgentProcess.write_config`).

    Defaults for tests: a pass every 0.5 s; no minimum age; a headroom target of 1 MiB with
    the kubelet's threshold at 100 % (so the agent's GC acts only where a test asks it to:
    the session's disk is not the test's); no Kubernetes API."""
    doc: dict[str, Any] = {
        "node_name": "mlnode-test-node",
        "node_labels": dict(node_labels or {}),
        "runtime_endpoint": runtime_endpoint,
        "image_fs": str(image_fs),
        "state_dir": str(workdir / "state"),
        "listen": f"127.0.0.1:{port or free_port()}",
        "interval_seconds": interval_seconds,
        "headroom": {
            "target_bytes": "1MiB",
            "reserve_bytes": 0,
            "kubelet_high_threshold_percent": 100,
            **dict(headroom or {}),
        },
        "gc": {"minimum_age_seconds": 0, **dict(gc or {})},
        "warm": {
            "concurrency": 2,
            "backoff_seconds": 0.5,
            "backoff_max_seconds": 2,
            "images": [w if isinstance(w, str) else dict(w) for w in warm],
            **dict(warm_options or {}),
        },
        "kubernetes": {"enabled": False},
    }
    if mirror_config is not None:
        doc["mirror"] = {"enabled": True, "config": str(mirror_config)}
    return doc


class AgentProcess:
    """``mlnode agent --config <workdir>/agent.yaml`` (log: ``<workdir>/agent.log``)."""

    def __init__(self, workdir: Path, config: Mapping[str, Any]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "agent.yaml"
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config: dict[str, Any] = {}
        self.write_config(config)

    # --- config ----------------------------------------------------------------------

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write the config file (JSON is YAML); the running agent reads it at SIGHUP."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = json.loads(json.dumps(config))
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config, indent=1) + "\n")
        tmp.replace(self.config_path)

    @property
    def url(self) -> str:
        return f"http://{self.config['listen']}"

    @property
    def state_dir(self) -> Path:
        return Path(self.config["state_dir"])

    def warm_state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.state_dir / "warm.json").read_text())
        return doc

    # --- process ---------------------------------------------------------------------

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            "from mlnode.cli.app import main; main()",
            "agent",
            "--config",
            str(self.config_path),
            "--log-format",
            "json",
        ]

    def start(self, *, timeout_seconds: float = 30.0) -> AgentProcess:
        """Start it and wait until ``/healthz`` answers (and, with a mirror, the mirror)."""
        self.proc = start_until_healthy(
            self.argv(),
            log=self.log,
            health_url=f"{self.url}/healthz",
            what="mlnode agent",
            logs=self.logs,
            timeout_seconds=timeout_seconds,
        )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the agent is not running"
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """``kill -9``: no checkpoint, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 15 s); the exit code."""
        if self.proc is None:
            return None
        stop_process(self.proc, term_timeout_seconds=15)
        return self.proc.returncode

    # --- HTTP ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/mlnode/v1/agent/status", timeout=5)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    def metrics_text(self) -> str:
        r = httpx.get(f"{self.url}/metrics", timeout=5)
        r.raise_for_status()
        return r.text

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``, parsed by prometheus-client's parser:
        ``{(sample name, sorted labels): value}``."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def warm(self, image: str) -> dict[str, Any] | None:
        for w in self.status()["warm"]:
            if w["image"] == image:
                return dict(w)
        return None

    def wait_for(
        self, what: str, ok: Callable[[dict[str, Any]], bool], timeout_seconds: float = 60.0
    ) -> dict[str, Any]:
        """The status document once ``ok`` holds for it (the agent must keep running)."""
        deadline = time.monotonic() + timeout_seconds
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"the agent exited while waiting for {what}: {self.logs()}")
            try:
                doc = self.status()
            except httpx.HTTPError:
                doc = {}
            if doc and ok(doc):
                return doc
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout_seconds} s: {doc}\n{self.logs()}")

    def wait_phase(self, image: str, phase: str, timeout_seconds: float = 60.0) -> dict[str, Any]:
        doc = self.wait_for(
            f"warm {image} {phase}",
            lambda d: any(w["image"] == image and w["phase"] == phase for w in d["warm"]),
            timeout_seconds,
        )
        (w,) = [w for w in doc["warm"] if w["image"] == image]
        return dict(w)

    # --- logs ------------------------------------------------------------------------

    def logs(self, tail_chars: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail_chars:]
        except OSError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (others, e.g. a traceback, are skipped)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def mirror_yaml(
    path: Path, registry_host: str, upstream_url: str, **options: object
) -> tuple[Path, str]:
    """A mirror config for the agent to host (upstream: the test registry at ``upstream_url``);
    returns (the file, the mirror's URL)."""
    port = free_port()
    doc = {
        "listen": f"127.0.0.1:{port}",
        "cache_dir": str(path.parent / "mirror-cache"),
        "unpack_factor": 1.0,
        **options,
        "upstreams": [{"registry": registry_host, "endpoint": upstream_url}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path, f"http://127.0.0.1:{port}"
