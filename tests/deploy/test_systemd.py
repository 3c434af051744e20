"""deploy/systemd/mlnode-agent.service: a simple service after containerd, restarted on
failure (not on a bad config), hardened without losing /run/containerd or /var/lib/mlnode,
and clean for `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .manifests import UNIT, agent_container, unit_sections, unit_values


def _unit() -> dict[str, list[tuple[str, str]]]:
    return unit_sections(UNIT.read_text())


def _one(section: str, key: str) -> str:
    (value,) = unit_values(_unit(), section, key)
    return value


def test_runs_the_agent_after_containerd() -> None:
    assert _one("Service", "Type") == "simple"  # the agent does not speak sd_notify
    assert _one("Service", "ExecStart") == (
        "/opt/mlnode/venv/bin/mlnode agent --config /etc/mlnode/agent.yaml"
    )
    assert "containerd.service" in _one("Unit", "After").split()
    assert "containerd.service" in _one("Unit", "Wants").split()
    assert _one("Service", "Restart") == "on-failure"
    assert _one("Service", "RestartPreventExitStatus") == "2"  # a bad config
    assert _one("Service", "TimeoutStopSec") == "60s"
    assert _one("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one("Install", "WantedBy") == "multi-user.target"
    # The DaemonSet runs the same subcommand and config (plus --log-format json for its logs).
    assert agent_container()["args"][:3] == ["agent", "--config", "/etc/mlnode/agent.yaml"]


def test_hardening_keeps_what_the_agent_needs() -> None:
    assert _one("Service", "ProtectSystem") == "strict"
    rw = _one("Service", "ReadWritePaths").split()
    assert rw == ["/var/lib/mlnode", "-/etc/containerd/certs.d"]
    for key in ("ProtectHome", "NoNewPrivileges", "PrivateTmp"):
        assert _one("Service", key) == "yes", key
    assert _one("Service", "StateDirectory") == "mlnode"
    # /run/containerd stays read-only: connect() on a socket needs no writable mount
    # (tests/deploy/test_socket_privileges.py). Nothing hides /run or the socket dir.
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "PrivateDevices", "User"):
        assert not unit_values(_unit(), "Service", key), key
    assert "AF_UNIX" in _one("Service", "RestrictAddressFamilies").split()
    assert _one("Service", "CapabilityBoundingSet") == ""


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at this venv's mlnode.
    mlnode = Path(sys.executable).parent / "mlnode"
    unit = tmp_path / "mlnode-agent.service"
    unit.write_text(unit_text.replace("/opt/mlnode/venv/bin/mlnode", str(mlnode)))
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    proc = _verify(UNIT.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # warnings (unknown keys, bad values) go here


def test_systemd_analyze_verify_would_see_a_misspelt_key(tmp_path: Path) -> None:
    proc = _verify(UNIT.read_text().replace("ProtectHome=", "ProtectHom="), tmp_path)
    assert "Unknown key" in proc.stderr and "ProtectHom" in proc.stderr
