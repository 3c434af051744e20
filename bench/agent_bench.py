#!/usr/bin/env python3
"""The node agent vs kubelet-style image GC on a small real disk: time for a pod's image to
be ready, and the minimum free space, over a synthetic stream of ML-like jobs.

Not a test: run it by hand, as root, on a machine with containerd, runc, docker-registry and
busybox-static (see bench/README.md). It starts its own registry, and for each mode a fresh
loop-mounted ext4 (``--disk-mib``, default 1536) with a containerd rooted on it
(tests/runtime/testbed.py, testbed_disk.py; nothing of the machine's own runtime is touched).

The images are runnable busybox images with one data layer of random bytes (``--sizes``,
MiB; random data does not compress, so a pull puts about twice the layer on the disk:
the content store's copy and the unpacked snapshot). A job is a pod (sandbox + one
container) that runs ``--job-seconds`` and is removed; jobs run one after another, as one
GPU node takes them. When a job starts its image is "ready" at once if the node holds it
(the kubelet's IfNotPresent: ImageStatus), else after a CRI PullImage (a failed pull is
retried every ``--retry-seconds``, as the kubelet backs off, until ``--give-up-seconds``).

  agent    ``mlnode agent`` runs: its warm set is the next job's image (rewritten and
           SIGHUP'd when a job starts, so it is pulled while the job runs), its headroom
           target ``--target-mib`` (one biggest image's footprint + a reserve), no mirror
  kubelet  no agent; ``mlnode gc --policy kubelet`` (high 85 %, low 80 %, minimum age
           scaled) every ``--gc-seconds`` (the kubelet's 5 minutes, scaled down)

Reported per job: how its image became ready and in how long; per mode: ready time (mean,
median, max), failed pulls, the minimum statvfs free space (sampled every 0.1 s); and the
ratios agent / kubelet. ``--json FILE`` writes the raw rows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import testbed  # noqa: E402
import testbed_disk  # noqa: E402
from testbed_agent import AgentProcess, agent_config  # noqa: E402

from mlnode.errors import MlnodeError  # noqa: E402
from mlnode.runtime.cri import CriClient  # noqa: E402

MiB = 1024 * 1024
DEFAULT_SIZES = "150,250,200,180,220,160"
DEFAULT_JOBS = "0,1,2,0,3,4,1,5,2,3"


@dataclass
class Job:
    mode: str
    index: int
    image: int
    size_mib: int
    how: str  # present | pulled | pulled-after-N-failures | failed
    ready_seconds: float | None
    failures: int
    errors: list[str]
    min_free_mib: float


class FreeSampler(threading.Thread):
    def __init__(self, mount: Path) -> None:
        super().__init__(daemon=True, name="free-sampler")
        self.mount = mount
        self.minimum = self.free()
        self.window_minimum = self.minimum
        self._halt = threading.Event()

    def free(self) -> int:
        st = os.statvfs(self.mount)
        return st.f_bavail * st.f_frsize

    def run(self) -> None:
        while not self._halt.wait(0.1):
            f = self.free()
            self.minimum = min(self.minimum, f)
            self.window_minimum = min(self.window_minimum, f)

    def window(self) -> int:
        """The minimum since the last call (per job)."""
        m, self.window_minimum = self.window_minimum, self.free()
        return m

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class KubeletGc(threading.Thread):
    """``mlnode gc --policy kubelet`` every ``period`` seconds (the kubelet's GC loop)."""

    def __init__(self, ctr: testbed.Containerd, state: Path, period: float, min_age: str) -> None:
        super().__init__(daemon=True, name="kubelet-gc")
        self.ctr, self.state, self.period, self.min_age = ctr, state, period, min_age
        self.runs: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            argv = [
                *(sys.executable, "-c", "from mlnode.cli.app import main; main()"),
                *("gc", "--policy", "kubelet", "--output", "json"),
                *("--runtime-endpoint", self.ctr.endpoint, "--image-fs", str(self.ctr.root)),
                *("--state-file", str(self.state), "--minimum-age", self.min_age),
            ]
            r = subprocess.run(argv, capture_output=True, text=True, check=False)
            try:
                doc = json.loads(r.stdout)
            except ValueError:
                doc = {"error": r.stderr.strip()[-300:]}
            self.runs.append(doc)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)


def build_images(registry: testbed.Registry, sizes: list[int]) -> list[str]:
    busybox = testbed.busybox_binary()
    if busybox is None:
        sys.exit("needs /bin/busybox (apt: busybox-static)")
    pause = testbed.build_busybox_image(busybox)
    registry.push(pause, "mlnode/pause", "bench")
    refs = []
    for i, size in enumerate(sizes):
        t = time.monotonic()
        image = testbed.build_busybox_image(busybox, [size * MiB], seed=7000 + i)
        refs.append(registry.push(image, f"mlnode/bench-job-{i}", "1"))
        print(f"image {i}: {size} MiB built and pushed in {time.monotonic() - t:.1f} s", flush=True)
    return refs


