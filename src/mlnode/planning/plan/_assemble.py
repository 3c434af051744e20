"""Assembling a plan: each part's settings and arithmetic, in order, then where they go."""

from __future__ import annotations

from typing import Any

from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import kubelet_setting_by_field, kubelet_setting_by_flag
from mlnode.planning.plan._deadline import deadline_step
from mlnode.planning.plan._formulas import (
    FIRST_DETECTED_FIXED_SINCE,
    MAX_GC_AGE_FIELD_SINCE,
    MAX_GC_AGE_GATE_ON_SINCE,
    MIN_AGE_SAFETY,
    gib,
    maximum_gc_age_seconds,
    minimum_capacity,
    minimum_gc_age_seconds,
    pct,
    plan_numbers,
    thresholds,
)
from mlnode.planning.plan._model import Home, Justification, Plan, PlanNumbers, Step
from mlnode.planning.profile import NodeProfile, format_rate
from mlnode.units import format_go_duration
from mlnode.versions import RuntimeKind

__all__ = ["make_plan"]


def make_plan(profile: NodeProfile) -> Plan:
    """Recommend image settings for ``profile``; infeasible disks give ``feasible=False``."""
    p = profile
    nums = plan_numbers(p)
    gc_step, reason, minimum = _thresholds_step(p, nums)
    min_age = minimum_gc_age_seconds(nums)
    steps = (
        _pull_and_need_step(p, nums),
        gc_step,
        _minimum_age_step(p, nums, min_age),
        _maximum_age_step(p, nums, min_age),
        _parallel_pulls_step(p, nums),
        deadline_step(p),
        _downloads_step(p),
    )
    values: dict[str, Any] = {}
    for step in steps:
        values.update(step.values)
    settings = ImageSettings(**values)
    placement, homes, files, where_warnings = _where(p, settings)
    return Plan(
        profile=p,
        settings=settings,
        feasible=reason is None,
        reason=reason,
        numbers=nums,
        justifications=tuple(j for step in steps for j in step.justifications),
        placement=placement,
        homes=homes,
        files=files,
        warnings=tuple(w for step in steps for w in step.warnings) + where_warnings,
        minimum_capacity_bytes=minimum,
    )


def _pull_and_need_step(p: NodeProfile, nums: PlanNumbers) -> Step:
    """The two derived quantities every threshold rests on: pull time and need."""
    c = p.image_disk_capacity_bytes
    s_txt, u_txt = gib(p.largest_image_bytes), gib(p.largest_image_unpacked_bytes)
    n = nums.effective_concurrent_pulls
    pull = Justification(
        "pull time",
        f"{nums.pull_seconds:.0f} s",
        "t_pull = S × N / bandwidth + U / unpack rate",
        f"{s_txt} × {n} / {format_rate(p.link_bandwidth_bytes_per_second)} = "
        f"{nums.download_seconds:.0f} s + {u_txt} / "
        f"{p.unpack_bytes_per_second / 1e6:g} MB/s = {nums.unpack_seconds:.0f} s",
    )
    blobs = "compressed blob + unpacked snapshot"
    need = Justification(
        "need",
        gib(nums.need_bytes),
        "need = N pulls × peak (S + U) × max(1, 300 s / t_pull) + growth in 300 s",
        f"{n} × ({s_txt} + {u_txt}, {blobs}) × {nums.images_per_pull_slot_per_period:.2f}"
        f" + {gib(p.other_writers_growth_bytes_per_hour)}/h × 5 min "
        f"({gib(nums.growth_per_period_bytes)}) = {gib(nums.need_bytes)} "
        f"= {nums.need_percent:.1f}% of {gib(c)}",
    )
    return Step(justifications=(pull, need))


