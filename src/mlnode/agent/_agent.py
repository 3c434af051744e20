"""The agent's control loop, one synchronous pass at a time (:meth:`Agent.tick`), over
ports: an image service (CRI), a pull-status source (containerd), a filesystem meter, the
node mirror's cache, and optionally the Kubernetes API. The async service
(:mod:`mlnode.agent._service`) runs the passes and the warm pulls in worker threads.

Each pass is level-triggered (it looks at what is, not at what changed):

1. measure the image filesystem and list the images (recording last-used times, which
   survive restarts: :mod:`mlnode.ops.image_state`);
2. the **headroom target**: ``headroom.target_bytes``, or (auto) the largest image seen or
   in the warm set x ``concurrent_pulls`` + ``reserve_bytes``; never less than what keeps
   usage a point under the kubelet's ``imageGCHighThresholdPercent``, so the kubelet's GC
   (and imagefs eviction at the same point) stays a backstop;
3. below the target: the ml GC (:func:`mlnode.ops.gc_session.run_gc`): the mirror cache
   first, then the fewest least-recently-used images that reach the target; never an image
   in use, pinned, being pulled, in the warm set or matching ``gc.keep``;
4. the **warm set**: which desired images are missing, which to pull now.

The hosted mirror asks :meth:`Agent.ensure_room` before it fetches a blob (the size known
before the bytes flow), which runs the same GC for that blob and wakes the loop.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlnode.agent._config import AgentConfig, WarmImage, parse_warm_images
from mlnode.agent._metrics import AgentMetrics, image_size_label
from mlnode.agent._warm import WarmSet
from mlnode.blobcache import BlobCache
from mlnode.errors import InsufficientSpace, InvalidValue, MlnodeError
from mlnode.gc import GcPolicy, PolicyName
from mlnode.ops.fileio import atomic_write
from mlnode.ops.gc_runtime import CriGcRuntime, GcRun
from mlnode.ops.gc_session import keep_sandbox_image, room_policy, run_gc
from mlnode.ops.space import ImageFsSpaceKeeper
from mlnode.ports import ClusterApi, FilesystemMeter, ImageService, PullStatusSource
from mlnode.runtime.fs import FilesystemUsage
from mlnode.units import format_bytes

__all__ = ["Agent", "EventSink", "GcOutcome", "headroom_target"]

log = logging.getLogger("mlnode.agent")

#: posts an Event: (reason, message, warning)
EventSink = Callable[[str, str, bool], None]

_LABELS_EVERY_SECONDS = 60.0


def headroom_target(
    cfg: AgentConfig, largest_image_bytes: int, capacity_bytes: int
) -> tuple[int, str]:
    """The free bytes to keep on the image filesystem, and how it was chosen."""
    h = cfg.headroom
    if h.target_bytes is not None:
        target, why = h.target_bytes, "configured"
    else:
        target = largest_image_bytes * h.concurrent_pulls + h.reserve_bytes
        why = (
            f"auto: largest image {format_bytes(largest_image_bytes)} x "
            f"{h.concurrent_pulls} + reserve {format_bytes(h.reserve_bytes)}"
        )
    # the kubelet acts at usage >= high: keep usage a point below it
    below = capacity_bytes * (100 - (h.kubelet_high_threshold_percent - 1)) // 100
    if below > target:
        return below, (
            f"{format_bytes(below)} keeps usage under the kubelet's "
            f"{h.kubelet_high_threshold_percent} % (larger than {why})"
        )
    return target, why


@dataclass(frozen=True)
class GcOutcome:
    trigger: str
    at_unix: float
    target_bytes: int
    available_before_bytes: int
    available_after_bytes: int | None
    freed_bytes: int
    removed: tuple[tuple[str, int, str], ...]  # (name, size_bytes, reason)
    satisfied: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "at_unix": round(self.at_unix, 3),
            "target_bytes": self.target_bytes,
            "available_before_bytes": self.available_before_bytes,
            "available_after_bytes": self.available_after_bytes,
            "freed_bytes": self.freed_bytes,
            "removed": [{"name": n, "size_bytes": s, "reason": r} for n, s, r in self.removed],
            "satisfied": self.satisfied,
        }


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        cri: ImageService,
        containerd: PullStatusSource | None,
        meter: FilesystemMeter,
        image_fs: Path,
        cache: BlobCache | None = None,
        cluster: ClusterApi | None = None,
        events: EventSink | None = None,
        metrics: AgentMetrics | None = None,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        self.cri = cri
        self.containerd = containerd
        self.meter = meter
        self.image_fs = image_fs
        self.cache = cache
        self.cluster = cluster
        self.events: EventSink = events or (lambda reason, message, warning: None)
        self.metrics = metrics or AgentMetrics()
        self.wall = wall
        self.runtime = CriGcRuntime(cri, containerd, image_fs, measure=meter)
        self.warm = WarmSet(
            concurrency=cfg.warm_concurrency,
            backoff_seconds=cfg.warm_backoff_seconds,
            backoff_max_seconds=cfg.warm_backoff_max_seconds,
            rand=rand,
        )
        self.labels: dict[str, str] = dict(cfg.node_labels)
        self.labels_source = "config"
        self.config_map_images: tuple[WarmImage, ...] = ()
        self.kube_error: str | None = None
        self._labels_at = -1e18
        self.ready_reason: str | None = "no pass yet"
        self.fs: FilesystemUsage | None = None
        self.target: tuple[int, str] = (0, "")
        self.largest_image_bytes = 0
        self.last_gc: GcOutcome | None = None
        self.gc_runs = 0
        self.in_flight: dict[str, int] = {}
        self._gc_lock = threading.Lock()  # one GC at a time: the loop's and the mirror's
        self._warm_lock = threading.Lock()
        self.wake: Callable[[], None] = lambda: None
        self._load_warm_state()

    # --- configuration -------------------------------------------------------------------

    def reconfigure(self, cfg: AgentConfig) -> None:
        """A reloaded config (SIGHUP): the warm set, headroom and GC settings take effect at
        the next pass; listen address, mirror and runtime need a restart."""
        self.cfg = cfg
        with self._warm_lock:
            self.warm.configure(
                concurrency=cfg.warm_concurrency,
                backoff_seconds=cfg.warm_backoff_seconds,
                backoff_max_seconds=cfg.warm_backoff_max_seconds,
            )
        if self.labels_source == "config":
            self.labels = dict(cfg.node_labels)
        self._labels_at = -1e18

    def warm_images(self) -> tuple[WarmImage, ...]:
        return self.cfg.warm_images + self.config_map_images

    def desired(self) -> list[str]:
        """The warm images this node should hold (their node selectors match its labels)."""
        return list(dict.fromkeys(w.image for w in self.warm_images() if w.matches(self.labels)))

    def keep_patterns(self) -> tuple[str, ...]:
        """Never removed by the agent's GC: ``gc.keep`` and the warm set (desired or
        being pulled)."""
        with self._warm_lock:
            warm = tuple(self.warm.statuses)
        return (*self.cfg.gc_keep, *self.desired(), *warm)

    def refresh_cluster(self) -> None:
        """Node labels and the warm ConfigMap from the API, at most once a minute; when
        the API is down the last answer (or the config's labels) stays."""
        if self.cluster is None:
            return
        now = time.monotonic()
        if now - self._labels_at < _LABELS_EVERY_SECONDS:
            return
        self._labels_at = now
        try:
            self.labels = dict(self.cluster.node_labels(self.cfg.node_name))
            self.labels_source = "node"
            if self.cfg.warm_config_map is not None:
                ns, name = self.cfg.warm_config_map
                data = self.cluster.config_map(ns, name)
                self.config_map_images = _config_map_images(data, f"configmap {ns}/{name}")
            self.kube_error = None
        except MlnodeError as e:
            self.kube_error = str(e)
            self.metrics.errors.labels("kube").inc()
            log.warning("kubernetes API: %s (keeping the last labels and warm set)", e)

    # --- one pass ------------------------------------------------------------------------

    def tick(self, trigger: str = "interval") -> list[str]:
        """One level-triggered pass; returns the warm images to start pulling now."""
        self.metrics.ticks.inc()
        self.refresh_cluster()
        try:
            fs = self.meter()
            images = self.cri.list_images()
            self._observe_pulls()
        except MlnodeError as e:
            self.ready_reason = f"runtime: {e}"
            self.metrics.errors.labels("runtime").inc()
            self.metrics.ready.set(0)
            log.warning("pass skipped: %s", e)
            return []
        self.ready_reason = None
        self.metrics.ready.set(1)
        self._set_fs(fs)
        self.largest_image_bytes = max([self.largest_image_bytes, *(i.size_bytes for i in images)])
        self.target = headroom_target(self.cfg, self.largest_image_bytes, fs.capacity_bytes)
        self.metrics.headroom_target.set(self.target[0])
        if fs.available_bytes < self.target[0]:
            self.gc(trigger, self.target[0])
        present = {n for i in images for n in i.names}
        with self._warm_lock:
            start = self.warm.reconcile(self.desired(), present, self.wall())
            self._warm_metrics()
        if start:
            self._save_warm_state()
        return start

    def _set_fs(self, fs: FilesystemUsage) -> None:
        self.fs = fs
        self.metrics.fs_available.set(fs.available_bytes)
        self.metrics.fs_used.set(fs.used_bytes)
        self.metrics.fs_capacity.set(fs.capacity_bytes)

    def _observe_pulls(self) -> None:
        if self.containerd is None:
            return
        statuses = self.containerd.list_statuses()
        self.in_flight = {s.ref: s.offset_bytes for s in statuses}
        self.metrics.pulls_in_flight.set(len(statuses))
        self.metrics.pull_bytes_in_flight.set(sum(s.offset_bytes for s in statuses))

    def _warm_metrics(self) -> None:
        counts = self.warm.counts()
        self.metrics.warm_images.labels("desired").set(sum(counts.values()))
        for phase, n in counts.items():
            self.metrics.warm_images.labels(phase).set(n)

    # --- GC ------------------------------------------------------------------------------

    def _policy(self, target_bytes: int) -> GcPolicy:
        return GcPolicy(
            high_threshold_percent=100,
            low_threshold_percent=99,
            minimum_age_seconds=self.cfg.gc_minimum_age_seconds,
            headroom_bytes=target_bytes,
            keep_patterns=self.keep_patterns(),
        )

    def gc(self, trigger: str, target_bytes: int) -> GcOutcome | None:
        """Run the ml GC aimed at ``target_bytes`` free; metrics, log and Events."""
        with self._gc_lock:
            try:
                policy = keep_sandbox_image(PolicyName.ML, self._policy(target_bytes), self.runtime)
                live = run_gc(
                    self.runtime,
                    PolicyName.ML,
                    policy,
                    now=datetime.now(UTC),
                    state_file=self.cfg.state_file(),
                    dry_run=False,
                    cache=self.cache,
                )
            except MlnodeError as e:
                self.metrics.errors.labels("gc").inc()
                log.warning("GC (%s) failed: %s", trigger, e)
                return None
            outcome = self._record_gc(
                trigger, target_bytes, live.collected.filesystem.available_bytes, live.run
            )
        return outcome

    def _record_gc(self, trigger: str, target: int, before: int, run: GcRun) -> GcOutcome:
        removed = tuple(
            (r.names[0] if r.names else r.id, r.size_bytes, str(r.reason)) for r in run.removed
        )
        outcome = GcOutcome(
            trigger=trigger,
            at_unix=self.wall(),
            target_bytes=target,
            available_before_bytes=before,
            available_after_bytes=run.available_after_bytes,
            freed_bytes=run.bytes_freed,
            removed=removed,
            satisfied=run.satisfied,
        )
        self.last_gc = outcome
        self.gc_runs += 1
        result = "freed" if removed else ("nothing-to-do" if run.satisfied else "short")
        if removed and not run.satisfied:
            result = "short"
        self.metrics.gc_runs.labels(trigger, result).inc()
        for _, size, reason in removed:
            self.metrics.gc_freed_bytes.labels(reason).inc(size)
            self.metrics.gc_removed.labels(reason).inc()
        after = run.available_after_bytes
        if removed:
            names = ", ".join(n for n, _, _ in removed[:5]) + (" ..." if len(removed) > 5 else "")
            message = (
                f"freed {format_bytes(run.bytes_freed)} to keep {format_bytes(target)} free "
                f"({trigger}): removed {names}"
            )
            log.info("GC: %s", message)
            self.events("MlnodeImageGC", message, False)
        if not run.satisfied:
            message = (
                f"cannot keep {format_bytes(target)} free on {self.image_fs}: "
                f"{format_bytes(after if after is not None else before)} available and nothing "
                "more may be removed (in use, pinned, warm, being pulled or too young)"
            )
            log.warning("GC: %s", message)
            self.events("MlnodeNoRoom", message, True)
        return outcome

    def ensure_room(self, incoming_bytes: int, *, what: str) -> str:
        """:class:`mlnode.ports.SpaceKeeper` for the hosted mirror: room for a blob about to
        be fetched (the free-space arithmetic of ``mlnode pull``, the warm set protected),
        then a loop pass at once to restore the headroom."""

        def gc(required_bytes: int) -> GcRun:
            # make_room's policy, with the config's minimum age (room_policy has the default)
            policy = replace(
                room_policy(required_bytes, self.keep_patterns()),
                minimum_age_seconds=self.cfg.gc_minimum_age_seconds,
            )
            with self._gc_lock:
                live = run_gc(
                    self.runtime,
                    PolicyName.ML,
                    policy,
                    now=datetime.now(UTC),
                    state_file=self.cfg.state_file(),
                    dry_run=False,
                    cache=self.cache,
                )
                self._record_gc(
                    "pull-start", required_bytes, live.collected.filesystem.available_bytes,
                    live.run,
                )  # fmt: skip
                return live.run

        keeper = ImageFsSpaceKeeper(
            meter=self.meter, cache=self.cache, gc=gc, reserve_bytes=self.cfg.headroom.reserve_bytes
        )
        try:
            return keeper.ensure_room(incoming_bytes, what=what)
        except InsufficientSpace as e:
            self.events("MlnodeNoRoom", str(e), True)
            raise
        finally:
            self.wake()

    # --- warm pulls ----------------------------------------------------------------------

    def pull_warm(self, image: str) -> None:
        """Pull one warm image through CRI (so through the node mirror when wired); the
        end is recorded in the warm set, metrics and Events. Blocking (a worker thread)."""
        started = time.monotonic()
        error: str | None = None
        try:
            self.cri.pull_image(image, timeout_seconds=self.cfg.warm_pull_timeout_seconds)
        except MlnodeError as e:
            error = str(e)
        seconds = time.monotonic() - started
        with self._warm_lock:
            status = self.warm.finished(image, self.wall(), error)
            self._warm_metrics()
        self._save_warm_state()
        if error is None:
            size = _size_of(self.cri, image)
            self.metrics.warm_pull_duration.labels(image_size_label(size)).observe(seconds)
            self.metrics.warm_pulls.labels("ok").inc()
            log.info("warm image %s pulled in %.1f s (%s)", image, seconds, format_bytes(size))
            self.events(
                "MlnodeWarmPulled",
                f"pulled {image} ({format_bytes(size)}) in {seconds:.1f} s",
                False,
            )
        else:
            self.metrics.warm_pulls.labels("failed").inc()
            self.metrics.errors.labels("pull").inc()
            retry = f"; retry in {status.retry_at_unix - self.wall():.0f} s" if status else ""
            log.warning("warm image %s: pull failed: %s%s", image, error, retry)
            self.events("MlnodeWarmPullFailed", f"pull of {image} failed: {error}{retry}", True)

    # --- state ---------------------------------------------------------------------------

    def _load_warm_state(self) -> None:
        path = self.cfg.warm_state_file()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable warm state, starting afresh: %s", path, e)
            return
        n = self.warm.load_json(doc)
        log.info("warm state: %d image(s) from %s", n, path)

    def _save_warm_state(self) -> None:
        with self._warm_lock:
            text = json.dumps(self.warm.to_json(), indent=1) + "\n"
        try:
            self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.cfg.warm_state_file(), text.encode(), mode=0o600)
        except OSError as e:
            self.metrics.errors.labels("config").inc()
            log.warning("cannot save the warm state: %s", e)

    def warm_status(self) -> list[dict[str, Any]]:
        now = self.wall()
        with self._warm_lock:
            return [s.to_json(now) for s in self.warm.statuses.values()]


def _size_of(cri: ImageService, image: str) -> int:
    try:
        found = cri.image_status(image)
    except MlnodeError:
        return 0
    return found.size_bytes if found is not None else 0


def _config_map_images(data: object, where: str) -> tuple[WarmImage, ...]:
    """The ConfigMap's ``images`` key: YAML, shaped like ``warm.images``; raises
    :class:`~mlnode.errors.InvalidValue` (the last good list then stays)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not data or not isinstance(data, dict) or "images" not in data:
        return ()
    try:
        node = YAML(typ="rt").load(str(data["images"]))
    except YAMLError as e:
        raise InvalidValue(f"{where}: images: not YAML: {getattr(e, 'problem', e)}") from None
    return parse_warm_images(node, f"{where}: images")
