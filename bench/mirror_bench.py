#!/usr/bin/env python3
"""Side-by-side benchmark: CRI PullImage straight to the registry vs CRI through
``mlnode mirror`` (containerd pointed at it by hosts.toml), each twice, one run.

Not a test: run it by hand, as root, with containerd, runc and docker-registry installed
(see bench/README.md). It starts its own registry (TCP, as in pull_bench.py) and containerd
on loopback, builds one single-layer image of random bytes (``--size``, default 1 GiB) and
measures, removing the image and its content from containerd before every pull:

  a  clean loopback: direct; mirror cold (empty cache); mirror warm (the blob in its cache)
  b  400 Mbit/s per connection (``--rate-mbit``) with three cuts of every live connection
     at 25/50/75 % of the layer; direct goes through the shaping proxy, the mirror fetches
     through it (so each of its ranged connections is limited the same way)
  c  behind the same link, the CRI call cancelled at 50 % of the layer and retried at once
     (the kubelet's pull cancelled by a progress timeout, then retried)
  p  clean loopback: ``mlnode pull --via engine`` (its own engine, Content Write gRPC) and
     ``mlnode pull --via mirror`` (CRI PullImage through a cold mirror) vs CRI direct

Reports wall time and the bytes the registry served (its access log) per pull, the ratios
mirror / direct, and the mirror process's CPU seconds per GiB it fetched (utime + stime
from /proc/<pid>/stat). ``--json FILE`` writes the raw results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import grpc  # noqa: E402
import testbed  # noqa: E402
from pull_bench import Bench, build_layer  # noqa: E402
from testbed_mirror import MirrorProcess  # noqa: E402

from mlnode.runtime._proto import cri_runtime_v1_pb2 as cri_pb  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass
class Row:
    scenario: str
    path: str  # direct | mirror-cold | mirror-warm | mirror
    run: int
    wall_seconds: float
    served_bytes: int
    image_bytes: int
    mirror_cpu_seconds: float | None = None
    mirror_fetched_bytes: int | None = None
    note: str = ""

    @property
    def served_ratio(self) -> float:
        return self.served_bytes / self.image_bytes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


class MirrorBench(Bench):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(args, work)
        self.rows: list[Row] = []
        self.mirror: MirrorProcess | None = None
        self.mirror_port: int | None = None  # one port for every mirror run

    # -- the mirror ----------------------------------------------------------------------

    def start_mirror(self, upstream_url: str, *, fresh: bool, retain: bool) -> MirrorProcess:
        self.stop_mirror()
        cache = self.work / "mirror-cache"
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
        extra = ["--retain-committed"] if retain else []
        m = MirrorProcess(
            cache,
            [f"{self.registry.host}={upstream_url}"],
            extra=tuple(extra),
            port=self.mirror_port,
        ).start()
        self.mirror, self.mirror_port = m, m.port
        self.containerd.trust_registry(self.registry.host, mirror_url=m.url)
        return m

    def stop_mirror(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()
            self.mirror = None
        self.containerd.trust_registry(self.registry.host)

    def mirror_fetched(self) -> int:
        assert self.mirror is not None
        return sum(b["upstream_bytes"] for b in self.mirror.status()["blobs"])

    # -- pulls ---------------------------------------------------------------------------

    def cancel_at_half_then_retry(self, ref: str, layer_ref: str, size: int) -> int:
        channel = grpc.insecure_channel(f"unix://{self.containerd.socket}")
        call = channel.unary_unary(
            "/runtime.v1.ImageService/PullImage",
            request_serializer=cri_pb.PullImageRequest.SerializeToString,
            response_deserializer=cri_pb.PullImageResponse.FromString,
        )
        try:
            future = call.future(cri_pb.PullImageRequest(image=cri_pb.ImageSpec(image=ref)))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                s = self.ctrd.status(layer_ref)
                if s is not None and s.offset_bytes >= size // 2:
                    break
                time.sleep(0.02)
            future.cancel()
            self.cri.pull_image(ref)
            return 2
        finally:
            channel.close()

    def one(
        self,
        scenario: str,
        path: str,
        run: int,
        ref: str,
        image: testbed.OciImage,
        pull: Callable[[], object],
        before: Callable[[], object] | None = None,
    ) -> Row:
        self.clean(ref, image)
        if before is not None:
            before()
        pid = self.mirror.proc.pid if self.mirror and self.mirror.proc else None
        cpu0 = cpu_seconds(pid) if pid else None
        fetched0 = self.mirror_fetched() if pid else None
        mark = self.registry.mark()
        t0 = time.monotonic()
        pull()
        wall = time.monotonic() - t0
        status = self.cri.image_status(ref)
        if status is None or status.id != image.image_id:
            raise RuntimeError(f"{path}: {ref} is not registered after the pull")
        row = Row(scenario, path, run, wall, self.served(mark), image.compressed_size)
        if pid and cpu0 is not None and fetched0 is not None:
            time.sleep(0.3)  # the mirror finishes hashing and checkpointing
            row.mirror_cpu_seconds = cpu_seconds(pid) - cpu0
            row.mirror_fetched_bytes = self.mirror_fetched() - fetched0
        cpu = (
            f"  mirror cpu {row.mirror_cpu_seconds:.2f}s"
            if row.mirror_cpu_seconds is not None
            else ""
        )
        print(
            f"  {scenario} {path:<12} #{run} {wall:7.1f}s  served {row.served_ratio:5.3f}x{cpu}",
            flush=True,
        )
        self.rows.append(row)
        return row

    def watch(
        self, layer_ref: str, size: int, proxy: testbed.ThrottleProxy
    ) -> Callable[[], object]:
        return lambda: self.watch_offsets(layer_ref, size, [0.25, 0.5, 0.75], proxy.cut)

    # -- scenarios -----------------------------------------------------------------------

    def run(self) -> None:  # long: one scenario after another, read top to bottom
        args = self.args
        image = build_layer(args.size, self.work / "cache")
        ref = self.registry.push(image, "bench/model", "1")
        layer = image.layers[0]
        layer_ref = f"layer-{layer.digest}"
        rate = args.rate_mbit * 1e6 / 8
        direct_url = self.registry.url

        def shaped() -> testbed.ThrottleProxy:
            return testbed.ThrottleProxy(
                "127.0.0.1",
                self.registry.port,
                rate_bytes_per_second=rate,
                upstream_buffer_bytes=64 * 1024,
            )

        if "a" in args.scenarios:
            print("(a) clean loopback", flush=True)
            for i in (1, 2):
                self.stop_mirror()
                self.one("a", "direct", i, ref, image, lambda: self.cri.pull_image(ref))
            for i in (1, 2):
                self.start_mirror(direct_url, fresh=True, retain=True)
                self.one("a", "mirror-cold", i, ref, image, lambda: self.cri.pull_image(ref))
            for i in (1, 2):  # the blob stays in the cache from the last cold run
                self.one("a", "mirror-warm", i, ref, image, lambda: self.cri.pull_image(ref))
            self.stop_mirror()

        if "b" in args.scenarios:
            print(f"(b) {args.rate_mbit:g} Mbit/s per connection, 3 cuts", flush=True)
            for i in (1, 2):
                proxy = shaped()
                try:
                    self.stop_mirror()
                    self.containerd.trust_registry(self.registry.host, mirror_url=proxy.url)
                    self.one(
                        "b",
                        "direct",
                        i,
                        ref,
                        image,
                        lambda: self.cri.pull_image(ref),
                        before=self.watch(layer_ref, layer.size, proxy),
                    )
                finally:
                    self.containerd.trust_registry(self.registry.host)
                    proxy.stop()
            for i in (1, 2):
                proxy = shaped()
                try:
                    self.start_mirror(proxy.url, fresh=True, retain=False)
                    self.one(
                        "b",
                        "mirror",
                        i,
                        ref,
                        image,
                        lambda: self.cri.pull_image(ref),
                        before=self.watch(layer_ref, layer.size, proxy),
                    )
                finally:
                    self.stop_mirror()
                    proxy.stop()

        if "c" in args.scenarios:
            print(f"(c) cancel at 50 % and retry, {args.rate_mbit:g} Mbit/s per connection")
            for mode in ("direct", "mirror"):
                for i in (1, 2):
                    proxy = shaped()
                    try:
                        if mode == "direct":
                            self.stop_mirror()
                            self.containerd.trust_registry(self.registry.host, mirror_url=proxy.url)
                        else:
                            self.start_mirror(proxy.url, fresh=True, retain=False)
                        self.one(
                            "c",
                            mode,
                            i,
                            ref,
                            image,
                            lambda: self.cancel_at_half_then_retry(ref, layer_ref, layer.size),
                        )
                    finally:
                        self.stop_mirror()
                        proxy.stop()
        if "p" in args.scenarios:
            print("(p) mlnode pull: its own engine vs through the mirror, vs CRI", flush=True)
            for i in (1, 2):
                self.stop_mirror()
                self.one("p", "direct", i, ref, image, lambda: self.cri.pull_image(ref))
                self.one(
                    "p",
                    "pull-engine",
                    i,
                    ref,
                    image,
                    lambda: self.pull_mlnode(ref, "--via", "engine"),
                )
                self.start_mirror(direct_url, fresh=True, retain=False)
                self.one(
                    "p",
                    "pull-mirror",
                    i,
                    ref,
                    image,
                    lambda: self.pull_mlnode(ref, "--via", "mirror"),
                )
                self.stop_mirror()
        self.clean(ref, image)

    def report(self) -> str:
        lines = [
            f"image: one layer of {self.args.size / MiB:.0f} MiB (random), loopback registry",
            "",
            f"{'scenario':<9}{'path':<13}{'run':>4}{'wall s':>8}{'served':>9}{'cpu s/GiB':>11}",
        ]
        for r in self.rows:
            per_gib = (
                f"{r.mirror_cpu_seconds / (r.mirror_fetched_bytes / GiB):.2f}"
                if r.mirror_cpu_seconds is not None and r.mirror_fetched_bytes
                else ""
            )
            lines.append(
                f"{r.scenario:<9}{r.path:<13}{r.run:>4}{r.wall_seconds:>8.1f}"
                f"{r.served_ratio:>8.3f}x{per_gib:>11}"
            )
        lines.append("")

        def mean(scenario: str, path: str) -> float | None:
            xs = [r.wall_seconds for r in self.rows if r.scenario == scenario and r.path == path]
            return sum(xs) / len(xs) if xs else None

        for scenario, path, goal in (
            ("a", "mirror-cold", "<= 1.10"),
            ("a", "mirror-warm", "<= 1.02"),
            ("b", "mirror", "<= 0.45"),
            ("c", "mirror", "<= 0.60"),
            ("p", "pull-engine", "(today's engine)"),
            ("p", "pull-mirror", "<= 1.10"),
        ):
            base, ours = mean(scenario, "direct"), mean(scenario, path)
            if base and ours:
                lines.append(f"({scenario}) {path} / direct wall: {ours / base:.2f} (goal {goal})")
        served_c = [r.served_ratio for r in self.rows if r.scenario == "c"]
        if served_c:
            by = {
                p: max(r.served_ratio for r in self.rows if r.scenario == "c" and r.path == p)
                for p in ("direct", "mirror")
                if any(r.scenario == "c" and r.path == p for r in self.rows)
            }
            lines.append(
                "(c) registry bytes, worst run: "
                + ", ".join(f"{p} {v:.3f}x" for p, v in by.items())
                + " (goal: mirror <= 1.02x)"
            )
        cpu = [
            r.mirror_cpu_seconds / (r.mirror_fetched_bytes / GiB)
            for r in self.rows
            if r.mirror_cpu_seconds is not None and r.mirror_fetched_bytes
        ]
        if cpu:
            lines.append(
                f"mirror CPU per GiB fetched: {min(cpu):.2f}-{max(cpu):.2f} s (goal <= 1.5 s)"
            )
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=lambda s: int(float(s) * MiB), default=1024 * MiB, help="MiB (1024)"
    )
    parser.add_argument("--rate-mbit", type=float, default=400.0)
    parser.add_argument("--scenarios", default="abcp")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.stall, args.deadline = 0.0, 0.0  # (pull_bench's options; not used here)
    reason = testbed.missing_prerequisites()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlnode-mirror-bench-"))
    bench = MirrorBench(args, work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop_mirror()
        bench.stop()
        print()
        print(bench.report())
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in bench.rows], indent=2))
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    _ = threading  # (the offset watchers of pull_bench run in threads)
    sys.exit(main())
