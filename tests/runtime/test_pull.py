"""``mlnode pull`` and ``mlnode progress`` against a real containerd 1.6 and registry.

Every pull runs the CLI in a subprocess (as an operator would) against the session's
containerd, with the registry behind a :class:`testbed.ThrottleProxy` mirror where the
test needs to shape, stall or cut the link. Bytes really served come from the registry's
access log. Each test builds its own image (unique layer digests), so nothing one test
leaves in the content store can help another.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testbed

from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient

pytestmark = [pytest.mark.runtime, pytest.mark.timeout(180)]

MiB = 1024 * 1024
_PAYLOAD = os.urandom(48 * MiB)  # shared random bytes; each image adds a unique file


def make_image(size: int, tag: str) -> testbed.OciImage:
    """A one-layer image of about ``size`` bytes, unique per ``tag``, built in well under a
    second (gzip level 0 over random bytes: the layer is as big as its content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"id-{tag}.txt", tag.encode()), ("payload.bin", _PAYLOAD[:size])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    layer = testbed.Blob(testbed.OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=0, mtime=0))
    config = testbed.Blob(
        testbed.OCI_CONFIG,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [testbed.sha256_digest(raw)]},
            },
            sort_keys=True,
        ).encode(),
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": testbed.OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        },
        sort_keys=True,
    ).encode()
    return testbed.OciImage(config, (layer,), manifest)


@dataclass
class PullRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]


def _cli(containerd: testbed.Containerd, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from mlnode.cli.app import main; main()",
        *args,
        "--runtime-endpoint",
        str(containerd.socket),
    ]


def pull_cmd(containerd: testbed.Containerd, ref: str, *extra: str) -> list[str]:
    return _cli(
        containerd,
        "pull",
        ref,
        "--hosts-dir",
        str(containerd.certs_d),
        "--no-gc",
        "--output",
        "json",
        *extra,
    )


