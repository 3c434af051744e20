"""Shared helpers for the gc tests: a CLI runner and an in-memory runtime."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import typer
from typer.testing import CliRunner

from mlnode.cli import gc as gc_cli
from mlnode.errors import RuntimeCallFailed, RuntimeUnavailable
from mlnode.gc import FilesystemState
from mlnode.ops.gc_runtime import RuntimeImage


def gc_app() -> typer.Typer:
    """A Typer app holding only ``gc``, so these tests do not depend on other commands."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """mlnode (gc only)."""

    gc_cli.register(app)
    return app


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(gc_app(), ["gc", *args])


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class FakeRuntime:
    """An in-memory GcRuntime. Removing an image frees its size on the filesystem."""

    images: list[RuntimeImage]
    capacity_bytes: int
    available_bytes: int
    container_refs: set[str] = field(default_factory=set)
    pulling: set[str] = field(default_factory=set)
    fail_remove: dict[str, Exception] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    unavailable: bool = False
    #: called before each remove_image, to simulate the node changing under GC
    before_remove: list = field(default_factory=list)  # type: ignore[type-arg]
    calls: list[str] = field(default_factory=list)

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.unavailable:
            raise RuntimeUnavailable("no socket", endpoint="unix:///fake.sock")

    def list_images(self) -> list[RuntimeImage]:
        self._check("list_images")
        return list(self.images)

    def container_image_refs(self) -> frozenset[str]:
        self._check("container_image_refs")
        return frozenset(self.container_refs)

    def in_flight_pull_digests(self) -> frozenset[str]:
        self._check("in_flight_pull_digests")
        return frozenset(self.pulling)

    def remove_image(self, image_id: str) -> None:
        self._check("remove_image")
        for hook in self.before_remove:
            hook(self, image_id)
        if image_id in self.fail_remove:
            raise self.fail_remove[image_id]
        image = next((i for i in self.images if i.id == image_id), None)
        if image is None:
            return
        self.images.remove(image)
        self.removed.append(image_id)
        self.available_bytes = min(self.capacity_bytes, self.available_bytes + image.size_bytes)

    def image_filesystem(self) -> FilesystemState:
        self._check("image_filesystem")
        return FilesystemState(
            capacity_bytes=self.capacity_bytes, available_bytes=self.available_bytes
        )


def runtime_images(
    sizes: Iterable[tuple[str, int]], pinned: Iterable[str] = ()
) -> list[RuntimeImage]:
    pins = set(pinned)
    return [
        RuntimeImage(id=i, size_bytes=s, pinned=i in pins, names=(f"repo/{i}:v1",))
        for i, s in sizes
    ]


def failing(message: str = "boom") -> Exception:
    return RuntimeCallFailed(message, endpoint="unix:///fake.sock", code="INTERNAL")


__all__ = ["FakeRuntime", "failing", "gc_app", "invoke", "replace", "runtime_images", "ts"]
