"""The lint rules. Input: parsed documents and the node's versions. Output: findings.

Each rule is a small function over the documents and the effective settings; the
knowledge (which flag was removed when, which wording the kubelet uses, where a setting
lives) comes from :mod:`mlnode.knowledge`, so the rules hold no version numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.knowledge.flags import known_flags
from mlnode.knowledge.model import ImageSettings, Layer, Origin
from mlnode.knowledge.placement import place
from mlnode.knowledge.table import (
    RUNTIME_SETTINGS,
    config_dir_support,
    eviction_hard_defaults,
    kubelet_setting,
    kubelet_setting_by_field,
    kubelet_setting_by_flag,
    removed_flag,
    runtime_settings_for,
)
from mlnode.knowledge.validation import startup_failure_message, validate_kubelet
from mlnode.knowledge.values import parse_flag_value
from mlnode.lint.effective import EffectiveSettings, compute_effective, runtime_row_for
from mlnode.lint.findings import Finding, Severity
from mlnode.units import format_bytes, format_go_duration, parse_go_duration
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

__all__ = ["LintContext", "LintReport", "lint_documents"]

# Settings whose loss on `kubeadm upgrade` matters to an ML node.
_KUBEADM_LOSES = (
    "image_gc_high_threshold_percent",
    "image_gc_low_threshold_percent",
    "image_minimum_gc_age_seconds",
    "image_maximum_gc_age_seconds",
    "serialize_image_pulls",
    "max_parallel_image_pulls",
    "eviction_hard",
)


@dataclass(frozen=True)
class LintContext:
    kubernetes_version: Version
    runtime: RuntimeSpec
    image_disk_bytes: int | None = None
    largest_image_bytes: int | None = None
    # True when the documents are the whole node (--root): absence of something is then
    # evidence, not just "not in the files given".
    whole_node: bool = False


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    effective: EffectiveSettings
    documents: tuple[ParsedDocument, ...] = field(default=())

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out


def _runtime_home_fix(key: str, value: Any, ctx: LintContext) -> str:
    """Where this setting goes for the node's versions, as an instruction."""
    placement = place(ImageSettings(**{key: value}), ctx.kubernetes_version, ctx.runtime)
    parts = []
    for pv in placement.runtime_values:
        table = ".".join(f'"{t}"' if "." in t else t for t in pv.row.table)
        if pv.row.table:
            parts.append(
                f"set {pv.row.name} = {_toml(pv.value)} under [{table}] in the"
                f" {ctx.runtime.kind.value} config ({ctx.runtime})"
            )
        else:
            parts.append(f"pass --{pv.row.name}={pv.value} to {ctx.runtime.kind.value}")
    for fieldname, fv in placement.kubelet_fields.items():
        parts.append(f"set {fieldname}: {fv} in the KubeletConfiguration")
    for flag, fv in placement.kubelet_flags.items():
        parts.append(f"pass --{flag}={fv}")
    for refusal in placement.refusals:
        parts.append(f"no home on this node: {refusal.reason}")
    return "; ".join(parts)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


Rule = Callable[[Sequence[ParsedDocument], EffectiveSettings, LintContext], Iterable[Finding]]


