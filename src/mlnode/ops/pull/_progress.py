"""Byte progress of a pull: offsets per blob, smoothed rates, the ``progress`` events."""

from __future__ import annotations

import threading
from typing import Any

from mlnode.ops.pull._plan import EventSink
from mlnode.ports import Clock

__all__ = ["Progress"]


class Progress:
    """Offsets per blob (as committed to containerd) and a thread that reports them.

    Rates and ETAs are measured on the injected clock. The reporting thread paces itself
    in real time (it is a display cadence, not part of the pull's state machine), so a
    virtual clock in tests neither spins it nor is advanced by it; :meth:`stop` always
    emits the final figures.
    """

    def __init__(self, emit: EventSink, interval: float, clock: Clock) -> None:
        self._emit = emit
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self._roles: dict[str, str] = {}
        self._reported: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._last_t = 0.0
        self._last_total = 0
        self._overall_rate = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fetched_bytes = 0
        self.retries = 0

    def add(self, role: str, digest: str, size: int, offset: int) -> None:
        with self._lock:
            self._sizes[digest] = size
            self._offsets[digest] = offset
            self._roles[digest] = role

    def set(self, digest: str, offset: int) -> None:
        with self._lock:
            self._offsets[digest] = offset

    def received(self, n: int) -> None:
        with self._lock:
            self.fetched_bytes += n

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def total(self) -> int:
        return sum(self._sizes.values())

    def start(self, *, thread: bool = True) -> None:
        """Take the starting offsets; ``thread`` False: the caller calls :meth:`tick`
        at its own cadence (the mirror path samples on the pull's clock)."""
        with self._lock:
            self._last_t = self._clock.monotonic()
            self._last_total = sum(self._offsets.values())
            self._reported = dict(self._offsets)
        if not thread:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pull-progress")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.tick(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()

    def tick(self, *, final: bool = False) -> None:
        with self._lock:
            now = self._clock.monotonic()
            dt = max(now - self._last_t, 1e-6)
            offsets = dict(self._offsets)
            total_now = sum(offsets.values())
            inst = (total_now - self._last_total) / dt
            # exponential smoothing with a ~3 s memory: steady, but follows real changes
            alpha = min(1.0, dt / 3.0)
            self._overall_rate = (
                inst if self._overall_rate == 0 else alpha * inst + (1 - alpha) * self._overall_rate
            )
            self._last_t, self._last_total = now, total_now
            events: list[dict[str, Any]] = []
            image_total = sum(self._sizes.values())
            remaining = image_total - total_now
            eta = remaining / self._overall_rate if self._overall_rate > 0 else None
            for digest, off in offsets.items():
                before = self._reported.get(digest, 0)
                r_inst = (off - before) / dt
                prev = self._rates.get(digest, 0.0)
                rate = r_inst if prev == 0 else alpha * r_inst + (1 - alpha) * prev
                self._rates[digest] = rate
                if off == before and not final:
                    continue
                self._reported[digest] = off
                events.append(
                    {
                        "event": "progress",
                        "layer": digest,
                        "role": self._roles[digest],
                        "offset_bytes": off,
                        "total_bytes": self._sizes[digest],
                        "rate_bytes_per_second": round(rate),
                        "image_offset_bytes": total_now,
                        "image_total_bytes": image_total,
                        "image_rate_bytes_per_second": round(self._overall_rate),
                        "eta_seconds": None if eta is None else round(eta, 1),
                    }
                )
        for e in events:
            self._emit(e)
