"""The warm set as a level-triggered state machine (pure: times and randomness injected).

Each desired image is in one phase:

    present  ── removed by hand / by GC elsewhere ──▶ waiting
    waiting  ── a pull slot is free ──▶ pulling
    pulling  ── success ──▶ present        ── failure ──▶ failed (backing off)
    failed   ── its backoff elapsed ──▶ waiting

:meth:`WarmSet.reconcile` compares the desired list with what the runtime holds and says
which images to start pulling now (at most ``concurrency`` pulling at once); the caller
runs the pulls and reports each end with :meth:`WarmSet.finished`. A failed image waits
``backoff_seconds * 2**(failures-1)`` (at most ``backoff_max_seconds``), scaled by a
jitter factor in [0.5, 1.0) so a fleet of nodes does not retry in step. The state (with
wall-clock times) is saved as JSON, so counts and backoffs survive a restart; an image
that was ``pulling`` when the agent died is ``waiting`` again (its pull died with it, and
the node mirror resumes the bytes it had).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["WARM_SCHEMA", "WarmPhase", "WarmSet", "WarmStatus"]

WARM_SCHEMA = "mlnode.agent.warm/v1"


class WarmPhase(enum.StrEnum):
    PRESENT = "present"
    WAITING = "waiting"
    PULLING = "pulling"
    FAILED = "failed"


@dataclass(frozen=True)
class WarmStatus:
    image: str
    phase: WarmPhase = WarmPhase.WAITING
    #: failed pulls in a row (0 after a success)
    failures: int = 0
    #: wall-clock time before which a failed image is not pulled again
    retry_at_unix: float = 0.0
    last_error: str = ""
    pulls_total: int = 0
    last_pulled_unix: float | None = None
    #: when the current pull started (pulling only)
    started_unix: float | None = None

    def to_json(self, now_unix: float) -> dict[str, Any]:
        wait = max(0.0, self.retry_at_unix - now_unix) if self.phase is WarmPhase.FAILED else 0.0
        return {
            "image": self.image,
            "phase": str(self.phase),
            "failures": self.failures,
            "retry_in_seconds": round(wait, 1),
            "last_error": self.last_error,
            "pulls_total": self.pulls_total,
            "last_pulled_unix": self.last_pulled_unix,
            "started_unix": self.started_unix,
        }


class WarmSet:
    def __init__(
        self,
        *,
        concurrency: int,
        backoff_seconds: float,
        backoff_max_seconds: float,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.concurrency = concurrency
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._rand = rand
        self.statuses: dict[str, WarmStatus] = {}
        #: images forgotten since the caller last emptied this (to unpin them)
        self.dropped: list[str] = []

    def configure(
        self, *, concurrency: int, backoff_seconds: float, backoff_max_seconds: float
    ) -> None:
        """New limits (a config reload); phases are kept."""
        self.concurrency = concurrency
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds

    def pulling(self) -> list[str]:
        return [i for i, s in self.statuses.items() if s.phase is WarmPhase.PULLING]

    def reconcile(
        self, desired: Sequence[str], present: Collection[str], now_unix: float
    ) -> list[str]:
        """Bring every phase up to date; returns the images to start pulling now (each is
        marked pulling). An image no longer desired is forgotten (a pull of it already
        running finishes, and is then not tracked)."""
        keep = dict.fromkeys(desired)
        for image in [i for i in self.statuses if i not in keep]:
            if self.statuses[image].phase is not WarmPhase.PULLING:
                del self.statuses[image]
                self.dropped.append(image)
        due: list[str] = []
        for image in keep:
            s = self.statuses.get(image) or WarmStatus(image)
            if s.phase is WarmPhase.PULLING:
                pass
            elif image in present:
                s = replace(s, phase=WarmPhase.PRESENT, failures=0, last_error="")
            elif s.phase is WarmPhase.FAILED and now_unix < s.retry_at_unix:
                pass
            else:
                s = replace(s, phase=WarmPhase.WAITING)
                due.append(image)
            self.statuses[image] = s
        free = max(0, self.concurrency - len(self.pulling()))
        start = due[:free]
        for image in start:
            self.statuses[image] = replace(
                self.statuses[image], phase=WarmPhase.PULLING, started_unix=now_unix
            )
        return start

    def backoff(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` failures in a row, jittered."""
        base = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, failures - 1))
        return float(base * (0.5 + 0.5 * self._rand()))

    def finished(self, image: str, now_unix: float, error: str | None = None) -> WarmStatus | None:
        """A pull ended (``error`` None: success). Returns the new status, or None when
        the image is no longer desired."""
        s = self.statuses.get(image)
        if s is None:
            return None
        if error is None:
            s = replace(
                s,
                phase=WarmPhase.PRESENT,
                failures=0,
                last_error="",
                pulls_total=s.pulls_total + 1,
                last_pulled_unix=now_unix,
                started_unix=None,
            )
        else:
            failures = s.failures + 1
            s = replace(
                s,
                phase=WarmPhase.FAILED,
                failures=failures,
                retry_at_unix=now_unix + self.backoff(failures),
                last_error=error,
                started_unix=None,
            )
        self.statuses[image] = s
        return s

    def counts(self) -> dict[str, int]:
        out = {str(p): 0 for p in WarmPhase}
        for s in self.statuses.values():
            out[str(s.phase)] += 1
        return out

    # --- persistence ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": WARM_SCHEMA,
            "images": [
                {
                    "image": s.image,
                    "phase": str(s.phase),
                    "failures": s.failures,
                    "retry_at_unix": s.retry_at_unix,
                    "last_error": s.last_error,
                    "pulls_total": s.pulls_total,
                    "last_pulled_unix": s.last_pulled_unix,
                }
                for s in self.statuses.values()
            ],
        }

    def load_json(self, doc: object) -> int:
        """Take saved statuses (unknown or malformed entries are skipped: the state is
        advisory, the runtime is the truth). Returns how many were taken."""
        if not isinstance(doc, dict) or doc.get("schema") != WARM_SCHEMA:
            return 0
        taken = 0
        for item in doc.get("images") or []:
            try:
                phase = WarmPhase(item["phase"])
                s = WarmStatus(
                    image=str(item["image"]),
                    phase=WarmPhase.WAITING if phase is WarmPhase.PULLING else phase,
                    failures=int(item.get("failures", 0)),
                    retry_at_unix=float(item.get("retry_at_unix", 0.0)),
                    last_error=str(item.get("last_error", "")),
                    pulls_total=int(item.get("pulls_total", 0)),
                    last_pulled_unix=item.get("last_pulled_unix"),
                )
            except (KeyError, TypeError, ValueError):
                continue
            self.statuses[s.image] = s
            taken += 1
        return taken
