"""The node doctor's other sources, each for real: the kubelet's configz through the fake API
server (real HTTPS), a saved journal, the agent's and the mirror's status endpoints (a local
HTTP server, and a port nobody listens on), and the image filesystem as a loop-mounted ext4
(root only, runtime mark)."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from apply.layouts import build_kubeadm
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.testing._kubelet_shapes import configz_document
from mlnode.testing.fake_kube_api import FakeKubeApiServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from prereq import unavailable
from testbed_disk import missing_disk_prerequisites, small_disk

FIXTURES = Path(__file__).parent / "fixtures" / "journal"
EXTRA = 'KUBELET_EXTRA_ARGS="--image-gc-high-threshold=90 --node-labels=gpu=a100"\n'
runner = CliRunner()


def _doctor(root: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    r = runner.invoke(app, ["doctor", "--root", str(root), "-o", "json", *extra])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def _codes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in doc["nodes"][0]["findings"]}


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return build_kubeadm(tmp_path / "node", extra_args=EXTRA)


def test_configz_that_differs_from_the_files_is_a_pending_restart(
    node: Path, tmp_path: Path
) -> None:
    with FakeKubeApiServer(workdir=tmp_path) as api:
        api.add_node("gpu-1", kubelet_version="v1.30.2")
        # the kubelet still runs with the value from before the files changed
        api.set_kubelet("gpu-1", configz=configz_document("v1.30.2"))
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        _, doc = _doctor(
            node, "--no-journal", "--kubeconfig", str(kubeconfig), "--node-name", "gpu-1"
        )
        f = _codes(doc)["D302"]
        assert f["evidence"] == [
            f"image_gc_high_threshold_percent: files say 90 ({node}/etc/default/kubelet:1"
            " (KUBELET_EXTRA_ARGS)), the running kubelet has 85"
        ]
        assert "restart the kubelet" in f["fix"]
        api.set_kubelet(
            "gpu-1", configz=configz_document("v1.30.2", {"imageGCHighThresholdPercent": 90})
        )
        _, again = _doctor(
            node, "--no-journal", "--kubeconfig", str(kubeconfig), "--node-name", "gpu-1"
        )
        assert "D302" not in _codes(again)
        api.forbid("get", "nodes/proxy")
        _, refused = _doctor(
            node, "--no-journal", "--kubeconfig", str(kubeconfig), "--node-name", "gpu-1"
        )
        assert "nodes/proxy" in _codes(refused)["D303"]["title"]


def test_a_saved_journal_names_the_flag_that_stops_the_kubelet(node: Path) -> None:
    code, doc = _doctor(
        node, "--journal-file", str(FIXTURES / "kubelet-removed-flag.short-iso.txt")
    )
    f = _codes(doc)["D307"]
    assert code == 1 and "--image-pull-progress-deadline" in f["title"]
    assert "removed in Kubernetes 1.24" in f["cause"]


def test_the_journals_flag_finding_carries_the_files_apply_line(tmp_path: Path) -> None:
    line = "--image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
    root = build_kubeadm(tmp_path / "node", extra_args=f'KUBELET_EXTRA_ARGS="{line}"\n')
    _, doc = _doctor(root, "--journal-file", str(FIXTURES / "kubelet-removed-flag.short-iso.txt"))
    found = _codes(doc)
    apply = found["E101"]["fix"].split("  ")[0]
    assert apply.startswith("mlnode apply --root ") and line in apply
    assert found["D307"]["fix"].startswith(apply + "  ")


def test_a_journal_file_that_cannot_be_read_is_one_line(node: Path, tmp_path: Path) -> None:
    missing = tmp_path / "journal.json"
    r = runner.invoke(app, ["doctor", "--root", str(node), "--journal-file", str(missing)])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"mlnode: error: {missing}: cannot read: No such file or directory"
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agent_status() -> Iterator[tuple[str, dict[str, Any]]]:
    """A local HTTP server answering GET /mlnode/v1/agent/status with ``doc``."""
    doc: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            body = json.dumps(doc).encode()
            ok = self.path == "/mlnode/v1/agent/status"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", doc
    finally:
        server.shutdown()
        server.server_close()


def test_an_agent_that_is_not_ready_says_why(
    node: Path, agent_status: tuple[str, dict[str, Any]]
) -> None:
    url, doc = agent_status
    doc.update(
        schema="mlnode.agent.status/v1",
        ready=False,
        not_ready_reason="image filesystem /var/lib/containerd: statvfs failed",
    )
    _, report = _doctor(node, "--no-journal", "--agent-url", url)
    assert "statvfs failed" in _codes(report)["D305"]["title"]
    doc.update(ready=True, not_ready_reason=None)
    _, report = _doctor(node, "--no-journal", "--agent-url", url)
    assert "D305" not in _codes(report)


def test_an_agent_and_a_mirror_nobody_runs(node: Path) -> None:
    port = _free_port()
    _, doc = _doctor(
        node,
        "--no-journal",
        "--agent-url",
        f"http://127.0.0.1:{port}",
        "--mirror-url",
        f"http://127.0.0.1:{port}",
    )
    found = _codes(doc)
    assert "unreachable" in found["D305"]["title"]
    assert found["D304"]["fix"].endswith(f"`mlnode progress --mirror http://127.0.0.1:{port}`")


@pytest.mark.runtime
def test_the_image_filesystem_is_the_disk_mounted_there(node: Path, tmp_path: Path) -> None:
    reason = missing_disk_prerequisites()
    if reason:
        unavailable(reason)
    with small_disk(tmp_path / "disk", 256) as mount:
        target = node / "var/lib/containerd"
        target.mkdir(parents=True)
        # the node's image directory is that filesystem: bind it there
        import subprocess

        subprocess.run(["mount", "--bind", str(mount), str(target)], check=True)
        try:
            (target / "fill").write_bytes(b"\0" * (180 << 20))
            _, doc = _doctor(node, "--no-journal", "--largest-image", "64MiB")
        finally:
            subprocess.run(["umount", str(target)], check=False)
    n = doc["nodes"][0]
    fs = n["imagefs"]
    assert fs["shared_with_os"] is False  # its own filesystem, not the tree's
    assert 200 << 20 < fs["capacity_bytes"] < 256 << 20
    assert fs["available_bytes"] < 80 << 20
    found = _codes(doc)
    assert "D101" not in found
    # 64 MiB declared; available minus imagefs.available 15 % leaves less than that
    assert found["D103"]["subject"] == "(declared)"
    assert n["headroom_bytes"] < 64 << 20


def test_the_nodes_own_deadline_explains_its_failed_pull(node: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mlnode.testing._kube_events import ERRORS, pull_story

    applied = runner.invoke(
        app,
        ["apply", "--root", str(node), "--image-pull-progress-deadline", "2m", "--no-restart"],
    )
    assert applied.exit_code == 0, applied.output
    image = "registry.example.com/ml/train:v3"
    with FakeKubeApiServer(workdir=tmp_path) as api:
        api.add_node("gpu-1")
        api.set_kubelet(
            "gpu-1", configz=configz_document("v1.30.2", {"imageGCHighThresholdPercent": 90})
        )
        story = pull_story(
            node="gpu-1",
            namespace="ml",
            pod="train-0",
            container="train",
            image=image,
            error=ERRORS["containerd-progress-timeout"][0].format(image=image),
            t0=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
            fail_after_seconds=150,
        )
        for obj in story:
            api.add_event("ml", obj)
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        _, doc = _doctor(
            node, "--no-journal", "--kubeconfig", str(kubeconfig), "--node-name", "gpu-1"
        )
    f = _codes(doc)["D201"]
    # 2m0s is this node's own setting (its containerd config), not 1.7.13's default 5m0s
    assert "2m0s" in f["cause"] and "config.toml" in f["cause"]
    assert "mlnode apply --image-pull-progress-deadline 15m" in f["fix"]