def ready(
    cri: CriClient, ref: str, args: argparse.Namespace
) -> tuple[str, float | None, list[str]]:
    """Make the job's image ready as the kubelet would (IfNotPresent, retries)."""
    started = time.monotonic()
    if cri.image_status(ref) is not None:
        return "present", time.monotonic() - started, []
    errors: list[str] = []
    while time.monotonic() - started < args.give_up_seconds:
        try:
            cri.pull_image(ref, timeout_seconds=600)
            return "pulled", time.monotonic() - started, errors
        except MlnodeError as e:
            errors.append(str(e)[-160:])
            time.sleep(args.retry_seconds)
    return "failed", None, errors


def start_pod(
    cri: CriClient, pods: testbed.Pods, ref: str, args: argparse.Namespace
) -> tuple[str, float | None, list[str]]:
    """:func:`ready`, then the pod; an image removed in between (a GC's race with the
    kubelet, which also checks then creates) is one more failure, and it starts again."""
    started = time.monotonic()
    errors: list[str] = []
    while time.monotonic() - started < args.give_up_seconds:
        attempt = time.monotonic()
        how, seconds, failed = ready(cri, ref, args)
        errors += failed
        if seconds is None:
            break
        ready_at = attempt - started + seconds  # from the job's start: the image is there
        try:
            pods.run(ref)
        except MlnodeError as e:
            errors.append(f"image gone before its container was created: {str(e)[-120:]}")
            continue
        return (f"{how}-after-{len(errors)}-failures" if errors else how), ready_at, errors
    return "failed", None, errors


def start_agent(
    args: argparse.Namespace, work: Path, ctr: testbed.Containerd, first_image: str
) -> AgentProcess:
    cfg = agent_config(
        work / "agent",
        runtime_endpoint=ctr.endpoint,
        image_fs=ctr.root,
        interval_seconds=1.0,
        warm=[first_image],
        headroom={
            "target_bytes": args.target_mib * MiB,
            "reserve_bytes": args.reserve_mib * MiB,
            "kubelet_high_threshold_percent": 85,
        },
        gc={"minimum_age_seconds": args.min_age_seconds},
    )
    return AgentProcess(work / "agent", cfg).start()


def set_warm(agent: AgentProcess, image: str) -> None:
    """The scheduler's queue: the next job's image is the warm set (SIGHUP)."""
    doc = dict(agent.config)
    doc["warm"] = {**doc["warm"], "images": [image]}
    agent.write_config(doc)
    agent.signal(signal.SIGHUP)


def run_jobs(
    mode: str,
    args: argparse.Namespace,
    cri: CriClient,
    sampler: FreeSampler,
    agent: AgentProcess | None,
    refs: list[str],
) -> list[Job]:
    sizes = [int(s) for s in args.sizes.split(",")]
    jobs = [int(j) for j in args.jobs.split(",")]
    rows: list[Job] = []
    time.sleep(args.job_seconds)  # the node idles one job's time before the first
    sampler.window()
    with testbed.Pods(cri) as pods:
        for n, image in enumerate(jobs):
            how, seconds, errors = start_pod(cri, pods, refs[image], args)
            if agent is not None:
                set_warm(agent, refs[jobs[n + 1] if n + 1 < len(jobs) else image])
            if seconds is not None:
                time.sleep(args.job_seconds)
            pods.close()
            low = sampler.window() / MiB
            rows.append(Job(mode, n, image, sizes[image], how, seconds, len(errors), errors, low))
            took = "-" if seconds is None else f"{seconds:.2f}"
            print(
                f"{mode:8} job {n} image {image} ({sizes[image]} MiB): {how} in {took} s;"
                f" min free {low:.0f} MiB" + (f"; {errors[-1]}" if errors else ""),
                flush=True,
            )
    return rows


def run_mode(
    mode: str, args: argparse.Namespace, work: Path, registry: testbed.Registry, refs: list[str]
) -> tuple[list[Job], int, dict[str, Any]]:
    first = refs[int(args.jobs.split(",")[0])]
    extra: dict[str, Any] = {}
    sandbox = f"{registry.host}/mlnode/pause:bench"
    with (
        testbed_disk.small_disk(work / f"disk-{mode}", args.disk_mib) as mount,
        testbed_disk.containerd_on(mount, work / f"ctr-{mode}", sandbox_image=sandbox) as ctr,
        CriClient(ctr.socket) as cri,
    ):
        ctr.trust_registry(registry.host)
        cri.pull_image(sandbox)
        sampler = FreeSampler(mount)
        sampler.start()
        agent: AgentProcess | None = None
        gc: KubeletGc | None = None
        try:
            if mode == "agent":
                agent = start_agent(args, work, ctr, first)
            else:
                state = work / "kubelet-gc-state.json"
                gc = KubeletGc(ctr, state, args.gc_seconds, f"{args.min_age_seconds:g}s")
                gc.start()
            rows = run_jobs(mode, args, cri, sampler, agent, refs)
            if agent is not None:
                extra["agent_gc_runs"] = agent.status()["gc"]["runs"]
        finally:
            sampler.stop()
            if agent is not None:
                agent.stop()
            if gc is not None:
                gc.stop()
                extra["kubelet_gc_runs"] = len(gc.runs)
                extra["kubelet_gc_errors"] = [r["error"] for r in gc.runs if "error" in r][:3]
    return rows, sampler.minimum, extra


