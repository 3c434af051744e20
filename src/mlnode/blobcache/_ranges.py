"""Sets of byte ranges, half-open ``[start, end)``, kept sorted and merged."""

from __future__ import annotations

import bisect

__all__ = ["Ranges"]


class Ranges:
    """Disjoint, sorted, merged half-open byte ranges."""

    def __init__(self, spans: list[tuple[int, int]] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in spans or []:
            self.add(start, end)

    @classmethod
    def from_json(cls, value: object, size_bytes: int) -> Ranges:
        """Ranges from a map file; anything malformed or outside ``[0, size_bytes)`` is
        dropped (those bytes are then fetched again, never trusted)."""
        out = cls()
        if not isinstance(value, list):
            return out
        for item in value:
            if (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
                and 0 <= item[0] < item[1] <= size_bytes
            ):
                out.add(item[0], item[1])
        return out

    def to_json(self) -> list[list[int]]:
        return [[s, e] for s, e in zip(self._starts, self._ends, strict=True)]

    def spans(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def is_empty(self) -> bool:
        return not self._starts

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # every span that overlaps or touches [start, end) is merged into it
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def prefix(self) -> int:
        """The end of the span starting at 0 (0 when byte 0 is missing)."""
        if self._starts and self._starts[0] == 0:
            return self._ends[0]
        return 0

    def covers(self, start: int, end: int) -> bool:
        if end <= start:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The missing sub-ranges of ``[start, end)``, in order."""
        out: list[tuple[int, int]] = []
        pos = start
        for s, e in zip(self._starts, self._ends, strict=True):
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                out.append((pos, min(s, end)))
            pos = max(pos, e)
            if pos >= end:
                break
        if pos < end:
            out.append((pos, end))
        return out