def _flags(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    k8s = ctx.kubernetes_version
    accepted = known_flags(k8s)
    unchecked: list[str] = []
    for doc in docs:
        for flag in doc.flags:
            removed = removed_flag(flag.name, k8s)
            row = kubelet_setting_by_flag(flag.name)
            if removed is not None:
                fix = removed.fix
                if row is not None and row.key == "image_pull_progress_deadline_seconds":
                    value = eff_value_of_flag(row.key, flag.value)
                    if value is not None:
                        fix = _runtime_home_fix(row.key, value, ctx) + f" (and remove {flag.text})"
                yield Finding(
                    "E101",
                    f"--{flag.name} was removed in Kubernetes {removed.removed_in} "
                    f"({removed.why}); this is kubelet {k8s}",
                    'the kubelet does not start: "failed to parse kubelet flag: unknown flag: '
                    f'--{flag.name}" (a systemd restart loop; the node goes NotReady)',
                    fix,
                    flag.origin,
                )
                continue
            if row is not None and row.flag_deprecated_since is not None:
                if (
                    row.key == "image_pull_progress_deadline_seconds"
                    and ctx.runtime.kind is not RuntimeKind.DOCKER
                ):
                    value = eff_value_of_flag(row.key, flag.value)
                    yield Finding(
                        "W202",
                        f"--{flag.name} only ever worked with dockershim; the runtime here is "
                        f"{ctx.runtime}",
                        "the flag is accepted but does nothing: pulls keep the runtime's own "
                        "deadline",
                        (_runtime_home_fix(row.key, value, ctx) if value is not None else "")
                        + f"; remove {flag.text}",
                        flag.origin,
                    )
                elif row.key == "image_pull_progress_deadline_seconds" and k8s.at_least(
                    row.flag_deprecated_since
                ):
                    yield Finding(
                        "W203",
                        f"--{flag.name} is deprecated since {row.flag_deprecated_since} and is"
                        " removed in 1.24 with dockershim",
                        "an upgrade to 1.24 with this flag stops the kubelet from starting",
                        "plan the move to cri-dockerd, containerd >= 1.7 or CRI-O, where the "
                        "deadline lives in the runtime",
                        flag.origin,
                    )
                elif row.field and row.field_span.contains(k8s):
                    yield Finding(
                        "W205",
                        f"{flag.text} sets {row.field} as a flag",
                        "it works, but the flag is deprecated and silently overrides the "
                        "config file, so the two drift apart",
                        f"set {row.field} in the KubeletConfiguration (a --config-dir drop-in "
                        f"where supported) and remove {flag.text}",
                        flag.origin,
                    )
            if accepted is None:
                if row is None and flag.name not in ("config", "config-dir", "feature-gates"):
                    unchecked.append(flag.name)
                continue
            if flag.name not in accepted:
                yield Finding(
                    "E102",
                    f"--{flag.name} is not a flag of kubelet {k8s}",
                    'the kubelet does not start: "failed to parse kubelet flag: unknown flag: '
                    f'--{flag.name}"',
                    "remove it, or check its spelling against `kubelet --help`",
                    flag.origin,
                )
    if unchecked:
        yield Finding(
            "I302",
            f"mlnode has no flag list for kubelet {k8s.major}.{k8s.minor}: "
            + ", ".join(f"--{n}" for n in sorted(set(unchecked)))
            + " not checked",
            "an unknown flag would stop the kubelet; mlnode cannot tell for these",
            "check them against `kubelet --help` of this version",
            None,
        )


def eff_value_of_flag(key: str, text: str | None) -> Any:
    try:
        return parse_flag_value(kubelet_setting(key), text)
    except ValueError:
        return None


def _problems(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for p in eff.problems:
        runtime_key = any(r.key == p.key and r.name in p.message for r in RUNTIME_SETTINGS)
        who = ctx.runtime.kind.value if runtime_key else "the kubelet"
        yield Finding(
            "E103",
            p.message,
            f"{who} refuses this configuration and does not start",
            "write the value in the form the comment or docs show (e.g. a Go duration such as "
            '"30m0s", a whole number for percents)',
            p.origin,
        )


def _validation(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    values = {k: sv.value for k, sv in eff.kubelet.items() if sv.layer is not Layer.DEFAULT}
    failures = validate_kubelet(values, ctx.kubernetes_version, eff.feature_gates)
    for failure in failures:
        origins = [eff.kubelet[k].origin for k in failure.keys if eff.kubelet[k].origin]
        code = "E105" if failure.rule == "max-gc-age-gate" else "E104"
        fix = {
            "gc-low-below-high": "make imageGCLowThresholdPercent lower than "
            "imageGCHighThresholdPercent (to turn GC off, set high to 100 and low below it)",
            "max-gc-age-gate": "enable featureGates.ImageMaximumGCAge or remove imageMaximumGCAge",
            "max-gc-age-above-min": "make imageMaximumGCAge longer than imageMinimumGCAge",
            "max-parallel-needs-parallel": "set serializeImagePulls: false",
        }.get(failure.rule, "use a value in the range the message gives")
        yield Finding(
            code,
            failure.message,
            "the kubelet does not start: "
            f'"{startup_failure_message([failure], ctx.kubernetes_version)}"',
            fix,
            origins[-1] if origins else None,
        )


def _config_dir(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    support = config_dir_support(ctx.kubernetes_version)
    env_names = {a.name for d in docs for a in d.env}
    for d in docs:
        env_names.update(d.facts.get("environment", {}) or {})
    for doc in docs:
        for flag in doc.flags:
            if flag.name != "config-dir":
                continue
            if not support.supported:
                yield Finding(
                    "E106",
                    f"--config-dir does not exist in kubelet {ctx.kubernetes_version}"
                    " (added in 1.28)",
                    'the kubelet does not start: "unknown flag: --config-dir"',
                    "put the settings in the --config file instead",
                    flag.origin,
                )
            elif support.env_required and support.env_required not in env_names:
                consequence = (
                    'the kubelet does not start: "flag --config-dir specified but environment '
                    f'variable {support.env_required} not set, cannot start kubelet"'
                )
                yield Finding(
                    "E106" if ctx.whole_node else "W203",
                    f"--config-dir needs {support.env_required} in the kubelet's environment in"
                    f" {ctx.kubernetes_version}, and "
                    + (
                        "the node's units do not set it"
                        if ctx.whole_node
                        else "the files given do not set it"
                    ),
                    consequence,
                    f"add Environment={support.env_required}=<dir> in a kubelet.service drop-in,"
                    " or use the --config file",
                    flag.origin,
                )
    for doc in docs:
        untyped = not doc.facts.get("api_version") or not doc.facts.get("kind")
        if doc.kind is DocumentKind.KUBELET_DROPIN and support.requires_type_meta and untyped:
            yield Finding(
                "E107",
                f"drop-in {doc.path} has no apiVersion/kind",
                'the kubelet does not start: "failed to load kubelet dropin file, path: '
                f'{doc.path}, no apiVersion/kind"',
                "start the file with apiVersion: kubelet.config.k8s.io/v1beta1 and "
                "kind: KubeletConfiguration",
                Origin(doc.path, 1),
            )


def _fields_unknown(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        for occ in doc.fields:
            row = kubelet_setting_by_field(occ.field)
            if row is None or row.field_span.contains(ctx.kubernetes_version):
                continue
            since = ", ".join(str(p) for p in row.field_span.since)
            yield Finding(
                "W211",
                f"{occ.field} does not exist in kubelet {ctx.kubernetes_version}"
                f" (it arrived in {since})",
                'strict decoding fails, the kubelet falls back to lenient decoding ("Using '
                'lenient decoding as strict decoding failed") and ignores the field',
                f"remove it, or upgrade the kubelet to {since} or later",
                occ.origin,
            )


def _runtime_keys(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    names = {(r.runtime, r.name) for r in RUNTIME_SETTINGS if r.table}
    for doc in docs:
        if doc.kind not in (DocumentKind.CONTAINERD, DocumentKind.CRIO):
            continue
        file_runtime = (
            RuntimeKind.CONTAINERD if doc.kind is DocumentKind.CONTAINERD else (RuntimeKind.CRIO)
        )
        for rv in doc.runtime_values:
            if (file_runtime, rv.name) not in names:
                continue
            if file_runtime is not ctx.runtime.kind:
                continue
            row = runtime_row_for(rv.name, rv.table, ctx.runtime, doc.facts.get("config_version"))
            if row is not None:
                continue
            here = [
                r
                for r in runtime_settings_for(ctx.runtime.kind, ctx.runtime.version)
                if r.name == rv.name
            ]
            if here:
                table = ".".join(here[0].table)
                msg = (
                    f"{rv.name} is under [{'.'.join(rv.table)}], but {ctx.runtime} reads it"
                    f" from [{table}]"
                )
            else:
                msg = f"{ctx.runtime} has no {rv.name}"
                if ctx.runtime.kind is RuntimeKind.CONTAINERD:
                    msg += " (it arrived in containerd 1.7.0)"
            yield Finding(
                "W201",
                msg,
                f"{ctx.runtime.kind.value} ignores unknown keys silently: pulls get no progress "
                "deadline from this line",
                _runtime_home_fix("image_pull_progress_deadline_seconds", rv_seconds(rv.value), ctx)
                if rv.name in ("image_pull_progress_timeout", "pull_progress_timeout")
                else "move the key to the table this version reads",
                rv.origin,
            )


def rv_seconds(value: Any) -> float:
    try:
        return parse_go_duration(str(value))
    except ValueError:
        return 0.0


def _gc(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    high = eff.kubelet["image_gc_high_threshold_percent"]
    max_age = eff.kubelet.get("image_maximum_gc_age_seconds")
    if high.value == 100 and not (max_age and max_age.value):
        yield Finding(
            "W204",
            "imageGCHighThresholdPercent is 100: image garbage collection never runs for space",
            "images pile up until imagefs eviction evicts pods (or the disk fills)",
            "set imageGCHighThresholdPercent below 100 (see `mlnode plan`)",
            high.origin,
        )
    if ctx.image_disk_bytes and ctx.largest_image_bytes and isinstance(high.value, int):
        headroom = ctx.image_disk_bytes * (100 - high.value) // 100
        if headroom < ctx.largest_image_bytes:
            yield Finding(
                "W206",
                f"headroom above the GC threshold is {100 - high.value}% of "
                f"{format_bytes(ctx.image_disk_bytes)} = {format_bytes(headroom)}, less than the "
                f"largest image {format_bytes(ctx.largest_image_bytes)}",
                "a pull of the largest image can fill the disk before GC (every 5 minutes) "
                "acts; the pull fails with no space left on device",
                "lower imageGCHighThresholdPercent so that (100 - high)% of the disk holds the "
                "largest image (see `mlnode plan --image-disk ... --largest-image ...`)",
                high.origin,
            )
    evict = eff.kubelet["eviction_hard"]
    if isinstance(evict.value, dict) and isinstance(high.value, int):
        pct = str(evict.value.get("imagefs.available", "")).rstrip()
        if pct.endswith("%"):
            try:
                evict_pct = float(pct[:-1])
            except ValueError:
                evict_pct = -1
            if evict_pct > 0 and high.value > 100 - evict_pct:
                yield Finding(
                    "W210",
                    f"image GC starts at {high.value}% used but imagefs eviction fires at "
                    f"{100 - evict_pct:g}% used (imagefs.available<{pct})",
                    "pods are evicted for disk pressure before image GC gets a chance to run",
                    f"set imageGCHighThresholdPercent below {100 - evict_pct:g}",
                    high.origin or evict.origin,
                )


def _eviction(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    merge = eff.kubelet.get("merge_default_eviction_settings")
    if merge is not None and merge.value is True:
        return
    defaults = eviction_hard_defaults(ctx.kubernetes_version)
    evict = eff.kubelet["eviction_hard"]
    if evict.layer is Layer.DEFAULT or not isinstance(evict.value, dict):
        return
    missing = sorted(set(defaults) - set(evict.value))
    if missing:
        yield Finding(
            "W207",
            "evictionHard sets " + ", ".join(sorted(evict.value)) + " only",
            "the kubelet sets "
            + ", ".join(f"{m} (default {defaults[m]})" for m in missing)
            + " to 0: no hard eviction for them",
            "list every signal you want to keep"
            + (
                " or set mergeDefaultEvictionSettings: true"
                if ctx.kubernetes_version.at_least(Version(1, 33))
                else ""
            ),
            evict.origin,
        )


def _overrides(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for key, values in eff.history.items():
        flags = [v for v in values if v.layer is Layer.FLAG]
        files = [v for v in values if v.layer in (Layer.CONFIG_FILE, Layer.DROP_IN)]
        if not flags or not files:
            continue
        winner = flags[-1]
        for fv in files:
            row = kubelet_setting(key)
            yield Finding(
                "W208",
                f"{winner.raw} overrides {row.field} = {_show(row.kind.value, fv.value)} set at "
                f"{fv.origin}",
                "the config file's value has no effect while the flag is there",
                f"keep one: remove {winner.raw}, or remove {row.field} from {fv.origin}",
                winner.origin,
            )


def _show(kind: str, value: Any) -> str:
    return format_go_duration(value) if kind == "duration" else str(value)


def _kubeadm_managed(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        managed = doc.facts.get("kubeadm_managed") or doc.path.endswith(
            "/var/lib/kubelet/config.yaml"
        )
        if doc.kind is not DocumentKind.KUBELET_CONFIG or not managed:
            continue
        for occ in doc.fields:
            row = kubelet_setting_by_field(occ.field)
            if row is None or row.key not in _KUBEADM_LOSES:
                continue
            if occ.value in ("0s", 0) or occ.value == row.default:
                continue  # what kubeadm itself writes: nothing of the operator's to lose
            yield Finding(
                "W209",
                f"{occ.field} is set in {doc.path}, which kubeadm writes",
                "`kubeadm upgrade` (and `kubeadm upgrade node phase kubelet-config`) rewrite this"
                " file from the kube-system/kubelet-config ConfigMap: the value is lost",
                "put it in a --config-dir drop-in (1.28+) or in the kubelet-config ConfigMap; "
                "`mlnode apply` does this",
                occ.origin,
            )


def _kubespray_duplicates(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    for doc in docs:
        if doc.kind is not DocumentKind.KUBESPRAY:
            continue
        duplicated = set(doc.facts.get("extra_args_duplicating_template") or ())
        for occ in doc.fields:
            if occ.field not in duplicated or occ.origin.detail != "kubelet_config_extra_args":
                continue
            yield Finding(
                "W212",
                f"kubelet_config_extra_args sets {occ.field}, which kubespray's kubelet-config"
                " template also writes",
                "the rendered kubelet-config.yaml holds the key twice; the kubelet's lenient"
                " decoding keeps the template's later value, so this one has no effect",
                "use kubespray's own variable for it (see `mlnode render --format kubespray`)",
                occ.origin,
            )


def _deadline_info(
    docs: Sequence[ParsedDocument], eff: EffectiveSettings, ctx: LintContext
) -> Iterable[Finding]:
    rows = [
        r
        for r in runtime_settings_for(ctx.runtime.kind, ctx.runtime.version)
        if r.key == "image_pull_progress_deadline_seconds"
    ]
    if ctx.runtime.kind is RuntimeKind.DOCKER:
        return
    if not rows:
        return
    sv = eff.runtime.get("image_pull_progress_deadline_seconds")
    if sv is not None and sv.layer is Layer.DEFAULT:
        sv = None
    seconds = sv.value if sv is not None else rows[0].default
    where = f"set at {sv.origin}" if sv is not None else f"{ctx.runtime}'s default"
    meaning = (
        "no deadline: a stalled pull hangs until something cancels it"
        if seconds == 0
        else (
            f"a pull with no new byte for {format_go_duration(seconds)} is cancelled and starts "
            "again from byte 0"
        )
    )
    yield Finding(
        "I301",
        f"pull progress deadline is {format_go_duration(seconds)} ({where})",
        meaning,
        "see `mlnode plan` for a deadline fitted to your registry and link",
        sv.origin if sv else None,
    )


RULES: tuple[Rule, ...] = (
    _flags,
    _problems,
    _validation,
    _config_dir,
    _fields_unknown,
    _runtime_keys,
    _gc,
    _eviction,
    _overrides,
    _kubeadm_managed,
    _kubespray_duplicates,
    _deadline_info,
)


def lint_documents(docs: Iterable[ParsedDocument], ctx: LintContext) -> LintReport:
    documents = tuple(docs)
    eff = compute_effective(documents, ctx.kubernetes_version, ctx.runtime)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(documents, eff, ctx))
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings.sort(
        key=lambda f: (
            order[f.severity],
            f.origin.path if f.origin else "",
            (f.origin.line or 0) if f.origin else 0,
            f.code,
        )
    )
    return LintReport(tuple(findings), eff, documents)
