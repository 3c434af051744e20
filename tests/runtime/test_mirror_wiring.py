"""The files `mlnode apply --mirror` writes are the ones containerd 1.6.20 uses: a testbed
containerd whose config_path is the hosts directory apply wrote under a kubeadm tree pulls
an image through a recording mirror at the --mirror URL (CRI PullImage; kubeadm and
kubespray trees), and the mirror
serves every blob; with nothing at the mirror URL, containerd falls back to `server`."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import testbed
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.runtime.cri import CriClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from apply.layouts import build_kubeadm, build_kubespray

pytestmark = pytest.mark.runtime
runner = CliRunner()
_HOP = {"connection", "transfer-encoding", "keep-alive"}


class RecordingMirror:
    """A pass-through registry mirror on loopback: forwards GET/HEAD to the registry named
    by containerd's ``?ns=`` (only ``allowed``; others get 404), and records each request
    (method, path, ns, status, body bytes sent)."""

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.requests: list[tuple[str, str, str | None, int, int]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                mirror.forward(self)

            def do_HEAD(self) -> None:
                mirror.forward(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        ns = parse_qs(parts.query).get("ns", [None])[0]
        if ns != self.allowed:
            self._record(h.command, parts.path, ns, 404, 0)
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range")}
        sent = 0
        with self._client.stream(
            h.command, f"http://{ns}{parts.path}", headers=headers
        ) as upstream:
            h.send_response(upstream.status_code)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP:
                    h.send_header(k, v)
            h.end_headers()
            if h.command == "GET":
                for chunk in upstream.iter_raw():
                    h.wfile.write(chunk)
                    sent += len(chunk)
            status = upstream.status_code
        self._record(h.command, parts.path, ns, status, sent)

    def _record(self, method: str, path: str, ns: str | None, status: int, sent: int) -> None:
        with self._lock:
            self.requests.append((method, path, ns, status, sent))

    def blob_bytes(self, digest: str) -> int:
        with self._lock:
            return sum(
                r[4] for r in self.requests if r[0] == "GET" and r[1].endswith(f"/blobs/{digest}")
            )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture(scope="module", params=["kubeadm", "kubespray"])
def wired(
    request: pytest.FixtureRequest, registry: testbed.Registry, runtime_workdir: Path
) -> Iterator[tuple[Path, testbed.Containerd, RecordingMirror]]:
    """A kubeadm or kubespray tree T, a recording mirror, and a containerd 1.6.20 whose
    config_path is T's /etc/containerd/certs.d (which apply fills in)."""
    base = runtime_workdir / f"mirror-wiring-{request.param}"
    tree = base / "root"
    tree.mkdir(parents=True)
    build = build_kubeadm if request.param == "kubeadm" else build_kubespray
    build(tree, containerd_version="1.6.20")
    mirror = RecordingMirror(registry.host)
    ctr = testbed.Containerd(base / "containerd")
    ctr.certs_d = tree / "etc/containerd/certs.d"
    ctr.write_config()
    try:
        ctr.start()
        yield tree, ctr, mirror
    finally:
        ctr.stop()
        mirror.stop()


def _apply(tree: Path, *args: str) -> dict:  # type: ignore[type-arg]
    res = runner.invoke(app, ["apply", "--root", str(tree), "--no-restart", "-o", "json", *args])
    assert res.exit_code == 0, res.output
    doc: dict = json.loads(res.stdout)  # type: ignore[type-arg]
    return doc


