"""Downloads in flight, as containerd's Content service lists them, for image GC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mlnode.runtime.containerd import IngestStatus
from mlnode.runtime.cri import CriImage

__all__ = ["FakePullStatuses"]


@dataclass
class FakePullStatuses:
    """A :class:`~mlnode.ports.PullStatusSource`: downloads in flight, as
    containerd's Content service lists them."""

    statuses: list[IngestStatus] = field(default_factory=list)
    closed: bool = False

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        return list(self.statuses)

    def start_pull(self, image: CriImage) -> IngestStatus:
        """A download of ``image``'s manifest, named the way containerd's pulls name it."""
        digest = next((n.rpartition("@")[2] for n in image.repo_digests), image.id)
        status = IngestStatus(
            ref=f"manifest-{digest}",
            offset_bytes=0,
            total_bytes=image.size_bytes,
            started_at=None,
            updated_at=None,
        )
        self.statuses.append(status)
        return status

    def finish_pulls(self) -> None:
        self.statuses.clear()

    def close(self) -> None:
        self.closed = True