def _thresholds_step(p: NodeProfile, nums: PlanNumbers) -> tuple[Step, str | None, int | None]:
    """The GC thresholds; or, when none fit, why not and the smallest disk that would do."""
    c = p.image_disk_capacity_bytes
    n = nums.effective_concurrent_pulls
    result = thresholds(p, nums)
    if isinstance(result, str):
        minimum = minimum_capacity(p)
        reason = f"no GC thresholds fit a {gib(c)} image disk: {result}"
        if minimum is not None:
            reason += f". This profile needs an image disk of at least {gib(minimum)}"
            if n > 1:
                reason += " (or fewer concurrent pulls)"
        return Step(), reason, minimum
    high, low = result
    e = p.imagefs_eviction_percent
    headroom = (100 - e - high) / 100 * c
    high_why = Justification(
        "image_gc_high_threshold_percent",
        str(high),
        "largest integer with (100 − eviction% − high) × capacity ≥ need",
        f"headroom = 100 − {pct(e)} (imagefs.available eviction) − {high} = "
        f"{pct(100 - e - high)}% of {gib(c)} = {gib(headroom)} ≥ need "
        f"{gib(nums.need_bytes)}; high {high} < {pct(100 - e)} so GC acts before "
        "eviction",
    )
    low_why = Justification(
        "image_gc_low_threshold_percent",
        str(low),
        "low = high − ceil(one resident largest image / capacity): GC frees down to "
        "low, so one more largest image fits before GC runs again",
        f"{high} − ceil({gib(nums.resident_footprint_bytes)} / {gib(c)} = "
        f"{100 * nums.resident_footprint_bytes / c:.1f}%) = {low}; GC can reach it: "
        f"{low}% = {gib(low / 100 * c)} "
        + ("≥" if nums.unremovable_bytes <= low / 100 * c else "< (see warnings)")
        + f" unremovable {gib(nums.unremovable_bytes)} ({gib(p.other_data_bytes)} "
        f"other data + {n} in-use × {gib(nums.resident_footprint_bytes)})",
    )
    warnings: list[str] = []
    if nums.unremovable_bytes > low / 100 * c:
        warnings.append(
            f"GC cannot get down to low ({low}% = {gib(low / 100 * c)}): other data + "
            f"in-use images are {gib(nums.unremovable_bytes)}, so every GC run deletes "
            "every unused image and the kubelet reports FreeDiskSpaceFailed; the disk is "
            "safe but keeps no image cache. A larger image disk keeps one"
        )
    if p.imagefs_eviction_percent == 0:
        warnings.append("imagefs eviction is off (0%): the headroom is measured to a full disk")
    values = {"image_gc_high_threshold_percent": high, "image_gc_low_threshold_percent": low}
    return Step(values, (high_why, low_why), tuple(warnings)), None, None


def _minimum_age_step(p: NodeProfile, nums: PlanNumbers, min_age: float) -> Step:
    k8s = p.kubernetes_version
    why = Justification(
        "image_minimum_gc_age_seconds",
        format_go_duration(min_age),
        f"max(2m kubelet default, {MIN_AGE_SAFETY:g} × t_pull, up to whole minutes): "
        "a just-pulled image survives while its pod waits for another large pull",
        f"{MIN_AGE_SAFETY:g} × {nums.pull_seconds:.0f} s = "
        f"{MIN_AGE_SAFETY * nums.pull_seconds:.0f} s → {format_go_duration(min_age)}",
    )
    warnings: tuple[str, ...] = ()
    if k8s is not None and not k8s.at_least(FIRST_DETECTED_FIXED_SINCE):
        warnings = (
            f"kubelet {k8s}: after a kubelet restart, images already on the node count as "
            "detected long ago, so imageMinimumGCAge does not protect them (fixed in 1.29)",
        )
    return Step({"image_minimum_gc_age_seconds": min_age}, (why,), warnings)


