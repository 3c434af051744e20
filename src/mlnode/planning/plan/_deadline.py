"""The pull progress deadline: how long a pull may stay silent before the runtime cancels it.

``max(runtime default, 5m, 3 · longest expected silence)``, up to whole minutes, where
silence is the registry stall for byte-counting runtimes (containerd), plus a largest
layer's download (containerd ≥ 2.1, progress events) or unpack (CRI-O, Docker) time.
"""

from __future__ import annotations

from mlnode.knowledge.table import KUBELET_SETTINGS, runtime_settings_for
from mlnode.planning.plan._formulas import effective_pulls, gib, minutes_up
from mlnode.planning.plan._model import Justification, Step
from mlnode.planning.profile import NodeProfile, format_rate
from mlnode.units import format_go_duration
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = ["PULL_DEADLINE_FLOOR_SECONDS", "PULL_DEADLINE_SAFETY", "deadline_step"]

PULL_DEADLINE_SAFETY = 3.0
# containerd's own default since v1.7.10, chosen after 1m killed large pulls (#9347).
PULL_DEADLINE_FLOOR_SECONDS = 300.0

_CONTAINERD_PROGRESS_EVENTS_SINCE = Version(2, 1)
_KEY = "image_pull_progress_deadline_seconds"


def _runtime_default_deadline(rt: RuntimeSpec) -> tuple[float | None, bool]:
    """(default seconds or None, whether the runtime has the setting in this version)."""
    if rt.kind is RuntimeKind.DOCKER:
        row = next(r for r in KUBELET_SETTINGS if r.key == _KEY)
        return float(row.default), True
    rows = [r for r in runtime_settings_for(rt.kind, rt.version) if r.key == _KEY]
    if not rows:
        return None, False
    return float(rows[0].default), True


def _counts_progress_events(rt: RuntimeSpec | None) -> bool:
    return (
        rt is not None
        and rt.kind is RuntimeKind.CONTAINERD
        and rt.version is not None
        and rt.version.at_least(_CONTAINERD_PROGRESS_EVENTS_SINCE)
    )


def _left_unset(rt: RuntimeSpec, default: float | None, exists: bool) -> Step | None:
    """The step when the runtime has no deadline to set, or keeps it off; else None."""
    if not exists:
        warnings: tuple[str, ...] = ()
        if rt.kind is RuntimeKind.CONTAINERD:
            warnings = (
                f"{rt} has no pull progress deadline (image_pull_progress_timeout arrived "
                "in 1.7.0; 1.6 ignores the key): a stalled pull hangs until its pod is "
                "deleted. Upgrade to containerd ≥ 1.7.10",
            )
        why = Justification(_KEY, "unset", f"{rt} has no pull progress deadline", "nothing to set")
        return Step(justifications=(why,), warnings=warnings)
    if default == 0:
        why = Justification(
            _KEY,
            "unset",
            f"{rt}: pull_progress_timeout is 0 (off) by default",
            "no deadline to raise; mlnode leaves it off rather than add a way for "
            "large pulls to fail",
        )
        return Step(justifications=(why,))
    return None


def _terms(p: NodeProfile, default: float | None) -> list[tuple[str, float]]:
    """The candidates for the deadline, each with the label the justification shows."""
    rt = p.runtime
    parts: list[tuple[str, float]] = [
        ("floor (containerd's 5m since 1.7.10, #9347)", PULL_DEADLINE_FLOOR_SECONDS),
        (
            f"{PULL_DEADLINE_SAFETY:g} × registry stall {p.registry_stall_seconds:g} s",
            PULL_DEADLINE_SAFETY * p.registry_stall_seconds,
        ),
    ]
    if default is not None:
        parts.append((f"{rt} default", default))
    per_pull_rate = p.link_bandwidth_bytes_per_second / effective_pulls(p)
    layer_unpacked = p.largest_layer_bytes * p.unpack_ratio
    if rt is None or rt.kind in (RuntimeKind.CRIO, RuntimeKind.CRI_DOCKERD, RuntimeKind.DOCKER):
        parts.append(
            (
                f"{PULL_DEADLINE_SAFETY:g} × unpack of the largest layer "
                f"({gib(layer_unpacked)} / {p.unpack_bytes_per_second / 1e6:g} MB/s)",
                PULL_DEADLINE_SAFETY * layer_unpacked / p.unpack_bytes_per_second,
            )
        )
    if rt is None or _counts_progress_events(rt):
        parts.append(
            (
                f"{PULL_DEADLINE_SAFETY:g} × download of the largest layer "
                f"({gib(p.largest_layer_bytes)} at {format_rate(per_pull_rate)})",
                PULL_DEADLINE_SAFETY * p.largest_layer_bytes / per_pull_rate,
            )
        )
    return parts


def _silence_explained(rt: RuntimeSpec | None) -> str:
    """What resets the runtime's deadline, and so where its silence comes from."""
    if rt is None:
        return "runtime unknown: the largest of every runtime's terms"
    if rt.kind is RuntimeKind.CONTAINERD:
        how = (
            "containerd counts bytes read from the registry: silence comes from registry "
            "stalls, not layer size"
        )
        if _counts_progress_events(rt):
            how += (
                "; from 2.1 the transfer service counts progress events, and multipart fetch "
                "of one giant layer has gone quiet for its whole download (containerd#12811)"
            )
        return how
    return {
        RuntimeKind.CRIO: "CRI-O counts progress events (every timeout/10); unpacking a layer "
        "may send none (derived, unverified)",
        RuntimeKind.CRI_DOCKERD: "any pull message resets it, but aborts during Extracting of "
        "large layers are reported (cri-dockerd#372, #376)",
        RuntimeKind.DOCKER: "dockershim: any pull message resets it; extraction can be silent",
    }[rt.kind]


def deadline_step(p: NodeProfile) -> Step:
    """The pull progress deadline, or why it stays unset."""
    rt = p.runtime
    default: float | None = None
    if rt is not None:
        default, exists = _runtime_default_deadline(rt)
        unset = _left_unset(rt, default, exists)
        if unset is not None:
            return unset
    parts = _terms(p, default)
    value = minutes_up(max(v for _, v in parts))
    why = Justification(
        _KEY,
        format_go_duration(value),
        "max("
        + ", ".join(label for label, _ in parts)
        + "), up to whole minutes; "
        + _silence_explained(rt),
        " | ".join(f"{label} = {v:.0f} s" for label, v in parts),
    )
    return Step(values={_KEY: value}, justifications=(why,))
