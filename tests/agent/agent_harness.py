"""A node in memory for the agent's unit tests: a CRI image service whose pulls land on a
fake image filesystem, containerd's pull statuses, and an Agent built over them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlnode.agent import Agent, AgentConfig
from mlnode.agent._config import HeadroomConfig, WarmImage
from mlnode.errors import MlnodeError, RuntimeCallFailed
from mlnode.runtime.cri import RegistryAuth
from mlnode.testing import FakeFilesystem, FakeImageService, FakePullStatuses

GiB = 1024**3
MiB = 1024**2


@dataclass
class PullingImages(FakeImageService):
    """Pulls of ``catalog`` refs land on ``filesystem`` (no space: a runtime error as
    containerd's "no space left on device"); ``fail`` makes a ref's pull raise."""

    catalog: dict[str, int] = field(default_factory=dict)
    fail: dict[str, MlnodeError] = field(default_factory=dict)

    def pull_image(
        self,
        ref: str,
        auth: RegistryAuth | None = None,
        timeout_seconds: float | None = None,
    ) -> str:
        self.calls.append("pull_image")
        self.pulls.append(ref)
        if ref in self.fail:
            raise self.fail[ref]
        size = self.catalog[ref]
        assert self.filesystem is not None
        if self.filesystem.available_bytes < size:
            raise RuntimeCallFailed(
                f"PullImage {ref}: write /var/lib/containerd/...: no space left on device",
                endpoint="fake",
                code="UNKNOWN",
            )
        existing = self.find(ref)
        if existing is None:
            self.filesystem.available_bytes -= size
            existing = self.add_image(ref, size)
        return existing.id


@dataclass
class Events:
    posted: list[tuple[str, str, bool]] = field(default_factory=list)

    def __call__(self, reason: str, message: str, warning: bool) -> None:
        self.posted.append((reason, message, warning))

    def reasons(self) -> list[str]:
        return [r for r, _, _ in self.posted]


@dataclass
class Node:
    tmp: Path
    capacity_bytes: int = 100 * GiB
    available_bytes: int = 60 * GiB
    now: list[float] = field(default_factory=lambda: [1_000_000.0])

    def __post_init__(self) -> None:
        self.fs = FakeFilesystem(self.capacity_bytes, self.available_bytes)
        self.cri = PullingImages(filesystem=self.fs)
        self.statuses = FakePullStatuses()
        self.events = Events()

    def config(self, **changes: Any) -> AgentConfig:
        base = AgentConfig(
            node_name="gpu-1",
            node_labels={"gpu": "true"},
            state_dir=self.tmp / "state",
            gc_minimum_age_seconds=0.0,
            # the fake's pulls take an image's CRI size on disk: no unpacked copy on top
            headroom=HeadroomConfig(
                target_bytes=None, concurrent_pulls=1, reserve_bytes=GiB, unpack_factor=0.0
            ),
        )
        return replace(base, **changes)

    def agent(self, cfg: AgentConfig | None = None, **kw: Any) -> Agent:
        return Agent(
            cfg or self.config(),
            cri=self.cri,
            containerd=self.statuses,
            meter=self.fs,
            image_fs=Path("/fake/containerd"),
            events=self.events,
            wall=lambda: self.now[0],
            rand=lambda: 1.0,
            **kw,
        )

    def image(self, ref: str, size_bytes: int) -> None:
        """An image already on the node (it takes its bytes)."""
        self.cri.add_image(ref, size_bytes)
        self.cri.catalog[ref] = size_bytes
        self.fs.available_bytes -= size_bytes


def warm(*refs: str, **selector: str) -> tuple[WarmImage, ...]:
    return tuple(WarmImage(r, dict(selector)) for r in refs)


def drive(agent: Agent, passes: int = 3) -> None:
    """Run passes and every warm pull they start, in order (the service does this
    concurrently)."""
    for _ in range(passes):
        for image in agent.tick():
            agent.pull_warm(image)
