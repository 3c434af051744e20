"""From a node profile to recommended image settings, with every number's arithmetic.

:func:`make_plan` is pure: a :class:`~mlnode.planning.profile.NodeProfile` in, a
:class:`Plan` out, no I/O. The formulas (docs/plan.md explains them at length):

Footprints, per largest image (S compressed, U unpacked)::

    peak     = S + U          while a pull runs, the compressed blob and the snapshot both
                              exist (containerd's content store; CRI-O's temporary blob)
    resident = S + U          after the pull, on containerd unless discard_unpacked_layers
             = U              on CRI-O, Docker/cri-dockerd, or with discard_unpacked_layers

Pull time with N pulls sharing a link of B bytes/s, unpacking at R bytes/s::

    t_pull = S·N/B + U/R      (download, then unpack: runtime-testbed.md measured them in
                              sequence, unpack ≈ half the wall time)

What can land on the image disk in one image-GC period (P = 300 s)::

    need = N · peak · max(1, P / t_pull)  +  growth_per_hour · P / 3600

High threshold: GC looks at the disk once per P, so the room between the high threshold
and the eviction line (``imagefs.available`` E%, default 15) must absorb ``need``::

    high = floor(100 − E − 100·need/C)          so (100 − E − high)% · C ≥ need

Low threshold: GC frees down to low; the gap must free at least one largest image, or the
next pull triggers GC again at once::

    low = high − ceil(100·resident/C)

What GC can never free (other data D, plus the N images running pods use) must sit below
high, or usage never drops under high and the headroom is fiction; if it sits above low,
the plan is safe but every GC run deletes every unused image (a warning)::

    D + N·resident < high% · C        (and, for a working cache, ≤ low% · C)

No integer pair satisfying ``0 ≤ low < high ≤ 100`` and these → ``feasible=False`` with
the reason and the smallest image disk that would work.

Minimum GC age ≥ 1.5 · t_pull (an image pulled for a pod that still waits for another
largest-image pull survives), whole minutes, never below the kubelet's 2m. Maximum GC age:
7 days, only on kubelets where the field exists and its gate is on by default (≥ 1.30).
Pull progress deadline: ``max(runtime default, 5m, 3 · longest expected silence)``, where
silence is the registry stall for byte-counting runtimes (containerd), plus a largest
layer's download (containerd ≥ 2.1, progress events) or unpack (CRI-O, Docker) time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnode.errors import MlnodeError
from mlnode.knowledge.model import SETTING_KEYS, ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import (
    KUBELET_SETTINGS,
    RUNTIME_SETTINGS,
    ValueKind,
    kubelet_setting_by_field,
    kubelet_setting_by_flag,
    runtime_settings_for,
)
from mlnode.planning._documents import load_document

# ML_DEFAULTS and MlDefault are re-exported: the defaults belong next to the planner.
from mlnode.planning.profile import ML_DEFAULTS, MlDefault, NodeProfile, format_rate
from mlnode.units import format_bytes, format_go_duration
from mlnode.versions import (
    RuntimeKind,
    RuntimeSpec,
    Version,
    parse_kubernetes_version,
    parse_runtime,
)

__all__ = [
    "GC_PERIOD_SECONDS",
    "MAXIMUM_GC_AGE_SECONDS",
    "MIN_AGE_SAFETY",
    "ML_DEFAULTS",
    "PLAN_SCHEMA",
    "PULL_DEADLINE_FLOOR_SECONDS",
    "PULL_DEADLINE_SAFETY",
    "Home",
    "Justification",
    "MlDefault",
    "Plan",
    "PlanNumbers",
    "load_plan_settings",
    "make_plan",
    "plan_to_json",
]

PLAN_SCHEMA = "mlnode.plan/v1"
GC_PERIOD_SECONDS = 300.0  # ImageGCPeriod (kubelet.go)
MIN_AGE_SAFETY = 1.5
KUBELET_MIN_AGE_DEFAULT_SECONDS = 120.0
MAXIMUM_GC_AGE_SECONDS = 7 * 24 * 3600.0
PULL_DEADLINE_SAFETY = 3.0
# containerd's own default since v1.7.10, chosen after 1m killed large pulls (#9347).
PULL_DEADLINE_FLOOR_SECONDS = 300.0

_PARALLEL_PULLS_SINCE = Version(1, 27)
_MAX_GC_AGE_FIELD_SINCE = Version(1, 29)
_MAX_GC_AGE_GATE_ON_SINCE = Version(1, 30)
_FIRST_DETECTED_FIXED_SINCE = Version(1, 29)  # [main] uses time.Now(); ≤1.28 the zero time
_CONTAINERD_PROGRESS_EVENTS_SINCE = Version(2, 1)


@dataclass(frozen=True)
class Justification:
    """One line of arithmetic behind one value: "headroom = ... = 20% ≥ ... = 155 GiB"."""

    setting: str  # an ImageSettings key, or a derived quantity ("headroom", "need")
    value: str  # as the operator will see it written ("76", "12m0s", "unset")
    formula: str
    numbers: str

    def __str__(self) -> str:
        return f"{self.setting} = {self.value}: {self.formula}; {self.numbers}"


@dataclass(frozen=True)
class Home:
    """Where one setting goes for the profile's versions."""

    setting: str
    target: str  # "kubelet config", "kubelet flag", "feature gate", "containerd", "refused"
    name: str  # field, flag, gate, TOML key path; "" for refusals
    value: Any  # as written in the file; the reason for refusals
    file: str  # the file (or place) it is written to


