"""One live image-GC run: the entry point ``mlnode gc`` and a pull's GC hook both call.

:func:`run_gc` takes a :class:`~mlnode.ops.gc_runtime.GcRuntime` and a policy, collects
what the runtime reports (recording first-seen/last-used times), raises the headroom to
the largest image seen, keeps the runtime's sandbox image under the ml policy
(:func:`keep_sandbox_image`, the one place that rule lives), plans and carries the plan
out. :func:`gc_live` opens the runtime first (through :data:`open_runtime`) and closes it
after. Presenting the result is the caller's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlnode.errors import RuntimeError_
from mlnode.gc import GcPlan, GcPolicy, InvalidGcInput, PolicyName, plan
from mlnode.ops.gc_runtime import (
    CollectedState,
    CriGcRuntime,
    GcRun,
    GcRuntime,
    collect,
    execute,
    open_gc_runtime,
)
from mlnode.ops.image_state import ImageStateFile

__all__ = [
    "LiveGc",
    "clock",
    "gc_live",
    "keep_sandbox_image",
    "open_runtime",
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
) -> LiveGc:
    """Collect, plan and (unless ``dry_run``) remove, against an open runtime.

    With ``dry_run`` the state file is read but not written. Raises
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
    try:
        the_plan = plan(policy_name, collected.images, collected.filesystem, policy, now=now)
    except InvalidGcInput as e:
        raise RuntimeError_(f"image filesystem: {e.message}") from e
    run_result = execute(runtime, the_plan, dry_run=dry_run)
    where = getattr(runtime, "image_fs_path", None)
    return LiveGc(collected, policy, the_plan, run_result, now, where)


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
) -> LiveGc:
    """Open the runtime at ``endpoint`` (discovered if None), :func:`run_gc`, close it."""
    now = clock()
    with _opened(endpoint, image_fs) as runtime:
        return run_gc(runtime, policy_name, policy, now=now, state_file=state_file, dry_run=dry_run)
