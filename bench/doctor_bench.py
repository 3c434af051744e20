#!/usr/bin/env python3
"""`mlnode doctor --cluster` on a scripted cluster of N nodes (default 1,000), against the
fake API server (real HTTPS on loopback; mlnode.testing.fake_kube_api), in one run:

  sequential   --concurrency 1: one node after another (the baseline: what a loop of
               `kubectl get --raw .../proxy/configz` per node costs)
Every kubelet answer waits ``--latency`` (default 20 ms: a chosen stand-in for the API
server's proxy hop to a kubelet, not a measurement; the fake answers in ~1 ms otherwise).
  bounded      --concurrency 32 (the default)
  hung         --concurrency 32 with ``--hung`` nodes (default 5 %) whose kubelet answers
               only after 60 s; --node-timeout 2s: they are reported, not waited for

Not a test. The doctor runs as a subprocess (`mlnode doctor --cluster -o json`), so
client and server do not share one interpreter's lock. Every node is a whole Node
(_kubelet_shapes.node_object, 12 images), with configz and stats/summary; 1 node in 20 has a
failed-pull story and the pool has one node with another GC threshold. Nodes are stored
without re-validating each (validate=False: node_object's Nodes are validated by its tests;
validating 1,000 costs ~7 s of setup, not of the doctor); Events are validated.

Reported: wall time of each mode, nodes/s, the ratios, and that every node is in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlnode.testing._kube_events import ERRORS, pull_story  # noqa: E402
from mlnode.testing._kubelet_shapes import configz_document, stats_summary  # noqa: E402
from mlnode.testing.fake_kube_api import FakeKubeApiServer  # noqa: E402

GIB = 1 << 30


def _populate(api: FakeKubeApiServer, n: int, latency: float) -> None:
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for i in range(n):
        name = f"gpu-{i:04d}"
        images = [
            ([f"registry.example.com/ml/model-{k}:v{i % 3}"], (k + 1) * GIB) for k in range(12)
        ]
        api.add_node(
            name,
            labels={"nodepool": f"pool-{i % 10}"},
            images=images,
            validate=False,
        )
        high = 80 if i == 7 else 85
        api.set_kubelet(
            name,
            configz=configz_document("v1.30.2", {"imageGCHighThresholdPercent": high}),
            summary=stats_summary(name, imagefs=(2000 * GIB, (340 + i % 500) * GIB, 900 * GIB)),
            delay_seconds=latency,
        )
        if i % 20 == 0:
            image = "registry.example.com/ml/llm:v3"
            text = ERRORS["containerd-progress-timeout"][0].format(image=image)
            for obj in pull_story(
                node=name,
                namespace="training",
                pod=f"llm-{i}",
                container="train",
                image=image,
                error=text,
                t0=t0 + timedelta(minutes=i),
                fail_after_seconds=430,
            ):
                api.add_event("training", obj)


def _run(kubeconfig: Path, *extra: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [
        sys.executable,
        "-c",
        "from mlnode.cli.app import main; main()",
        "doctor",
        "--cluster",
        "--kubeconfig",
        str(kubeconfig),
        "-o",
        "json",
        *extra,
    ]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    took = time.monotonic() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"doctor exited {done.returncode}: {done.stderr.strip()}")
    return took, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--hung", type=float, default=0.05, help="fraction of nodes that hang")
    ap.add_argument(
        "--latency",
        type=float,
        default=0.02,
        help="seconds every kubelet answer waits (a chosen stand-in for the API server's"
        " proxy hop to a kubelet on the LAN; 0 = loopback only)",
    )
    ap.add_argument("--skip-sequential", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeKubeApiServer(workdir=Path(tmp)) as api:
        t = time.monotonic()
        _populate(api, args.nodes, args.latency)
        print(f"setup: {args.nodes} nodes in {time.monotonic() - t:.1f} s", flush=True)
        kubeconfig = api.kubeconfig(Path(tmp) / "kubeconfig")
        rows = []
        modes = [("bounded (32)", ("--concurrency", "32"))]
        if not args.skip_sequential:
            modes.insert(0, ("sequential (1)", ("--concurrency", "1")))
        for label, extra in modes:
            took, doc = _run(kubeconfig, *extra)
            assert doc["summary"]["nodes"] == args.nodes, doc["summary"]
            rows.append((label, took, doc["summary"]))
            print(
                f"{label}: {took:.1f} s, {args.nodes / took:.0f} nodes/s, summary {doc['summary']}",
                flush=True,
            )
        hung = int(args.nodes * args.hung)
        for i in range(hung):
            name = f"gpu-{i:04d}"
            api.set_kubelet(
                name,
                configz=configz_document("v1.30.2"),
                summary=stats_summary(name, imagefs=(2000 * GIB, 500 * GIB, 900 * GIB)),
                delay_seconds=60.0,
            )
        took, doc = _run(kubeconfig, "--concurrency", "32", "--node-timeout", "2s")
        api.release_delayed()
        assert doc["summary"]["nodes_unreachable"] == hung, doc["summary"]
        rows.append((f"hung {hung} (32, 2 s timeout)", took, doc["summary"]))
        print(f"hung: {took:.1f} s with {hung} nodes not answering, summary {doc['summary']}")
        base = rows[0][1]
        print("\n| mode | wall s | nodes/s | ratio to first |\n|---|---|---|---|")
        for label, took, _ in rows:
            print(f"| {label} | {took:.1f} | {args.nodes / took:.0f} | {took / base:.2f} |")


if __name__ == "__main__":
    main()