@dataclass(frozen=True)
class PlanNumbers:
    """The intermediate quantities, in bytes, seconds and percent."""

    peak_footprint_bytes: int
    resident_footprint_bytes: int
    effective_concurrent_pulls: int
    pull_seconds: float
    download_seconds: float
    unpack_seconds: float
    images_per_pull_slot_per_period: float
    growth_per_period_bytes: int
    need_bytes: int
    need_percent: float
    gap_percent: int
    unremovable_bytes: int
    unremovable_percent: int


@dataclass(frozen=True)
class Plan:
    profile: NodeProfile
    settings: ImageSettings
    feasible: bool
    reason: str | None
    numbers: PlanNumbers
    justifications: tuple[Justification, ...]
    placement: Placement | None
    homes: tuple[Home, ...]
    files: tuple[str, ...]
    warnings: tuple[str, ...]
    minimum_capacity_bytes: int | None = None  # set when infeasible and some disk would do


# ---------------------------------------------------------------------------------------
# Arithmetic


def _keeps_blobs(profile: NodeProfile) -> bool:
    """Whether the compressed blobs stay on disk next to the snapshot after a pull."""
    rt = profile.runtime
    if rt is None:
        return not profile.discard_unpacked_layers  # unknown: assume containerd
    if rt.kind is RuntimeKind.CONTAINERD:
        return not profile.discard_unpacked_layers
    return False  # containers/storage and Docker keep only unpacked layers


def _effective_pulls(profile: NodeProfile) -> int:
    k8s = profile.kubernetes_version
    if profile.concurrent_pulls > 1 and k8s is not None and not k8s.at_least(_PARALLEL_PULLS_SINCE):
        return 1
    return profile.concurrent_pulls


def _numbers(profile: NodeProfile) -> PlanNumbers:
    c = profile.image_disk_capacity_bytes
    s, u = profile.largest_image_bytes, profile.largest_image_unpacked_bytes
    n = _effective_pulls(profile)
    peak = s + u
    resident = s + u if _keeps_blobs(profile) else u
    download = s * n / profile.link_bandwidth_bytes_per_second
    unpack = u / profile.unpack_bytes_per_second
    t_pull = download + unpack
    per_slot = max(1.0, GC_PERIOD_SECONDS / t_pull)
    growth = math.ceil(profile.other_writers_growth_bytes_per_hour * GC_PERIOD_SECONDS / 3600)
    need = math.ceil(n * peak * per_slot) + growth
    unremovable = profile.other_data_bytes + n * resident
    return PlanNumbers(
        peak_footprint_bytes=peak,
        resident_footprint_bytes=resident,
        effective_concurrent_pulls=n,
        pull_seconds=t_pull,
        download_seconds=download,
        unpack_seconds=unpack,
        images_per_pull_slot_per_period=per_slot,
        growth_per_period_bytes=growth,
        need_bytes=need,
        need_percent=100.0 * need / c,
        gap_percent=math.ceil(100.0 * resident / c - 1e-9),
        unremovable_bytes=unremovable,
        unremovable_percent=math.ceil(100.0 * unremovable / c - 1e-9),
    )


