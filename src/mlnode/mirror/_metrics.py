"""The mirror's Prometheus metrics, on a registry of its own (never the global one), so
an agent hosting the mirror can serve them next to its own or apart.

    mlnode_mirror_requests_total{kind,method,code}      requests answered (kind: manifest,
                                                        blob, other)
    mlnode_mirror_upstream_bytes_total{registry}        blob bytes received from upstream
    mlnode_mirror_served_bytes_total{registry,source}   blob bytes sent to clients; source is
                                                        "cache" (complete when asked) or "fetch"
                                                        (streamed while being fetched)
    mlnode_mirror_blobs_in_flight                       blobs being fetched now
    mlnode_mirror_upstream_retries_total{registry,kind} reconnects (kind: stall|cut)
    mlnode_mirror_upstream_errors_total{registry,status} failed upstream answers (status: HTTP
                                                        code, or "digest" for a sha256 mismatch)
    mlnode_mirror_cache_bytes                           disk bytes of the cache (sparse aware)
    mlnode_mirror_cache_max_bytes                       the configured bound
    mlnode_mirror_cache_evictions_total{reason}         blobs dropped (committed|bound|gc)
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

__all__ = ["MirrorMetrics"]


class MirrorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlnode_mirror_requests", "Requests answered", ["kind", "method", "code"], registry=r
        )
        self.upstream_bytes = Counter(
            "mlnode_mirror_upstream_bytes", "Blob bytes from upstream", ["registry"], registry=r
        )
        self.served_bytes = Counter(
            "mlnode_mirror_served_bytes",
            "Blob bytes sent to clients",
            ["registry", "source"],
            registry=r,
        )
        self.in_flight = Gauge("mlnode_mirror_blobs_in_flight", "Blobs being fetched", registry=r)
        self.retries = Counter(
            "mlnode_mirror_upstream_retries",
            "Upstream reconnects",
            ["registry", "kind"],
            registry=r,
        )
        self.errors = Counter(
            "mlnode_mirror_upstream_errors",
            "Failed upstream answers",
            ["registry", "status"],
            registry=r,
        )
        self.cache_bytes = Gauge("mlnode_mirror_cache_bytes", "Cache disk bytes", registry=r)
        self.cache_max_bytes = Gauge(
            "mlnode_mirror_cache_max_bytes", "Cache bound in bytes", registry=r
        )
        self.evictions = Counter(
            "mlnode_mirror_cache_evictions", "Blobs dropped from the cache", ["reason"], registry=r
        )

    def track_in_flight(self, count: Callable[[], int]) -> None:
        self.in_flight.set_function(lambda: float(count()))

    def track_cache_bytes(self, measure: Callable[[], int]) -> None:
        self.cache_bytes.set_function(lambda: float(measure()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
