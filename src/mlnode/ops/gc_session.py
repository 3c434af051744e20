"""One live image-GC run: the entry point ``mlnode gc`` and a pull's GC hook both call.

:func:`run_gc` takes a :class:`~mlnode.ops.gc_runtime.GcRuntime` and a policy, collects
what the runtime reports (recording first-seen/last-used times), raises the headroom to
the largest image seen, keeps the runtime's sandbox image under the ml policy
(:func:`keep_sandbox_image`, the one place that rule lives), plans and carries the plan
out. Under the ml policy the node mirror's cache (a :class:`~mlnode.blobcache.BlobCache`)
is the first tier: its complete blobs go before any image. :func:`make_room` is the run
a pull's free-space check and the mirror's :class:`~mlnode.ports.SpaceKeeper` ask for.
:func:`gc_live` opens the runtime first (through :data:`open_runtime`) and closes it
after. Presenting the result is the caller's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlnode.blobcache import BlobCache
from mlnode.errors import RuntimeError_
from mlnode.gc import GcPlan, GcPolicy, InvalidGcInput, MirrorBlob, PolicyName, plan
from mlnode.ops.gc_runtime import (
    CollectedState,
    CriGcRuntime,
    GcRun,
    GcRuntime,
    collect,
    execute,
    mirror_blobs,
    open_gc_runtime,
)
from mlnode.ops.image_state import ImageStateFile
from mlnode.ops.mirror_cache import cache_for_image_fs

__all__ = [
    "LiveGc",
    "clock",
    "gc_live",
    "keep_sandbox_image",
    "make_room",
    "open_runtime",
    "room_policy",
    "run_gc",
]


def _open_live(endpoint: str | None, image_fs: Path | None) -> GcRuntime:
    return open_gc_runtime(endpoint, image_fs=image_fs)


def _now() -> datetime:
    return datetime.now(UTC)


#: Opens the live runtime; tests replace it with a fake.
open_runtime: Callable[[str | None, Path | None], GcRuntime] = _open_live
#: The clock for live runs; tests replace it.
clock: Callable[[], datetime] = _now


@dataclass(frozen=True)
class LiveGc:
    """What one live run saw, planned with and did."""

    collected: CollectedState
    #: The policy as planned with: largest image seen and sandbox image folded in.
    policy: GcPolicy
    plan: GcPlan
    run: GcRun
    now: datetime
    #: The image filesystem the runtime was measured on, when the runtime says.
    image_fs_path: Path | None
    #: The node mirror's cache blobs planned over (ml policy with a cache only).
    mirror: tuple[MirrorBlob, ...] = ()


def keep_sandbox_image(policy_name: PolicyName, policy: GcPolicy, runtime: GcRuntime) -> GcPolicy:
    """The ml policy never removes the runtime's pod sandbox (pause) image.

    Kubelets from 1.29 leave the pause image to the runtime's pinning, which containerd
    only does from 1.6.22/1.7.3; removing it makes every new pod pull it. The kubelet
    policy reproduces the kubelet exactly, so it does not get this rule.
    """
    sandbox = runtime.sandbox_image() if isinstance(runtime, CriGcRuntime) else None
    if policy_name is not PolicyName.ML or not sandbox:
        return policy
    keep = (*(policy.keep_patterns or ()), sandbox)
    return dataclasses.replace(policy, keep_patterns=keep)


def run_gc(
    runtime: GcRuntime,
    policy_name: PolicyName,
    policy: GcPolicy,
    *,
    now: datetime,
    state_file: Path | None,
    dry_run: bool,
    cache: BlobCache | None = None,
) -> LiveGc:
    """Collect, plan and (unless ``dry_run``) remove, against an open runtime.

    ``cache`` is the node mirror's cache: under the ml policy its complete blobs not in
    flight are freed first; the kubelet policy never sees it. With ``dry_run`` the state
    file is read but not written. Raises
    :class:`~mlnode.errors.RuntimeError_` when the runtime reports an image filesystem
    that cannot be (planning refuses it), and what :func:`execute` raises.
    """
    collected = collect(
        runtime,
        now=now,
        state_file=ImageStateFile(state_file) if state_file is not None else None,
        persist=not dry_run,
    )
    largest = max(policy.largest_image_bytes or 0, collected.state.largest_image_bytes)
    policy = dataclasses.replace(policy, largest_image_bytes=largest or None)
    policy = keep_sandbox_image(policy_name, policy, runtime)
    use_cache = cache if policy_name is PolicyName.ML else None
    mirror = mirror_blobs(use_cache, runtime.in_flight_pull_digests()) if use_cache else ()
    try:
        the_plan = plan(
            policy_name, collected.images, collected.filesystem, policy, now=now, mirror=mirror
        )
    except InvalidGcInput as e:
        raise RuntimeError_(f"image filesystem: {e.message}") from e
    run_result = execute(runtime, the_plan, dry_run=dry_run, cache=use_cache)
    where = getattr(runtime, "image_fs_path", None)
    return LiveGc(collected, policy, the_plan, run_result, now, where, mirror)


def room_policy(required_bytes: int, protect: Sequence[str]) -> GcPolicy:
    """The ml policy aimed at exactly ``required_bytes`` available: headroom = required,
    thresholds out of the way, ``protect`` kept (the image being pulled)."""
    return GcPolicy(
        high_threshold_percent=100,
        low_threshold_percent=99,
        headroom_bytes=required_bytes,
        keep_patterns=tuple(protect),
    )


def make_room(
    runtime: GcRuntime,
    required_bytes: int,
    protect: Sequence[str] = (),
    *,
    cache: BlobCache | None,
    state_file: Path | None,
    now: datetime | None = None,
) -> LiveGc:
    """Run the ml GC until ``required_bytes`` are available: the mirror's cache first,
    then images (what ``mlnode pull``'s free-space check and the mirror's SpaceKeeper run)."""
    return run_gc(
        runtime,
        PolicyName.ML,
        room_policy(required_bytes, protect),
        now=now if now is not None else clock(),
        state_file=state_file,
        dry_run=False,
        cache=cache,
    )


@contextlib.contextmanager
def _opened(endpoint: str | None, image_fs: Path | None) -> Iterator[GcRuntime]:
    runtime = open_runtime(endpoint, image_fs)
    try:
        yield runtime
    finally:
        close = getattr(runtime, "close", None)
        if callable(close):
            close()


def gc_live(
    policy_name: PolicyName,
    policy: GcPolicy,
    *,
    endpoint: str | None,
    image_fs: Path | None,
    state_file: Path,
    dry_run: bool,
    mirror_cache: Path | None = None,
) -> LiveGc:
    """Open the runtime at ``endpoint`` (discovered if None), :func:`run_gc`, close it.

    ``mirror_cache`` is the node mirror's cache directory: used (ml policy) when it exists
    and shares the image filesystem."""
    now = clock()
    with _opened(endpoint, image_fs) as runtime:
        where = getattr(runtime, "image_fs_path", None) or image_fs
        return run_gc(
            runtime,
            policy_name,
            policy,
            now=now,
            state_file=state_file,
            dry_run=dry_run,
            cache=cache_for_image_fs(mirror_cache, where),
        )