def _thresholds(profile: NodeProfile, nums: PlanNumbers) -> tuple[int, int] | str:
    """(high, low), or why no pair works."""
    e = profile.imagefs_eviction_percent
    c = profile.image_disk_capacity_bytes
    high = min(100, math.floor(100.0 - e - nums.need_percent + 1e-9))
    if high < 1:
        return (
            f"the room above the high threshold must hold {format_bytes(nums.need_bytes)} "
            f"({nums.need_percent:.1f}% of {format_bytes(c)}) below the eviction line at "
            f"{_pct(100 - e)}% used, which leaves no high threshold ≥ 1%"
        )
    low = high - nums.gap_percent
    if low < 0:
        return (
            f"high can be at most {high}%, and freeing one largest image "
            f"({format_bytes(nums.resident_footprint_bytes)} = {nums.gap_percent}% of "
            f"{format_bytes(c)}) would need low = {low}%"
        )
    if nums.unremovable_bytes >= high / 100 * c:
        return (
            f"high can be at most {high}% ({format_bytes(int(high / 100 * c))}), but what GC can "
            f"never free is already {format_bytes(nums.unremovable_bytes)}: other data "
            f"{format_bytes(profile.other_data_bytes)} + {nums.effective_concurrent_pulls} "
            f"in-use image(s) × {format_bytes(nums.resident_footprint_bytes)}; usage would "
            "stay above high and the headroom would not exist"
        )
    return high, low


def _feasible_at(profile: NodeProfile, capacity: int) -> bool:
    p = dataclasses.replace(profile, image_disk_capacity_bytes=capacity)
    return not isinstance(_thresholds(p, _numbers(p)), str)