def _parse(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_pull(
    containerd: testbed.Containerd, ref: str, *extra: str, timeout: float = 120
) -> PullRun:
    p = subprocess.run(
        pull_cmd(containerd, ref, *extra), capture_output=True, text=True, timeout=timeout
    )
    return PullRun(p.returncode, _parse(p.stdout), p.stderr)


def served_bytes(registry: testbed.Registry, mark: int) -> int:
    """Body bytes the registry sent (GETs of blobs and manifests) since ``mark``."""
    n = sum(
        r.bytes
        for r in registry.records_since(mark)
        if r.method == "GET" and ("/blobs/" in r.path or "/manifests/" in r.path)
    )
    return n


def assert_no_refetch(
    registry: testbed.Registry,
    mark: int,
    image: testbed.OciImage,
    proxy: testbed.ThrottleProxy,
) -> None:
    """Nothing was downloaded twice: the registry served (its access log, GETs of blobs and
    manifests since ``mark``) at most 1.05 × the image's bytes, and at most that reached
    the node (bytes the proxy forwarded).

    The registry's count includes what its handler had written into the kernel when a
    connection was cut or its client killed. The testbed keeps that small (the registry
    listens on a unix socket, the proxy has small bounded buffers: a few hundred KiB per
    broken connection, see testbed.py), so no allowance is made for it.
    """
    limit = 1.05 * image.compressed_size
    assert proxy.bytes_to_client <= limit, (proxy.bytes_to_client, image.compressed_size)
    served = served_bytes(registry, mark)
    assert served <= limit, (served, image.compressed_size)


def layer_ref(image: testbed.OciImage) -> str:
    return f"layer-{image.layers[0].digest}"


def wait_for_offset(ctrd: ContainerdClient, ref: str, at_least: int, *, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = ctrd.status(ref)
        if s is not None and s.offset_bytes >= at_least:
            return s.offset_bytes
        time.sleep(0.05)
    raise AssertionError(f"ingest {ref} did not reach {at_least} bytes in {timeout}s")


def assert_registered(cri: CriClient, ref: str, image: testbed.OciImage) -> None:
    status = cri.image_status(ref)
    assert status is not None, f"{ref} not registered"
    assert status.id == image.image_id
    assert any(d.endswith("@" + image.manifest_digest) for d in status.repo_digests)


def assert_not_registered(cri: CriClient, ctrd: ContainerdClient, ref: str) -> None:
    assert cri.image_status(ref) is None
    assert ref not in {i.name for i in ctrd.list_images()}


@pytest.fixture
def pushed(
    registry: testbed.Registry, unique_repo: Callable[[str], str]
) -> Callable[[int], tuple[str, testbed.OciImage]]:
    def push(size: int) -> tuple[str, testbed.OciImage]:
        repo = unique_repo("img")
        image = make_image(size, repo)
        return registry.push(image, repo, "1"), image

    return push


@pytest.fixture
def lean_proxy(
    registry: testbed.Registry, containerd: testbed.Containerd
) -> Iterator[testbed.ThrottleProxy]:
    """Like ``proxy``, but with small buffers all the way (the registry's unix socket,
    16 KiB reads, a 64 KiB ``SO_SNDBUF`` towards the client): a cut, stall or kill then
    leaves only a few hundred KiB served but undelivered, so the access log shows what
    the client re-requested."""
    p = registry.proxy(lean=True)
    containerd.trust_registry(registry.host, mirror_url=p.url)
    try:
        yield p
    finally:
        containerd.trust_registry(registry.host)
        p.stop()


@pytest.fixture
def cleanup(cri: CriClient) -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    for ref in refs:
        cri.remove_image(ref)


# -- the happy path, with byte progress ---------------------------------------------------


def test_pull_shows_byte_progress_and_registers_the_image(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    lean_proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(24 * MiB)
    cleanup.append(ref)
    lean_proxy.rate_bytes_per_second = 8 * MiB
    mark = registry.mark()
    proc = subprocess.Popen(
        pull_cmd(containerd, ref), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = [wait_for_offset(ctrd, layer_ref(image), 1)]
    while proc.poll() is None and len(seen) < 6:
        s = ctrd.status(layer_ref(image))
        if s is not None and s.offset_bytes > seen[-1]:
            seen.append(s.offset_bytes)
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)
    events = _parse(out)
    assert proc.returncode == 0, err
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] < image.layers[0].size

    progress = [e for e in events if e["event"] == "progress" and e["role"] == "layer"]
    assert len(progress) >= 3
    mid = [e for e in progress if 0 < e["offset_bytes"] < e["total_bytes"]]
    assert mid and all(e["rate_bytes_per_second"] > 0 for e in mid)
    assert progress[-1]["offset_bytes"] == progress[-1]["total_bytes"] == image.layers[0].size
    assert {"layer", "offset_bytes", "total_bytes", "rate_bytes_per_second"} <= set(mid[0])
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases[:2] == ["resolving", "fetching"] and "unpacking" in phases
    done = events[-1]
    assert done["event"] == "done" and done["image_id"] == image.image_id

    assert_registered(cri, ref, image)
    assert_no_refetch(registry, mark, image, lean_proxy)
    heads = [r for r in registry.records_since(mark) if r.method == "HEAD"]
    assert heads, "CRI PullImage resolves the manifest with a HEAD"
    assert not ctrd.list_statuses(), "no ingest left behind"
    assert done["manifest_digest"] == image.manifest_digest
    assert not [x for x in ctrd.list_leases() if x.id.startswith("mlnode-pull-")]

    again = run_pull(containerd, ref)
    assert again.returncode == 0 and again.of("done")[0]["already_present"] is True


def test_pull_picks_the_platform_from_an_index(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    unique_repo: Callable[[str], str],
    cleanup: list[str],
) -> None:
    repo = unique_repo("idx")
    image = make_image(1 * MiB, repo)
    registry.push(image, repo, "amd64")
    other = make_image(1 * MiB, repo + "-arm")
    registry.push(other, repo, "arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": testbed.OCI_MANIFEST,
                    "digest": other.manifest_digest,
                    "size": len(other.manifest),
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
                {
                    "mediaType": testbed.OCI_MANIFEST,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
    ).encode()
    r = registry.http.put(
        f"/v2/{repo}/manifests/multi",
        content=index,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    r.raise_for_status()
    ref = f"{registry.host}/{repo}:multi"
    cleanup.append(ref)
    run = run_pull(containerd, ref, "--platform", "linux/amd64")
    assert run.returncode == 0, run.stderr
    resolved = run.of("resolved")[0]
    assert resolved["manifest_digest"] == image.manifest_digest
    assert resolved["index_digest"] == testbed.sha256_digest(index)
    status = cri.image_status(ref)
    assert status is not None and status.id == image.image_id


# -- resume ---------------------------------------------------------------------------


def test_cut_connections_resume_without_refetching(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    lean_proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    """Cut every connection twice mid-layer; the layer is fetched as ranges over three
    connections (split threshold lowered), each resuming where it was cut."""
    ref, image = pushed(32 * MiB)
    cleanup.append(ref)
    size = image.layers[0].size
    lean_proxy.rate_bytes_per_second = 4 * MiB  # per connection
    mark = registry.mark()
    proc = subprocess.Popen(
        pull_cmd(containerd, ref, "--connections", "3", "--split-threshold", "8MiB"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for fraction in (0.2, 0.5):
        wait_for_offset(ctrd, layer_ref(image), int(size * fraction))
        assert lean_proxy.cut() > 0
    lean_proxy.rate_bytes_per_second = None
    out, err = proc.communicate(timeout=90)
    events = _parse(out)
    assert proc.returncode == 0, err
    retries = [e for e in events if e["event"] == "retry"]
    assert retries and {e["reason"] for e in retries} <= {"dropped", "error"}
    assert events[-1]["retries"] >= 2
    assert_registered(cri, ref, image)
    ranged = [r for r in registry.records_since(mark) if r.status == 206]
    assert len(ranged) >= 4, "the layer was fetched in ranges"
    assert_no_refetch(registry, mark, image, lean_proxy)


def test_killed_mlnode_resumes_from_the_ingest_offset(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    lean_proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(40 * MiB)
    cleanup.append(ref)
    size = image.layers[0].size
    lean_proxy.rate_bytes_per_second = 8 * MiB
    mark = registry.mark()
    proc = subprocess.Popen(
        pull_cmd(containerd, ref), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_offset(ctrd, layer_ref(image), int(size * 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    left = ctrd.status(layer_ref(image))
    assert left is not None and 0.4 * size <= left.offset_bytes < size
    assert_not_registered(cri, ctrd, ref)

    lean_proxy.rate_bytes_per_second = None
    run = run_pull(containerd, ref)
    assert run.returncode == 0, run.stderr
    blobs = {b["digest"]: b for b in run.of("resolved")[0]["blobs"]}
    assert blobs[image.layers[0].digest]["offset_bytes"] >= left.offset_bytes
    assert_registered(cri, ref, image)
    resumed = [r for r in registry.records_since(mark) if r.status == 206]
    assert resumed, "the second run asked for the rest with Range"
    assert_no_refetch(registry, mark, image, lean_proxy)


def test_containerd_restart_mid_pull_is_survived(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    lean_proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(32 * MiB)
    cleanup.append(ref)
    size = image.layers[0].size
    lean_proxy.rate_bytes_per_second = 8 * MiB
    mark = registry.mark()
    proc = subprocess.Popen(
        pull_cmd(containerd, ref), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_offset(ctrd, layer_ref(image), int(size * 0.3))
    containerd.restart(signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    events = _parse(out)
    assert proc.returncode == 0, err
    assert any(e["event"] == "retry" and e["reason"] == "runtime" for e in events)
    with CriClient(containerd.socket) as fresh:
        assert_registered(fresh, ref, image)
    assert_no_refetch(registry, mark, image, lean_proxy)


# -- stall deadline -------------------------------------------------------------------


def test_stall_deadline_fires_and_the_retry_resumes(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(24 * MiB)
    cleanup.append(ref)
    size = image.layers[0].size
    proxy.rate_bytes_per_second = 8 * MiB
    proc = subprocess.Popen(
        pull_cmd(containerd, ref, "--stall-timeout", "2s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_offset(ctrd, layer_ref(image), int(size * 0.2))
    proxy.stall(3.5)  # longer than the deadline; over before the second try times out
    out, err = proc.communicate(timeout=90)
    events = _parse(out)
    assert proc.returncode == 0, err
    stalls = [e for e in events if e["event"] == "retry" and e["reason"] == "stall"]
    assert stalls and stalls[0]["silent_seconds"] >= 1.9
    assert 0 < stalls[0]["offset_bytes"] < size
    assert_registered(cri, ref, image)


def test_stall_past_the_retries_fails_clearly_then_resumes(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    lean_proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(24 * MiB)
    cleanup.append(ref)
    size = image.layers[0].size
    lean_proxy.rate_bytes_per_second = 8 * MiB
    mark = registry.mark()
    proc = subprocess.Popen(
        pull_cmd(containerd, ref, "--stall-timeout", "1s", "--retries", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_offset(ctrd, layer_ref(image), int(size * 0.3))
    lean_proxy.stall(60)
    out, err = proc.communicate(timeout=60)
    lean_proxy.resume()
    assert proc.returncode == 6, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: no new byte for")
    assert image.layers[0].digest in lines[0] and "offset" in lines[0]
    error = _parse(out)[-1]
    assert error["event"] == "error" and error["error"] == "PullStalled"
    assert_not_registered(cri, ctrd, ref)
    left = ctrd.status(layer_ref(image))
    assert left is not None and left.offset_bytes >= 0.3 * size

    lean_proxy.rate_bytes_per_second = None
    run = run_pull(containerd, ref)
    assert run.returncode == 0, run.stderr
    assert_registered(cri, ref, image)
    assert_no_refetch(registry, mark, image, lean_proxy)


# -- refusals and errors --------------------------------------------------------------


def test_refuses_when_the_image_cannot_fit(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = pushed(1 * MiB)
    mark = registry.mark()
    run = run_pull(containerd, ref, "--reserve", "100TiB")
    assert run.returncode == 5
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit" in lines[0] and "100.0 TiB reserve" in lines[0]
    assert "available" in lines[0] and "--no-gc" in lines[0]
    space = run.of("space")[0]
    assert space["fits"] is False and space["required_bytes"] > space["available_bytes"]
    assert_not_registered(cri, ctrd, ref)
    assert not [r for r in registry.records_since(mark) if "/blobs/" in r.path]
    assert ctrd.status(layer_ref(image)) is None


def test_unknown_image_is_one_clear_line(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
) -> None:
    ref = f"{registry.host}/mlnode/does-not-exist:1"
    p = subprocess.run(
        _cli(containerd, "pull", ref, "--hosts-dir", str(containerd.certs_d), "--no-gc"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 3
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("mlnode: error: ") and "image not found" in lines[0]
    assert "does-not-exist" in lines[0]
    assert_not_registered(cri, ctrd, ref)


def test_unreachable_registry_is_a_registry_error(
    containerd: testbed.Containerd, cri: CriClient, ctrd: ContainerdClient, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{testbed.free_port()}"
    ref = f"{dead}/mlnode/app:1"
    p = subprocess.run(
        _cli(containerd, "pull", ref, "--hosts-dir", str(tmp_path), "--no-gc"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 4
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"http://{dead}/v2/mlnode/app/manifests/1" in lines[0]
    assert "ConnectError" in lines[0]
    assert_not_registered(cri, ctrd, ref)


def test_corrupt_blob_is_a_digest_mismatch_and_leaves_nothing(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = pushed(4 * MiB)
    digest = image.layers[0].digest
    hexd = digest.partition(":")[2]
    stored = registry.workdir / "data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    assert testbed.sha256_digest(bytes(data)) != digest
    run = run_pull(containerd, ref)
    assert run.returncode == 4
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and digest in lines[0] and "hash to" in lines[0]
    assert run.of("error")[0]["error"] == "DigestMismatch"
    assert_not_registered(cri, ctrd, ref)
    assert ctrd.status(layer_ref(image)) is None, "the corrupt ingest was aborted"
    assert not ctrd.has_content(digest)


# -- mlnode progress ------------------------------------------------------------------


def test_progress_shows_a_kubelet_style_pull_mid_flight(
    containerd: testbed.Containerd,
    proxy: testbed.ThrottleProxy,
    cri: CriClient,
    ctrd: ContainerdClient,
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
    cleanup: list[str],
) -> None:
    ref, image = pushed(24 * MiB)
    cleanup.append(ref)
    proxy.rate_bytes_per_second = 3 * MiB
    errors: list[BaseException] = []

    def kubelet_pull() -> None:
        try:
            cri.pull_image(ref, timeout_seconds=120)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=kubelet_pull, daemon=True)
    t.start()
    wait_for_offset(ctrd, layer_ref(image), 1)
    p = subprocess.run(
        _cli(containerd, "progress", "--watch", "--count", "2", "--interval", "0.5", "-o", "json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    docs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(docs) == 2 and docs[0]["schema"] == "mlnode.progress/v1"
    rows = [d for d in docs[-1]["downloads"] if d["ref"] == layer_ref(image)]
    assert rows, docs
    row = rows[0]
    assert row["digest"] == image.layers[0].digest
    assert 0 < row["offset_bytes"] < row["total_bytes"] == image.layers[0].size
    assert row["rate_bytes_per_second"] and row["rate_bytes_per_second"] > 0
    assert row["eta_seconds"] is not None and row["percent"] is not None

    human = subprocess.run(
        _cli(containerd, "progress", "--interval", "0.3"), capture_output=True, text=True
    )
    assert human.returncode == 0 and "layer-sha256:" in human.stdout
    proxy.rate_bytes_per_second = None
    t.join(timeout=60)
    assert not errors, errors
