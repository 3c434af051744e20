"""In-memory fakes of mlnode's ports (:mod:`mlnode.ports`) and a virtual clock, shipped
so the pull engine (and later the mirror and the agent) can be unit-tested: stalls,
retries with backoff and resumes run in milliseconds, with no containerd, registry or
real waiting.

    fake                 port            can be told to
    ───────────────────  ──────────────  ─────────────────────────────────────────────
    FakeClock            Clock           (time moves only on sleep/advance)
    FakeContentStore     ContentStore    fail writer opens, break a write mid-stream
    FakeImageService     ImageService    register only what the content store holds;
                                         free an image's bytes on a FakeFilesystem
    FakeFilesystem       FilesystemMeter (available bytes grow as images go)
    FakePullStatuses     PullStatusSource downloads in flight, for GC
    FakeRegistry         Registry        stall, cut, corrupt a blob, answer HTTP errors
    FakeClusterApi       ClusterApi      be unavailable, refuse a call (403); Events
                                         aggregated as mlnode.kube.KubeClient does

:mod:`mlnode.testing.fake_registry_server` (imported on its own: it needs aiohttp) is an
upstream registry over real HTTP for the mirror's tests: ranges, stalls, cuts, corrupt
bytes, statuses, 401 challenges, a request log and bytes served per digest.
:mod:`mlnode.testing.fake_kube_api` (imported on its own: it needs kubernetes-validate and
cryptography) is a Kubernetes API server over real HTTPS for mlnode.kube's tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlnode.testing._clock import FakeClock
from mlnode.testing._cluster import FakeClusterApi
from mlnode.testing._content import FakeContentStore, FakeIngest, FakeLease
from mlnode.testing._images import FakeFilesystem, FakeImageService, fake_digest, fake_image
from mlnode.testing._registry import BlobRequest, FakeBlobBody, FakeImage, FakeRegistry
from mlnode.testing._statuses import FakePullStatuses

__all__ = [
    "BlobRequest",
    "FakeBlobBody",
    "FakeClock",
    "FakeClusterApi",
    "FakeContentStore",
    "FakeFilesystem",
    "FakeImage",
    "FakeImageService",
    "FakeIngest",
    "FakeLease",
    "FakePullStatuses",
    "FakeRegistry",
    "fake_digest",
    "fake_image",
]

if TYPE_CHECKING:  # mypy checks that each fake satisfies its port; never runs
    from mlnode import ports

    def _clock(c: FakeClock) -> ports.Clock:
        return c

    def _content(c: FakeContentStore) -> ports.ContentStore:
        return c

    def _ingest(w: FakeIngest) -> ports.ContentIngest:
        return w

    def _images(c: FakeImageService) -> ports.ImageService:
        return c

    def _statuses(s: FakePullStatuses) -> ports.PullStatusSource:
        return s

    def _meter(f: FakeFilesystem) -> ports.FilesystemMeter:
        return f

    def _registry(r: FakeRegistry) -> ports.Registry:
        return r

    def _body(b: FakeBlobBody) -> ports.BlobBody:
        return b