def _minimum_capacity(profile: NodeProfile) -> int | None:
    """The smallest image disk (bytes, rounded up to a GiB) on which a plan exists."""
    hi = 1 << 50  # 1 PiB
    if not _feasible_at(profile, hi):
        return None
    lo = profile.image_disk_capacity_bytes
    while hi - lo > 1 << 20:
        mid = (lo + hi) // 2
        if _feasible_at(profile, mid):
            hi = mid
        else:
            lo = mid
    gib = 1 << 30
    return -(-hi // gib) * gib


def _pct(x: float) -> str:
    return f"{x:g}"


def _gib(n: float) -> str:
    return format_bytes(int(n))


def _minutes_up(seconds: float) -> float:
    return float(math.ceil(seconds / 60.0 - 1e-9) * 60)


def _runtime_default_deadline(rt: RuntimeSpec) -> tuple[float | None, bool]:
    """(default seconds or None, whether the runtime has the setting in this version)."""
    if rt.kind is RuntimeKind.DOCKER:
        row = next(r for r in KUBELET_SETTINGS if r.key == "image_pull_progress_deadline_seconds")
        return float(row.default), True
    rows = [
        r
        for r in runtime_settings_for(rt.kind, rt.version)
        if r.key == "image_pull_progress_deadline_seconds"
    ]
    if not rows:
        return None, False
    return float(rows[0].default), True


def make_plan(profile: NodeProfile) -> Plan:
    """Recommend image settings for ``profile``; infeasible disks give ``feasible=False``."""
    p = profile
    c = p.image_disk_capacity_bytes
    k8s, rt = p.kubernetes_version, p.runtime
    nums = _numbers(p)
    just: list[Justification] = []
    warnings: list[str] = []
    values: dict[str, Any] = {}

    s_txt, u_txt = _gib(p.largest_image_bytes), _gib(p.largest_image_unpacked_bytes)
    n = nums.effective_concurrent_pulls
    just.append(
        Justification(
            "pull time",
            f"{nums.pull_seconds:.0f} s",
            "t_pull = S × N / bandwidth + U / unpack rate",
            f"{s_txt} × {n} / {format_rate(p.link_bandwidth_bytes_per_second)} = "
            f"{nums.download_seconds:.0f} s + {u_txt} / "
            f"{p.unpack_bytes_per_second / 1e6:g} MB/s = {nums.unpack_seconds:.0f} s",
        )
    )
    blobs = "compressed blob + unpacked snapshot"
    just.append(
        Justification(
            "need",
            _gib(nums.need_bytes),
            "need = N pulls × peak (S + U) × max(1, 300 s / t_pull) + growth in 300 s",
            f"{n} × ({s_txt} + {u_txt}, {blobs}) × {nums.images_per_pull_slot_per_period:.2f}"
            f" + {_gib(p.other_writers_growth_bytes_per_hour)}/h × 5 min "
            f"({_gib(nums.growth_per_period_bytes)}) = {_gib(nums.need_bytes)} "
            f"= {nums.need_percent:.1f}% of {_gib(c)}",
        )
    )

    # ---- thresholds
    result = _thresholds(p, nums)
    feasible = not isinstance(result, str)
    reason: str | None = None
    minimum: int | None = None
    e = p.imagefs_eviction_percent
    if isinstance(result, str):
        minimum = _minimum_capacity(p)
        reason = f"no GC thresholds fit a {_gib(c)} image disk: {result}"
        if minimum is not None:
            reason += f". This profile needs an image disk of at least {_gib(minimum)}"
            if n > 1:
                reason += " (or fewer concurrent pulls)"
    else:
        high, low = result
        values["image_gc_high_threshold_percent"] = high
        values["image_gc_low_threshold_percent"] = low
        headroom = (100 - e - high) / 100 * c
        just.append(
            Justification(
                "image_gc_high_threshold_percent",
                str(high),
                "largest integer with (100 − eviction% − high) × capacity ≥ need",
                f"headroom = 100 − {_pct(e)} (imagefs.available eviction) − {high} = "
                f"{_pct(100 - e - high)}% of {_gib(c)} = {_gib(headroom)} ≥ need "
                f"{_gib(nums.need_bytes)}; high {high} < {_pct(100 - e)} so GC acts before "
                "eviction",
            )
        )
        just.append(
            Justification(
                "image_gc_low_threshold_percent",
                str(low),
                "low = high − ceil(one resident largest image / capacity): GC frees down to "
                "low, so one more largest image fits before GC runs again",
                f"{high} − ceil({_gib(nums.resident_footprint_bytes)} / {_gib(c)} = "
                f"{100 * nums.resident_footprint_bytes / c:.1f}%) = {low}; GC can reach it: "
                f"{low}% = {_gib(low / 100 * c)} "
                + ("≥" if nums.unremovable_bytes <= low / 100 * c else "< (see warnings)")
                + f" unremovable {_gib(nums.unremovable_bytes)} ({_gib(p.other_data_bytes)} "
                f"other data + {n} in-use × {_gib(nums.resident_footprint_bytes)})",
            )
        )
        if nums.unremovable_bytes > low / 100 * c:
            warnings.append(
                f"GC cannot get down to low ({low}% = {_gib(low / 100 * c)}): other data + "
                f"in-use images are {_gib(nums.unremovable_bytes)}, so every GC run deletes "
                "every unused image and the kubelet reports FreeDiskSpaceFailed; the disk is "
                "safe but keeps no image cache. A larger image disk keeps one"
            )
        if p.imagefs_eviction_percent == 0:
            warnings.append("imagefs eviction is off (0%): the headroom is measured to a full disk")

    # ---- minimum GC age
    min_age = max(KUBELET_MIN_AGE_DEFAULT_SECONDS, _minutes_up(MIN_AGE_SAFETY * nums.pull_seconds))
    values["image_minimum_gc_age_seconds"] = min_age
    just.append(
        Justification(
            "image_minimum_gc_age_seconds",
            format_go_duration(min_age),
            f"max(2m kubelet default, {MIN_AGE_SAFETY:g} × t_pull, up to whole minutes): "
            "a just-pulled image survives while its pod waits for another large pull",
            f"{MIN_AGE_SAFETY:g} × {nums.pull_seconds:.0f} s = "
            f"{MIN_AGE_SAFETY * nums.pull_seconds:.0f} s → {format_go_duration(min_age)}",
        )
    )
    if k8s is not None and not k8s.at_least(_FIRST_DETECTED_FIXED_SINCE):
        warnings.append(
            f"kubelet {k8s}: after a kubelet restart, images already on the node count as "
            "detected long ago, so imageMinimumGCAge does not protect them (fixed in 1.29)"
        )

    # ---- maximum GC age
    max_age_note: str
    if k8s is None:
        max_age_note = "kubelet version unknown: imageMaximumGCAge exists from 1.29 only"
    elif not k8s.at_least(_MAX_GC_AGE_FIELD_SINCE):
        max_age_note = f"kubelet {k8s} has no imageMaximumGCAge (it arrived in 1.29)"
    elif not k8s.at_least(_MAX_GC_AGE_GATE_ON_SINCE):
        max_age_note = (
            f"kubelet {k8s}: the ImageMaximumGCAge gate is alpha and off by default; "
            "mlnode does not turn on alpha gates"
        )
    else:
        max_age_note = ""
    if max_age_note:
        just.append(
            Justification(
                "image_maximum_gc_age_seconds", "unset", "left to the kubelet", max_age_note
            )
        )
    else:
        max_age = max(MAXIMUM_GC_AGE_SECONDS, min_age + 60)
        values["image_maximum_gc_age_seconds"] = max_age
        just.append(
            Justification(
                "image_maximum_gc_age_seconds",
                format_go_duration(max_age),
                "7 days: a weekly job keeps its image; stale images leave before the disk "
                "reaches high; must exceed the minimum GC age",
                f"a re-pull costs ≈{nums.pull_seconds / 60:.0f} min; acts only once the "
                f"kubelet has been up {format_go_duration(max_age)}",
            )
        )

    # ---- pulls in parallel
    if p.concurrent_pulls == 1:
        values["serialize_image_pulls"] = True
        just.append(
            Justification(
                "serialize_image_pulls",
                "true",
                "concurrent_pulls = 1",
                "one pull at a time; note every small pull waits behind a large one",
            )
        )
    elif n == 1:
        values["serialize_image_pulls"] = True
        assert k8s is not None
        warnings.append(
            f"kubelet {k8s} cannot cap parallel pulls (maxParallelImagePulls arrived in 1.27) "
            f"and serializeImagePulls=false would allow any number at once: pulls stay "
            f"serialized and the thresholds count 1 pull, not {p.concurrent_pulls}; upgrade "
            "the kubelet to pull several at once"
        )
        just.append(
            Justification(
                "serialize_image_pulls",
                "true",
                "kubelet < 1.27 has no maxParallelImagePulls",
                f"{p.concurrent_pulls} concurrent pulls wanted; uncapped parallelism could "
                "exceed the headroom",
            )
        )
    else:
        values["serialize_image_pulls"] = False
        values["max_parallel_image_pulls"] = p.concurrent_pulls
        just.append(
            Justification(
                "max_parallel_image_pulls",
                str(p.concurrent_pulls),
                "= concurrent_pulls, the number the headroom was sized for; needs "
                "serializeImagePulls=false",
                f"{p.concurrent_pulls} pulls × {_gib(nums.peak_footprint_bytes)} peak each",
            )
        )
        if k8s is None:
            warnings.append(
                "kubelet version unknown: maxParallelImagePulls needs kubelet ≥ 1.27; on an "
                "older kubelet serializeImagePulls=false leaves parallel pulls uncapped"
            )

    # ---- pull progress deadline
    deadline = _deadline(p, just, warnings)
    if deadline is not None:
        values["image_pull_progress_deadline_seconds"] = deadline

    if rt is not None and rt.kind is RuntimeKind.CONTAINERD:
        just.append(
            Justification(
                "max_concurrent_downloads",
                "unset",
                "containerd's default (3 layers per pull) is kept",
                "one giant layer is one download whatever this says; more connections only "
                "split the same link",
            )
        )

    settings = ImageSettings(**values)

    # ---- where it goes
    placement: Placement | None = None
    homes: tuple[Home, ...] = ()
    files: tuple[str, ...] = ()
    if k8s is not None and rt is not None:
        placement = place(settings, k8s, rt)
        homes, files = _homes(placement)
        warnings.extend(placement.warnings)
    else:
        missing = " and ".join(
            w for w, v in (("kubelet version", k8s), ("runtime", rt)) if v is None
        )
        warnings.append(
            f"{missing} unknown: pass --kubernetes-version X.Y and --runtime KIND@X.Y.Z to "
            "see where each setting goes"
        )

    return Plan(
        profile=p,
        settings=settings,
        feasible=feasible,
        reason=reason,
        numbers=nums,
        justifications=tuple(just),
        placement=placement,
        homes=homes,
        files=files,
        warnings=tuple(warnings),
        minimum_capacity_bytes=minimum,
    )


def _deadline(p: NodeProfile, just: list[Justification], warnings: list[str]) -> float | None:
    rt = p.runtime
    key = "image_pull_progress_deadline_seconds"
    if rt is not None:
        default, exists = _runtime_default_deadline(rt)
        if not exists:
            if rt.kind is RuntimeKind.CONTAINERD:
                warnings.append(
                    f"{rt} has no pull progress deadline (image_pull_progress_timeout arrived "
                    "in 1.7.0; 1.6 ignores the key): a stalled pull hangs until its pod is "
                    "deleted. Upgrade to containerd ≥ 1.7.10"
                )
            just.append(
                Justification(key, "unset", f"{rt} has no pull progress deadline", "nothing to set")
            )
            return None
        if default == 0:
            just.append(
                Justification(
                    key,
                    "unset",
                    f"{rt}: pull_progress_timeout is 0 (off) by default",
                    "no deadline to raise; mlnode leaves it off rather than add a way for "
                    "large pulls to fail",
                )
            )
            return None
    else:
        default = None

    parts: list[tuple[str, float]] = [
        ("floor (containerd's 5m since 1.7.10, #9347)", PULL_DEADLINE_FLOOR_SECONDS),
        (
            f"{PULL_DEADLINE_SAFETY:g} × registry stall {p.registry_stall_seconds:g} s",
            PULL_DEADLINE_SAFETY * p.registry_stall_seconds,
        ),
    ]
    if default is not None:
        parts.append((f"{rt} default", default))
    per_pull_rate = p.link_bandwidth_bytes_per_second / _effective_pulls(p)
    layer_unpacked = p.largest_layer_bytes * p.unpack_ratio
    if rt is None or rt.kind in (RuntimeKind.CRIO, RuntimeKind.CRI_DOCKERD, RuntimeKind.DOCKER):
        parts.append(
            (
                f"{PULL_DEADLINE_SAFETY:g} × unpack of the largest layer "
                f"({_gib(layer_unpacked)} / {p.unpack_bytes_per_second / 1e6:g} MB/s)",
                PULL_DEADLINE_SAFETY * layer_unpacked / p.unpack_bytes_per_second,
            )
        )
    if rt is None or (
        rt.kind is RuntimeKind.CONTAINERD
        and rt.version is not None
        and rt.version.at_least(_CONTAINERD_PROGRESS_EVENTS_SINCE)
    ):
        parts.append(
            (
                f"{PULL_DEADLINE_SAFETY:g} × download of the largest layer "
                f"({_gib(p.largest_layer_bytes)} at {format_rate(per_pull_rate)})",
                PULL_DEADLINE_SAFETY * p.largest_layer_bytes / per_pull_rate,
            )
        )
    value = _minutes_up(max(v for _, v in parts))
    how = {
        None: "runtime unknown: the largest of every runtime's terms",
        RuntimeKind.CONTAINERD: "containerd counts bytes read from the registry: silence "
        "comes from registry stalls, not layer size"
        + (
            "; from 2.1 the transfer service counts progress events, and multipart fetch "
            "of one giant layer has gone quiet for its whole download (containerd#12811)"
            if rt is not None
            and rt.version is not None
            and rt.version.at_least(_CONTAINERD_PROGRESS_EVENTS_SINCE)
            else ""
        ),
        RuntimeKind.CRIO: "CRI-O counts progress events (every timeout/10); unpacking a layer "
        "may send none (derived, unverified)",
        RuntimeKind.CRI_DOCKERD: "any pull message resets it, but aborts during Extracting of "
        "large layers are reported (cri-dockerd#372, #376)",
        RuntimeKind.DOCKER: "dockershim: any pull message resets it; extraction can be silent",
    }[rt.kind if rt is not None else None]
    just.append(
        Justification(
            key,
            format_go_duration(value),
            "max(" + ", ".join(label for label, _ in parts) + "), up to whole minutes; " + how,
            " | ".join(f"{label} = {v:.0f} s" for label, v in parts),
        )
    )
    return value


_HOME_FILES = {
    "kubelet config": "KubeletConfiguration (/var/lib/kubelet/config.yaml or a --config-dir "
    "drop-in)",
    "kubelet flag": "kubelet flags (KUBELET_EXTRA_ARGS in /etc/default/kubelet)",
    "feature gate": "KubeletConfiguration featureGates",
    RuntimeKind.CONTAINERD.value: "/etc/containerd/config.toml",
    RuntimeKind.CRIO.value: "/etc/crio/crio.conf.d/*.conf",
    RuntimeKind.CRI_DOCKERD.value: "cri-dockerd flags (its systemd unit)",
}


def _homes(pl: Placement) -> tuple[tuple[Home, ...], tuple[str, ...]]:
    homes: list[Home] = []
    for fld, value in pl.kubelet_fields.items():
        row = kubelet_setting_by_field(fld)
        homes.append(
            Home(
                row.key if row else fld, "kubelet config", fld, value, _HOME_FILES["kubelet config"]
            )
        )
    for flag, value in pl.kubelet_flags.items():
        row = kubelet_setting_by_flag(flag)
        homes.append(
            Home(
                row.key if row else flag,
                "kubelet flag",
                f"--{flag}",
                value,
                _HOME_FILES["kubelet flag"],
            )
        )
    for gate, on in pl.feature_gates.items():
        homes.append(
            Home(gate, "feature gate", f"featureGates.{gate}", on, _HOME_FILES["feature gate"])
        )
    for pv in pl.runtime_values:
        r = pv.row
        kind = r.runtime.value
        if r.table:
            table = ".".join(f"'{t}'" if "." in t else t for t in r.table)
            name = f"[{table}] {r.name}"
            file = _HOME_FILES[kind]
            if r.config_version is not None:
                file += f" (version = {r.config_version})"
        else:
            name, file = f"--{r.name}", _HOME_FILES.get(kind, kind)
        homes.append(Home(r.key, kind, name, pv.value, file))
    for ref in pl.refusals:
        homes.append(Home(ref.key, "refused", "", ref.reason, ""))
    files = tuple(dict.fromkeys(h.file for h in homes if h.file))
    return tuple(homes), files


# ---------------------------------------------------------------------------------------
# JSON


def _json_value(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_json_value(x) for x in v]
    if isinstance(v, Version | RuntimeSpec):
        return str(v)
    return v


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The ``mlnode.plan/v1`` document (docs/plan.md describes every key)."""
    pl = plan.placement
    placement: dict[str, Any] | None = None
    if pl is not None:
        placement = {
            "kubernetes_version": str(pl.kubernetes_version),
            "runtime": str(pl.runtime),
            "kubelet_fields": _json_value(pl.kubelet_fields),
            "kubelet_flags": _json_value(pl.kubelet_flags),
            "feature_gates": _json_value(pl.feature_gates),
            "runtime_values": [
                {
                    "key": pv.row.key,
                    "runtime": pv.row.runtime.value,
                    "table": list(pv.row.table),
                    "name": pv.row.name,
                    "value": _json_value(pv.value),
                    "config_version": pv.row.config_version,
                }
                for pv in pl.runtime_values
            ],
            "refusals": [{"key": r.key, "reason": r.reason} for r in pl.refusals],
            "homes": [dataclasses.asdict(h) for h in plan.homes],
            "files": list(plan.files),
        }
    return {
        "schema": PLAN_SCHEMA,
        "feasible": plan.feasible,
        "reason": plan.reason,
        "minimum_capacity_bytes": plan.minimum_capacity_bytes,
        "settings": _json_value(plan.settings.set_fields()),
        "justifications": [dataclasses.asdict(j) for j in plan.justifications],
        "numbers": dataclasses.asdict(plan.numbers),
        "profile": plan.profile.to_json(),
        "sources": dict(plan.profile.sources),
        "placement": placement,
        "warnings": list(plan.warnings),
    }


_KINDS: dict[str, ValueKind] = {r.key: r.kind for r in KUBELET_SETTINGS}
for _r in RUNTIME_SETTINGS:
    _KINDS.setdefault(_r.key, _r.kind)


def _setting_value(key: str, raw: Any) -> Any:
    kind = _KINDS.get(key, ValueKind.INT)
    if kind is ValueKind.BOOL:
        if not isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not true or false")
        return raw
    if kind in (ValueKind.INT, ValueKind.PERCENT):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"{raw!r} is not a whole number")
        if kind is ValueKind.PERCENT and not 0 <= raw <= 100:
            raise ValueError(f"{raw} is not a percent from 0 to 100")
        return raw
    if kind is ValueKind.DURATION:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            raise ValueError(f"{raw!r} is not a number of seconds ≥ 0")
        return float(raw)
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in raw.items()
    ):
        raise ValueError(f"{raw!r} is not a mapping of signal to quantity")
    return dict(raw)


def load_plan_settings(
    path: Path | str,
) -> tuple[ImageSettings, Version | None, RuntimeSpec | None]:
    """Read a ``mlnode plan --output json`` file back: its settings and versions.

    Raises InputError with ``file:line`` for a wrong schema, unknown setting keys, values of
    the wrong type, thresholds out of order, unknown versions, and an infeasible plan
    (whose settings would leave the disk unsafe).
    """
    doc = load_document(path, what="plan")
    schema = doc.data.get("schema")
    if schema != PLAN_SCHEMA:
        raise doc.error(
            f"schema is {schema!r}, expected {PLAN_SCHEMA!r} (write it with "
            "`mlnode plan --output json`)",
            "schema",
        )
    feasible = doc.data.get("feasible")
    if feasible is not True:
        if feasible is False:
            raise doc.error(
                f"the plan is not feasible: {doc.data.get('reason') or 'no reason given'}; "
                "there are no safe settings to render",
                "feasible",
            )
        raise doc.error(f"feasible must be true or false, not {feasible!r}", "feasible")
    raw_settings = doc.data.get("settings")
    if not isinstance(raw_settings, Mapping):
        raise doc.error("settings must be a mapping of setting keys to values", "settings")
    values: dict[str, Any] = {}
    for key, raw in raw_settings.items():
        if key not in SETTING_KEYS:
            raise doc.error(
                f"unknown setting {key!r} (known: {', '.join(SETTING_KEYS)})", "settings", key
            )
        if raw is None:
            continue
        try:
            values[key] = _setting_value(key, raw)
        except ValueError as e:
            raise doc.error(f"settings.{key}: {e}", "settings", key) from e
    high = values.get("image_gc_high_threshold_percent")
    low = values.get("image_gc_low_threshold_percent")
    if high is not None and low is not None and not low < high:
        raise doc.error(
            f"image_gc_low_threshold_percent {low} must be less than "
            f"image_gc_high_threshold_percent {high}",
            "settings",
            "image_gc_low_threshold_percent",
        )
    settings = ImageSettings(**values)

    profile = doc.data.get("profile")
    if profile is not None and not isinstance(profile, Mapping):
        raise doc.error("profile must be a mapping", "profile")
    profile = profile or {}
    k8s: Version | None = None
    runtime: RuntimeSpec | None = None
    try:
        if profile.get("kubernetes_version") is not None:
            k8s = parse_kubernetes_version(
                str(profile["kubernetes_version"]), option="profile.kubernetes_version"
            )
    except MlnodeError as e:
        raise doc.error(str(e), "profile", "kubernetes_version") from e
    try:
        if profile.get("runtime") is not None:
            runtime = parse_runtime(str(profile["runtime"]), option="profile.runtime")
    except MlnodeError as e:
        raise doc.error(str(e), "profile", "runtime") from e
    return settings, k8s, runtime