def summary(rows: list[Job]) -> dict[str, Any]:
    ok = [r.ready_seconds for r in rows if r.ready_seconds is not None]
    return {
        "jobs": len(rows),
        "present": sum(r.how.startswith("present") for r in rows),
        "pulled": sum(r.how.startswith("pulled") for r in rows),
        "failed_pulls": sum(r.failures for r in rows),
        "never_ready": sum(r.ready_seconds is None for r in rows),
        "ready_mean_s": statistics.mean(ok) if ok else None,
        "ready_median_s": statistics.median(ok) if ok else None,
        "ready_max_s": max(ok) if ok else None,
    }


def report(results: dict[str, Any], all_rows: list[Job]) -> None:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    print()
    print(
        f"{'mode':8} {'jobs':>4} {'warm':>4} {'pulled':>6} {'failed pulls':>12} {'never':>5}"
        f" {'ready mean s':>12} {'median s':>8} {'max s':>7} {'min free MiB':>12}"
    )
    for mode, r in results.items():
        print(
            f"{mode:8} {r['jobs']:>4} {r['present']:>4} {r['pulled']:>6} {r['failed_pulls']:>12}"
            f" {r['never_ready']:>5} {f(r['ready_mean_s']):>12} {f(r['ready_median_s']):>8}"
            f" {f(r['ready_max_s']):>7} {r['min_free_mib']:>12.0f}"
        )
    if "agent" in results and "kubelet" in results:
        a, k = results["agent"], results["kubelet"]
        if a["ready_mean_s"] and k["ready_mean_s"]:
            print(f"ready mean, agent / kubelet: {a['ready_mean_s'] / k['ready_mean_s']:.4f}")
        ratio = f"{a['min_free_mib'] / k['min_free_mib']:.2f}" if k["min_free_mib"] else "n/a"
        print(
            f"min free, agent / kubelet: {ratio} ({a['min_free_mib']:.0f} vs"
            f" {k['min_free_mib']:.0f} MiB)"
        )
    warm = [r.ready_seconds for r in all_rows if r.how == "present" and r.ready_seconds]
    cold = [r.ready_seconds for r in all_rows if r.how == "pulled" and r.ready_seconds]
    if warm and cold:
        w, c = statistics.mean(warm), statistics.mean(cold)
        print(
            f"image ready, warm (present) mean {w:.4f} s vs cold (CRI pull, no failure) mean"
            f" {c:.2f} s: cold / warm {c / w:.0f}x"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="image data layers, MiB")
    p.add_argument("--jobs", default=DEFAULT_JOBS, help="the job stream: image indexes")
    p.add_argument("--disk-mib", type=int, default=1536)
    p.add_argument("--job-seconds", type=float, default=10.0)
    p.add_argument("--gc-seconds", type=float, default=10.0, help="kubelet GC period (scaled)")
    p.add_argument("--min-age-seconds", type=float, default=4.0, help="GC minimum age (scaled)")
    p.add_argument("--target-mib", type=int, default=564, help="agent headroom target")
    p.add_argument("--reserve-mib", type=int, default=64)
    p.add_argument("--retry-seconds", type=float, default=5.0)
    p.add_argument("--give-up-seconds", type=float, default=60.0)
    p.add_argument("--modes", default="agent,kubelet")
    p.add_argument("--json", type=Path, help="write the raw rows and summaries here")
    p.add_argument("--report", type=Path, metavar="JSON", help="print the report of a --json")
    args = p.parse_args()
    if args.report:
        doc = json.loads(args.report.read_text())
        report(doc["results"], [Job(**r) for r in doc["jobs"]])
        return
    reason = testbed.missing_prerequisites() or testbed_disk.missing_disk_prerequisites()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory(prefix="mlnode-agent-bench-") as tmp:
        work = Path(tmp)
        registry = testbed.Registry(work / "registry")
        registry.start()
        try:
            refs = build_images(registry, [int(s) for s in args.sizes.split(",")])
            results: dict[str, Any] = {}
            all_rows: list[Job] = []
            for mode in args.modes.split(","):
                rows, minimum, extra = run_mode(mode, args, work, registry, refs)
                all_rows += rows
                results[mode] = {**summary(rows), "min_free_mib": minimum / MiB, **extra}
        finally:
            registry.stop()
    report(results, all_rows)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "results": results,
                    "jobs": [asdict(r) for r in all_rows],
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