def _lint_clean(tree: Path) -> None:
    res = runner.invoke(app, ["lint", "--root", str(tree), "-o", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["error"] == 0


def _pull_through(
    ctr: testbed.Containerd, mirror: RecordingMirror, registry: testbed.Registry, repo: str
) -> None:
    image = testbed.build_image([3 * 1024 * 1024, 512 * 1024], seed=len(repo))
    ref = registry.push(image, repo, "v1")
    first = len(mirror.requests)
    with CriClient(ctr.socket) as cri:
        try:
            assert cri.pull_image(ref) == image.image_id
        finally:
            cri.remove_image(ref)
    for blob in (*image.layers, image.config):
        assert mirror.blob_bytes(blob.digest) == blob.size, blob.digest
    assert all(r[2] == registry.host for r in mirror.requests if r[3] != 404)
    # The tag was resolved through the mirror too: containerd 1.6.20 sends the tag HEAD to a
    # host only with both "pull" and "resolve" (blob GETs reached a mirror whatever its
    # capabilities, measured), so this is what proves the capabilities written.
    assert ("HEAD", f"/v2/{repo}/manifests/v1") in {(r[0], r[1]) for r in mirror.requests[first:]}


def test_apply_mirror_for_the_registry_is_what_containerd_uses(
    wired: tuple[Path, testbed.Containerd, RecordingMirror],
    registry: testbed.Registry,
    unique_repo: object,
) -> None:
    tree, ctr, mirror = wired
    doc = _apply(tree, "--mirror", mirror.url, "--mirror-registry", registry.host)
    assert doc["status"] == "written"
    assert f"/etc/containerd/certs.d/{registry.host}/hosts.toml" in {
        f["path"] for f in doc["files"]
    }
    _lint_clean(tree)
    _pull_through(ctr, mirror, registry, unique_repo("named"))  # type: ignore[operator]


def test_apply_mirror_default_dir_is_what_containerd_uses(
    wired: tuple[Path, testbed.Containerd, RecordingMirror],
    registry: testbed.Registry,
    unique_repo: object,
) -> None:
    tree, ctr, mirror = wired
    _unwire(tree / "etc/containerd/certs.d" / registry.host)  # it would win over _default
    doc = _apply(tree, "--mirror", mirror.url)
    assert "/etc/containerd/certs.d/_default/hosts.toml" in {f["path"] for f in doc["files"]}
    _lint_clean(tree)
    _pull_through(ctr, mirror, registry, unique_repo("default"))  # type: ignore[operator]


def test_mirror_down_pulls_fall_back_to_server(
    wired: tuple[Path, testbed.Containerd, RecordingMirror],
    registry: testbed.Registry,
    unique_repo: object,
) -> None:
    """Nothing listens at the --mirror URL: containerd falls back to server (the registry)."""
    tree, ctr, _mirror = wired
    dead = f"http://127.0.0.1:{testbed.free_port()}"
    named = tree / "etc/containerd/certs.d" / registry.host
    try:
        _apply(tree, "--mirror", dead, "--mirror-registry", registry.host)
        _lint_clean(tree)
        image = testbed.build_image([256 * 1024], seed=7)
        ref = registry.push(image, unique_repo("fallback"), "v1")  # type: ignore[operator]
        mark = registry.mark()
        with CriClient(ctr.socket) as cri:
            try:
                assert cri.pull_image(ref) == image.image_id
            finally:
                cri.remove_image(ref)
        served = {r.path for r in registry.records_since(mark) if r.method == "GET"}
        assert all(any(p.endswith(b.digest) for p in served) for b in image.layers)
    finally:
        _unwire(named)


def _unwire(directory: Path) -> None:
    """Remove a registry's hosts directory (an empty one would still shadow _default)."""
    (directory / "hosts.toml").unlink(missing_ok=True)
    if directory.exists():
        directory.rmdir()


def test_apply_mirror_wires_containerd_to_a_real_mlnode_mirror(
    wired: tuple[Path, testbed.Containerd, RecordingMirror],
    registry: testbed.Registry,
    unique_repo: object,
    tmp_path: Path,
) -> None:
    """The acceptance check end to end: `apply --mirror` on the tree, `lint --root` clean,
    and containerd 1.6.20 pulls every blob through a real `mlnode mirror`."""
    from testbed_mirror import MirrorProcess

    tree, ctr, _recording = wired
    named = tree / "etc/containerd/certs.d" / registry.host
    m = MirrorProcess(tmp_path / "cache", [f"{registry.host}={registry.url}"]).start()
    try:
        _apply(tree, "--mirror", m.url, "--mirror-registry", registry.host)
        _lint_clean(tree)
        image = testbed.build_image([2 * 1024 * 1024, 256 * 1024], seed=171)
        ref = registry.push(image, unique_repo("real"), "v1")  # type: ignore[operator]
        with CriClient(ctr.socket) as cri:
            try:
                assert cri.pull_image(ref) == image.image_id
            finally:
                cri.remove_image(ref)
        for layer in image.layers:
            b = m.blob(layer.digest)
            assert b is not None and b["state"] == "complete" and b["served_bytes"] == layer.size
    finally:
        m.stop()
        _unwire(named)
