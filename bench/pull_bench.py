#!/usr/bin/env python3
"""Side-by-side pull benchmark: CRI PullImage vs ``ctr images pull`` vs ``mlnode pull``.

Not a test: run it by hand, as root, on a machine with containerd, runc and
docker-registry (see bench/README.md). It starts its own registry and containerd on
loopback (tests/runtime/testbed.py), builds one single-layer image of random bytes
(``--size``, default 1 GiB; the layer is cached under the work dir for the run), and
measures three scenarios, removing the image and its content before every pull:

  a  clean loopback
  b  behind a ThrottleProxy (``--rate``, default 400 Mbit/s per connection) with three
     connection cuts at 25/50/75 % of the layer
  c  behind the same proxy with a stall longer than the progress deadline at 40 %;
     the CRI baseline is cancelled after ``--deadline`` seconds without progress and
     retried, as containerd's ``image_pull_progress_timeout`` + the kubelet's retry do

Reports wall time and the bytes the registry served (its access log) per pull, and the
ratios mlnode / CRI. ``--json FILE`` also writes the raw results.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import grpc  # noqa: E402
import testbed  # noqa: E402

from mlnode.runtime._proto import cri_runtime_v1_pb2 as cri_pb  # noqa: E402
from mlnode.runtime.containerd import ContainerdClient  # noqa: E402
from mlnode.runtime.cri import CriClient  # noqa: E402

MiB = 1024 * 1024


@dataclass
class Result:
    scenario: str
    tool: str
    wall_seconds: float
    served_bytes: int
    image_bytes: int
    attempts: int = 1
    note: str = ""

    @property
    def served_ratio(self) -> float:
        return self.served_bytes / self.image_bytes


def build_layer(size: int, cache: Path) -> testbed.OciImage:
    """One random file in a tar, gzip level 0 (incompressible anyway); cached on disk."""
    cache.mkdir(parents=True, exist_ok=True)
    layer_path, config_path = cache / "layer.tar.gz", cache / "config.json"
    if not layer_path.exists():
        t0 = time.monotonic()
        payload = os.urandom(size)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("model.bin")
            info.size = size
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
        del payload
        raw = buf.getvalue()
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        layer_path.write_bytes(gzip.compress(raw, compresslevel=0, mtime=0))
        del raw, buf
        config_path.write_text(
            json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {"Cmd": ["/bin/sh"]},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                },
                sort_keys=True,
            )
        )
        print(f"built a {size / MiB:.0f} MiB layer in {time.monotonic() - t0:.1f}s", flush=True)
    layer = testbed.Blob(testbed.OCI_LAYER_GZIP, layer_path.read_bytes())
    config = testbed.Blob(testbed.OCI_CONFIG, config_path.read_bytes())
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


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.registry = testbed.Registry(work / "registry", unix_socket=False)
        self.containerd = testbed.Containerd(work / "containerd")
        self.results: list[Result] = []

    def start(self) -> None:
        self.registry.start()
        self.containerd.write_config()
        self.containerd.trust_registry(self.registry.host)
        self.containerd.start()
        self.cri = CriClient(self.containerd.socket)
        self.ctrd = ContainerdClient(self.containerd.socket)

    def stop(self) -> None:
        for closer in (getattr(self, "cri", None), getattr(self, "ctrd", None)):
            if closer is not None:
                closer.close()
        self.containerd.stop()
        self.registry.stop()

    # -- helpers ---------------------------------------------------------------------

    def clean(self, ref: str, image: testbed.OciImage) -> None:
        """Remove the image, its content, leftover ingests and mlnode leases."""
        self.cri.remove_image(ref)
        for img in self.ctrd.list_images():
            if img.name.startswith(ref.rsplit(":", 1)[0]):
                self.ctrd.delete_image(img.name, sync=True)
        for lease in self.ctrd.list_leases():
            if lease.id.startswith("mlnode-pull-"):
                self.ctrd.delete_lease(lease.id, sync=True)
        for s in self.ctrd.list_statuses():
            self.ctrd.abort(s.ref)
        for blob in (*image.layers, image.config):
            if self.ctrd.has_content(blob.digest):
                self.ctrd.delete_content(blob.digest)
        deadline = time.monotonic() + 30
        while self.ctrd.has_content(image.layers[0].digest) and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run(["sync"], check=False)

    def served(self, mark: int) -> int:
        return sum(
            r.bytes
            for r in self.registry.records_since(mark)
            if r.method == "GET" and ("/blobs/" in r.path or "/manifests/" in r.path)
        )

    def watch_offsets(
        self, layer_ref: str, size: int, fractions: list[float], action: Callable[[], object]
    ) -> threading.Thread:
        """Call ``action`` each time the ingest passes the next fraction of ``size``."""

        def loop() -> None:
            pending = list(fractions)
            deadline = time.monotonic() + 900
            while pending and time.monotonic() < deadline:
                s = self.ctrd.status(layer_ref)
                if s is not None and s.offset_bytes >= pending[0] * size:
                    pending.pop(0)
                    action()
                time.sleep(0.05)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t

    def pull_cri(self, ref: str) -> int:
        self.cri.pull_image(ref)
        return 1

    def pull_cri_with_progress_timeout(self, ref: str, layer_ref: str, deadline: float) -> int:
        """CRI PullImage, cancelled after ``deadline`` s without ingest progress and
        retried at once (containerd's progress timeout + the kubelet retrying)."""
        channel = grpc.insecure_channel(f"unix://{self.containerd.socket}")
        call = channel.unary_unary(
            "/runtime.v1.ImageService/PullImage",
            request_serializer=cri_pb.PullImageRequest.SerializeToString,
            response_deserializer=cri_pb.PullImageResponse.FromString,
        )
        attempts = 0
        try:
            while True:
                attempts += 1
                future = call.future(cri_pb.PullImageRequest(image=cri_pb.ImageSpec(image=ref)))
                last_offset, last_change, seen = -1, time.monotonic(), False
                cancelled = False
                while not future.done():
                    s = self.ctrd.status(layer_ref)
                    if s is None and seen:
                        break  # downloaded: unpacking, which the timeout does not count
                    offset = s.offset_bytes if s else 0
                    seen = seen or s is not None
                    if offset != last_offset:
                        last_offset, last_change = offset, time.monotonic()
                    elif time.monotonic() - last_change > deadline:
                        future.cancel()
                        cancelled = True
                        break
                    time.sleep(0.1)
                if not cancelled:
                    future.result()
                    return attempts
                time.sleep(0.5)
        finally:
            channel.close()

    def pull_ctr(self, ref: str) -> int:
        subprocess.run(
            [
                "ctr",
                "-a",
                str(self.containerd.socket),
                "-n",
                "k8s.io",
                "images",
                "pull",
                "--hosts-dir",
                str(self.containerd.certs_d),
                ref,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return 1

    def pull_mlnode(self, ref: str, *extra: str) -> int:
        p = subprocess.run(
            [
                sys.executable,
                "-c",
                "from mlnode.cli.app import main; main()",
                "pull",
                ref,
                "--runtime-endpoint",
                str(self.containerd.socket),
                "--hosts-dir",
                str(self.containerd.certs_d),
                "--no-gc",
                "--output",
                "json",
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            raise RuntimeError(f"mlnode pull failed ({p.returncode}): {p.stderr.strip()}")
        done = json.loads(p.stdout.strip().splitlines()[-1])
        return 1 + int(done.get("retries", 0))

    def measure(
        self,
        scenario: str,
        tool: str,
        ref: str,
        image: testbed.OciImage,
        pull: Callable[[], int],
        note: str = "",
        before: Callable[[], object] | None = None,
        after: Callable[[], object] | None = None,
    ) -> Result:
        self.clean(ref, image)
        if before is not None:
            before()
        mark = self.registry.mark()
        t0 = time.monotonic()
        attempts = pull()
        wall = time.monotonic() - t0
        if after is not None:
            after()
        status = self.cri.image_status(ref)
        if status is None or status.id != image.image_id:
            raise RuntimeError(f"{tool}: {ref} is not registered after the pull")
        r = Result(scenario, tool, wall, self.served(mark), image.compressed_size, attempts, note)
        print(
            f"  {scenario} {tool:<14} {wall:7.1f}s  served {r.served_ratio:5.3f}x"
            f"  attempts/retries {attempts}  {note}",
            flush=True,
        )
        self.results.append(r)
        return r

    # -- scenarios -------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        image = build_layer(args.size, self.work / "cache")
        ref = self.registry.push(image, "bench/model", "1")
        layer = image.layers[0]
        layer_ref = f"layer-{layer.digest}"
        rate = args.rate_mbit * 1e6 / 8
        tools: dict[str, Callable[[], int]] = {
            "cri": lambda: self.pull_cri(ref),
            "ctr": lambda: self.pull_ctr(ref),
            "mlnode": lambda: self.pull_mlnode(ref),
        }
        if "a" in args.scenarios:
            print("(a) clean loopback", flush=True)
            self.containerd.trust_registry(self.registry.host)
            for name, fn in tools.items():
                self.measure("a", name, ref, image, fn)
            self.measure(
                "a", "mlnode -c1", ref, image, lambda: self.pull_mlnode(ref, "--connections", "1")
            )

        if "b" in args.scenarios:
            print(f"(b) {args.rate_mbit} Mbit/s per connection, 3 cuts", flush=True)
            single: Callable[[], int] = lambda: self.pull_mlnode(ref, "--connections", "1")  # noqa: E731
            for name, fn in [*tools.items(), ("mlnode -c1", single)]:
                proxy = testbed.ThrottleProxy(
                    "127.0.0.1",
                    self.registry.port,
                    rate_bytes_per_second=rate,
                    upstream_buffer_bytes=64 * 1024,
                )
                self.containerd.trust_registry(self.registry.host, mirror_url=proxy.url)
                cuts: list[int] = []
                watcher: list[threading.Thread] = []
                try:
                    self.measure(
                        "b",
                        name,
                        ref,
                        image,
                        fn,
                        before=lambda p=proxy, c=cuts, w=watcher: w.append(
                            self.watch_offsets(
                                layer_ref, layer.size, [0.25, 0.5, 0.75], lambda: c.append(p.cut())
                            )
                        ),
                        note="",
                    )
                    self.results[-1].note = f"cuts={len(cuts)}"
                finally:
                    self.containerd.trust_registry(self.registry.host)
                    proxy.stop()

        if "c" in args.scenarios:
            print(
                f"(c) stall of {args.stall:g}s at 40 % (deadline {args.deadline:g}s), "
                f"{args.rate_mbit} Mbit/s per connection",
                flush=True,
            )
            variants: list[tuple[str, Callable[[], int]]] = [
                (
                    "cri+timeout",
                    lambda: self.pull_cri_with_progress_timeout(ref, layer_ref, args.deadline),
                ),
                (
                    "mlnode",
                    lambda: self.pull_mlnode(ref, "--stall-timeout", f"{args.deadline:g}s"),
                ),
            ]
            for name, fn in variants:
                proxy = testbed.ThrottleProxy(
                    "127.0.0.1",
                    self.registry.port,
                    rate_bytes_per_second=rate,
                    upstream_buffer_bytes=64 * 1024,
                )
                self.containerd.trust_registry(self.registry.host, mirror_url=proxy.url)
                try:
                    self.measure(
                        "c",
                        name,
                        ref,
                        image,
                        fn,
                        before=lambda p=proxy: self.watch_offsets(
                            layer_ref, layer.size, [0.4], lambda: p.stall(args.stall)
                        ),
                    )
                finally:
                    self.containerd.trust_registry(self.registry.host)
                    proxy.stop()
        self.clean(ref, image)

    def report(self) -> str:
        lines = [
            f"image: one layer of {self.args.size / MiB:.0f} MiB (random), loopback registry",
            "",
            f"{'scenario':<9}{'tool':<14}{'wall s':>8}{'served':>10}{'tries':>7}  note",
        ]
        for r in self.results:
            lines.append(
                f"{r.scenario:<9}{r.tool:<14}{r.wall_seconds:>8.1f}{r.served_ratio:>9.3f}x"
                f"{r.attempts:>7}  {r.note}"
            )
        lines.append("")
        for scenario in "abc":
            rows = {r.tool: r for r in self.results if r.scenario == scenario}
            base = rows.get("cri") or rows.get("cri+timeout")
            ml = rows.get("mlnode")
            if base and ml:
                wall = ml.wall_seconds / base.wall_seconds
                served = ml.served_bytes / base.served_bytes
                lines.append(
                    f"({scenario}) mlnode / {base.tool}: wall {wall:.2f}, bytes served {served:.2f}"
                )
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size",
        type=lambda s: int(float(s) * MiB),
        default=1024 * MiB,
        help="layer size in MiB (default 1024)",
    )
    parser.add_argument("--rate-mbit", type=float, default=400.0)
    parser.add_argument("--stall", type=float, default=20.0, help="stall length, seconds")
    parser.add_argument("--deadline", type=float, default=8.0, help="progress deadline, seconds")
    parser.add_argument("--scenarios", default="abc")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    reason = testbed.missing_prerequisites()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlnode-pull-bench-"))
    bench = Bench(args, work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop()
        print()
        print(bench.report())
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in bench.results], indent=2))
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
