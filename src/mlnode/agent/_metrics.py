"""The agent's Prometheus metrics, on a registry of its own (never the global one).

    mlnode_agent_gc_runs_total{trigger,result}          headroom GC runs (trigger: interval|
                                                        pull-start; result: freed|short|
                                                        nothing-to-do)
    mlnode_agent_gc_freed_bytes_total{reason}           bytes freed (reason: the GC's:
                                                        mirror-cache|space|age)
    mlnode_agent_gc_removed_total{reason}               images / cache blobs removed
    mlnode_agent_image_fs_available_bytes               the image filesystem, last measured
    mlnode_agent_image_fs_used_bytes
    mlnode_agent_image_fs_capacity_bytes
    mlnode_agent_headroom_target_bytes                  the free bytes the agent keeps
    mlnode_agent_pulls_in_flight                        pulls containerd is running (any
                                                        client: the kubelet's too)
    mlnode_agent_pull_bytes_in_flight                   bytes those pulls have so far
    mlnode_agent_warm_pull_duration_seconds{image_size_in_bytes}
                                                        warm pulls, with the kubelet's buckets
                                                        and size labels
                                                        (kubelet_image_pull_duration_seconds)
    mlnode_agent_warm_images{phase}                     warm set: desired (all), present,
                                                        pulling, waiting, failed
    mlnode_agent_warm_pulls_total{result}               warm pulls ended (ok|failed)
    mlnode_agent_errors_total{kind}                     runtime|gc|pull|kube|config
    mlnode_agent_ticks_total                            control-loop passes
    mlnode_agent_ready                                  1 when /readyz answers 200

The hosted mirror's own metrics (``mlnode_mirror_*``: bytes from upstream and from cache,
blobs in flight, retries, errors, cache bytes) are served on the same ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PULL_DURATION_BUCKETS", "AgentMetrics", "image_size_label"]

#: kubelet's imagePullDurationBuckets (pkg/kubelet/metrics/metrics.go)
PULL_DURATION_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                         1800, 2700, 3600)  # fmt: skip
_MiB = 1024 * 1024
_GiB = 1024 * _MiB
#: kubelet's imageSizeBuckets: (lower bound, label); a size above a bound gets its label
_SIZE_LABELS = (
    (0, "0-10MB"),
    (10 * _MiB, "10MB-100MB"),
    (100 * _MiB, "100MB-500MB"),
    (500 * _MiB, "500MB-1GB"),
    (1 * _GiB, "1GB-5GB"),
    (5 * _GiB, "5GB-10GB"),
    (10 * _GiB, "10GB-20GB"),
    (20 * _GiB, "20GB-30GB"),
    (30 * _GiB, "30GB-40GB"),
    (40 * _GiB, "40GB-60GB"),
    (60 * _GiB, "60GB-100GB"),
    (100 * _GiB, "GT100GB"),
)


def image_size_label(size_bytes: int) -> str:
    """The kubelet's ``image_size_in_bytes`` label for an image of ``size_bytes``."""
    for lower, label in reversed(_SIZE_LABELS):
        if size_bytes > lower:
            return label
    return "N/A"


class AgentMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "mlnode_agent_"
        self.gc_runs = Counter(p + "gc_runs", "Headroom GC runs", ["trigger", "result"], registry=r)
        self.gc_freed_bytes = Counter(
            p + "gc_freed_bytes", "Bytes freed by headroom GC", ["reason"], registry=r
        )
        self.gc_removed = Counter(
            p + "gc_removed", "Images and mirror-cache blobs removed", ["reason"], registry=r
        )
        self.fs_available = Gauge(p + "image_fs_available_bytes", "Image fs free", registry=r)
        self.fs_used = Gauge(p + "image_fs_used_bytes", "Image fs used", registry=r)
        self.fs_capacity = Gauge(p + "image_fs_capacity_bytes", "Image fs size", registry=r)
        self.headroom_target = Gauge(
            p + "headroom_target_bytes", "Free bytes the agent keeps", registry=r
        )
        self.pulls_in_flight = Gauge(
            p + "pulls_in_flight", "Pulls containerd is running (any client)", registry=r
        )
        self.pull_bytes_in_flight = Gauge(
            p + "pull_bytes_in_flight", "Bytes the running pulls have so far", registry=r
        )
        self.warm_pull_duration = Histogram(
            p + "warm_pull_duration_seconds",
            "Warm pulls, by the kubelet's image size labels",
            ["image_size_in_bytes"],
            buckets=PULL_DURATION_BUCKETS,
            registry=r,
        )
        self.warm_images = Gauge(p + "warm_images", "Warm set by phase", ["phase"], registry=r)
        self.warm_pulls = Counter(p + "warm_pulls", "Warm pulls ended", ["result"], registry=r)
        self.errors = Counter(p + "errors", "Errors by kind", ["kind"], registry=r)
        self.ticks = Counter(p + "ticks", "Control-loop passes", registry=r)
        self.ready = Gauge(p + "ready", "1 when ready", registry=r)
        for kind in ("runtime", "gc", "pull", "kube", "config"):
            self.errors.labels(kind)
        for phase in ("desired", "present", "pulling", "waiting", "failed"):
            self.warm_images.labels(phase)