def _maximum_age_step(p: NodeProfile, nums: PlanNumbers, min_age: float) -> Step:
    k8s = p.kubernetes_version
    key = "image_maximum_gc_age_seconds"
    note: str
    if k8s is None:
        note = "kubelet version unknown: imageMaximumGCAge exists from 1.29 only"
    elif not k8s.at_least(MAX_GC_AGE_FIELD_SINCE):
        note = f"kubelet {k8s} has no imageMaximumGCAge (it arrived in 1.29)"
    elif not k8s.at_least(MAX_GC_AGE_GATE_ON_SINCE):
        note = (
            f"kubelet {k8s}: the ImageMaximumGCAge gate is alpha and off by default; "
            "mlnode does not turn on alpha gates"
        )
    else:
        note = ""
    if note:
        return Step(justifications=(Justification(key, "unset", "left to the kubelet", note),))
    max_age = maximum_gc_age_seconds(min_age)
    why = Justification(
        key,
        format_go_duration(max_age),
        "7 days: a weekly job keeps its image; stale images leave before the disk "
        "reaches high; must exceed the minimum GC age",
        f"a re-pull costs ≈{nums.pull_seconds / 60:.0f} min; acts only once the "
        f"kubelet has been up {format_go_duration(max_age)}",
    )
    return Step({key: max_age}, (why,))


def _parallel_pulls_step(p: NodeProfile, nums: PlanNumbers) -> Step:
    k8s = p.kubernetes_version
    serialize = "serialize_image_pulls"
    if p.concurrent_pulls == 1:
        why = Justification(
            serialize,
            "true",
            "concurrent_pulls = 1",
            "one pull at a time; note every small pull waits behind a large one",
        )
        return Step({serialize: True}, (why,))
    if nums.effective_concurrent_pulls == 1:
        assert k8s is not None
        warning = (
            f"kubelet {k8s} cannot cap parallel pulls (maxParallelImagePulls arrived in 1.27) "
            f"and serializeImagePulls=false would allow any number at once: pulls stay "
            f"serialized and the thresholds count 1 pull, not {p.concurrent_pulls}; upgrade "
            "the kubelet to pull several at once"
        )
        why = Justification(
            serialize,
            "true",
            "kubelet < 1.27 has no maxParallelImagePulls",
            f"{p.concurrent_pulls} concurrent pulls wanted; uncapped parallelism could "
            "exceed the headroom",
        )
        return Step({serialize: True}, (why,), (warning,))
    why = Justification(
        "max_parallel_image_pulls",
        str(p.concurrent_pulls),
        "= concurrent_pulls, the number the headroom was sized for; needs "
        "serializeImagePulls=false",
        f"{p.concurrent_pulls} pulls × {gib(nums.peak_footprint_bytes)} peak each",
    )
    warnings: tuple[str, ...] = ()
    if k8s is None:
        warnings = (
            "kubelet version unknown: maxParallelImagePulls needs kubelet ≥ 1.27; on an "
            "older kubelet serializeImagePulls=false leaves parallel pulls uncapped",
        )
    values = {serialize: False, "max_parallel_image_pulls": p.concurrent_pulls}
    return Step(values, (why,), warnings)


def _downloads_step(p: NodeProfile) -> Step:
    rt = p.runtime
    if rt is None or rt.kind is not RuntimeKind.CONTAINERD:
        return Step()
    why = Justification(
        "max_concurrent_downloads",
        "unset",
        "containerd's default (3 layers per pull) is kept",
        "one giant layer is one download whatever this says; more connections only "
        "split the same link",
    )
    return Step(justifications=(why,))


def _where(
    p: NodeProfile, settings: ImageSettings
) -> tuple[Placement | None, tuple[Home, ...], tuple[str, ...], tuple[str, ...]]:
    """(placement, homes, files, warnings): where each setting goes, if the versions are known."""
    k8s, rt = p.kubernetes_version, p.runtime
    if k8s is not None and rt is not None:
        placement = place(settings, k8s, rt)
        homes, files = _homes(placement)
        return placement, homes, files, tuple(placement.warnings)
    missing = " and ".join(w for w, v in (("kubelet version", k8s), ("runtime", rt)) if v is None)
    warning = (
        f"{missing} unknown: pass --kubernetes-version X.Y and --runtime KIND@X.Y.Z to "
        "see where each setting goes"
    )
    return None, (), (), (warning,)


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
