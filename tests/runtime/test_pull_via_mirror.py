"""``mlnode pull`` and ``mlnode progress`` with a real ``mlnode mirror`` (a subprocess)
that a real containerd 1.6.20 is wired to (hosts.toml), in front of the real registry
(behind a :class:`testbed.ThrottleProxy` where the test slows or stalls the upstream)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import testbed
from test_pull import _cli, assert_registered, make_image, run_pull, served_bytes
from testbed_mirror import MirrorProcess

from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient

pytestmark = [pytest.mark.runtime, pytest.mark.timeout(180)]

MiB = 1024 * 1024


@pytest.fixture
def wired(
    tmp_path: Path, containerd: testbed.Containerd, registry: testbed.Registry
) -> Iterator[Callable[[str | None], MirrorProcess]]:
    """``wired(upstream_url)``: a mirror of the registry (or of ``upstream_url``, e.g. a
    throttling proxy in front of it) with containerd's hosts.toml sending the registry's
    pulls to it first; unwired and stopped after the test."""
    started: list[MirrorProcess] = []

    def start(upstream_url: str | None = None) -> MirrorProcess:
        m = MirrorProcess(
            tmp_path / "cache",
            [f"{registry.host}={upstream_url or registry.url}"],
            runtime_endpoint=str(containerd.socket),
        ).start()
        started.append(m)
        containerd.trust_registry(registry.host, mirror_url=m.url)
        return m

    yield start
    containerd.trust_registry(registry.host)
    for m in started:
        m.stop()


@pytest.fixture
def pushed(
    registry: testbed.Registry, unique_repo: Callable[[str], str], cri: CriClient
) -> Iterator[Callable[[int], tuple[str, testbed.OciImage]]]:
    refs: list[str] = []

    def push(size: int) -> tuple[str, testbed.OciImage]:
        repo = unique_repo("img")
        image = make_image(size, repo)
        ref = registry.push(image, repo, "1")
        refs.append(ref)
        return ref, image

    yield push
    for ref in refs:
        cri.remove_image(ref)


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_pull_on_a_wired_node_goes_through_the_mirror(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    wired: Callable[[str | None], MirrorProcess],
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = pushed(24 * MiB)
    m = wired(None)
    mark = registry.mark()
    run = run_pull(containerd, ref)
    assert run.returncode == 0, run.stderr
    path = run.of("path")[0]
    assert path["via"] == "mirror" and path["mirror"] == m.url, path
    done = run.of("done")[0]
    assert done["via"] == "mirror" and done["fetched_bytes"] >= image.layers[0].size
    assert_registered(cri, ref, image)
    layer = image.layers[0]
    # the bytes went through the mirror: it fetched the layer once and served it all
    b = m.blob(layer.digest)
    assert b is not None and b["served_bytes"] >= layer.size and b["image"] == ref, b
    assert served_bytes(registry, mark) <= 1.05 * image.compressed_size
    offsets = [e["offset_bytes"] for e in run.of("progress") if e["layer"] == layer.digest]
    assert offsets and offsets[-1] == layer.size
    assert any(b["digest"] == layer.digest for e in run.of("mirror") for b in e["blobs"])


def test_progress_during_a_slow_pull_shows_the_mirrors_blob(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    wired: Callable[[str | None], MirrorProcess],
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = pushed(24 * MiB)
    layer = image.layers[0]
    upstream = registry.proxy(rate_bytes_per_second=2 * MiB)
    m = wired(upstream.url)
    pull = subprocess.Popen(
        _cli(containerd, "pull", ref, "--no-gc", "-o", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            "the mirror fetching the layer",
            lambda: (m.blob(layer.digest) or {}).get("upstream_bytes", 0) > 0,
        )
        # no --mirror: found through containerd's hosts.toml (the registry's first host)
        p = subprocess.run(
            _cli(containerd, "progress", "--interval", "0.3", "-o", "json"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["mirror"]["url"] == m.url and doc["mirror"]["reachable"], doc["mirror"]
        rows = [r for r in doc["downloads"] if r["digest"] == layer.digest]
        assert len(rows) == 1, doc  # one row, whoever knows the blob
        row = rows[0]
        assert row["source"] in ("both", "mirror") and row["mirror"] is not None, row
        assert row["mirror"]["image"] == ref and row["mirror"]["size_bytes"] == layer.size
        assert 0 < row["mirror"]["upstream_bytes"] < layer.size
        human = subprocess.run(
            _cli(containerd, "progress", "--interval", "0.3", "--mirror", m.url),
            capture_output=True,
            text=True,
            timeout=60,
            env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
        )
        assert human.returncode == 0, human.stderr
        assert f"mirror {m.url}" in human.stdout and ref in human.stdout
    finally:
        upstream.rate_bytes_per_second = None
        out, err = pull.communicate(timeout=120)
        upstream.stop()
    assert pull.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["via"] for e in events if e["event"] == "done"] == ["mirror"]
    assert_registered(cri, ref, image)


def test_no_byte_progress_through_the_mirror_cancels_the_pull(
    containerd: testbed.Containerd,
    registry: testbed.Registry,
    cri: CriClient,
    wired: Callable[[str | None], MirrorProcess],
    pushed: Callable[[int], tuple[str, testbed.OciImage]],
) -> None:
    ref, image = pushed(24 * MiB)
    layer = image.layers[0]
    upstream = registry.proxy(rate_bytes_per_second=2 * MiB)
    m = wired(upstream.url)
    pull = subprocess.Popen(
        _cli(containerd, "pull", ref, "--no-gc", "--stall-timeout", "3s", "-o", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            "the mirror fetching the layer",
            lambda: (m.blob(layer.digest) or {}).get("upstream_bytes", 0) > 0,
        )
        upstream.stall()  # the mirror's own stall deadline (20 s) is far off
        out, err = pull.communicate(timeout=60)
    finally:
        upstream.resume()
        upstream.stop()
        if pull.poll() is None:
            pull.kill()
    assert pull.returncode == 6, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: no byte progress at the mirror")
    assert "the CRI pull was cancelled" in lines[0] and "Traceback" not in err
    assert cri.image_status(ref) is None
    with ContainerdClient(containerd.socket, namespace="k8s.io") as ctrd:
        # this pull's lease is gone (other tests may leave theirs on purpose: a refused
        # pull keeps its lease so a rerun resumes)
        mine = [
            x
            for x in ctrd.list_leases()
            if x.id.startswith("mlnode-pull-") and ref in " ".join(x.labels.values())
        ]
        assert not mine, mine
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 6
