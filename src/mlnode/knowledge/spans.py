"""Version spans: "exists from these releases on, until these releases".

Runtimes backport settings to several release lines at once (CRI-O added
``pull_progress_timeout`` in 1.30.11, 1.31.3 and 1.32.0), so a start or end is a set of
first releases, one per line: a version has reached the point if its own line's entry
is at or below it, or if its line is newer than every line listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlnode.versions import Version

__all__ = ["Span", "reached"]


def reached(version: Version, points: tuple[Version, ...]) -> bool:
    """True when ``version`` is at or past the point in ``points`` for its release line."""
    for p in points:
        if p.minor_line == version.minor_line:
            return version.at_least(p)
    newest = max(points, key=Version.key)
    return version.minor_line > newest.minor_line


@dataclass(frozen=True)
class Span:
    """Present from ``since`` (inclusive) until ``until`` (exclusive). Empty = unbounded."""

    since: tuple[Version, ...] = ()
    until: tuple[Version, ...] = ()

    def contains(self, version: Version) -> bool:
        if self.since and not reached(version, self.since):
            return False
        return not (self.until and reached(version, self.until))

    def describe(self) -> str:
        def fmt(points: tuple[Version, ...]) -> str:
            return ", ".join(str(p) for p in points)

        if self.since and self.until:
            return f"{fmt(self.since)} to before {fmt(self.until)}"
        if self.since:
            return f"since {fmt(self.since)}"
        if self.until:
            return f"until before {fmt(self.until)}"
        return "all versions"


def v(*texts: str) -> tuple[Version, ...]:
    """Shorthand for the tables: ``v("1.30.11", "1.31.3")``."""
    return tuple(Version.parse(t) for t in texts)
