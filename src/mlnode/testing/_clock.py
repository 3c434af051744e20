"""A virtual clock: time moves only when someone sleeps or advances it."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """:class:`mlnode.ports.Clock` on virtual time, safe to share between threads.

    ``sleep`` and ``wait`` return at once and move the time forward by what was asked
    (``wait`` returns early, without moving time, if the event is set already). Every
    sleep is recorded in :attr:`sleeps`, so a test can check a backoff sequence.
    """

    def __init__(self, start_seconds: float = 1000.0) -> None:
        self._now = start_seconds
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (e.g. the silence of a stalled connection)."""
        if seconds < 0:
            raise ValueError("time does not go back")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()
