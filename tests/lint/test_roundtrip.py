"""Whatever render writes, lint accepts with no error, and render → read → render is stable."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlnode.formats.detect import read_any
from mlnode.formats.render import NotApplicable, RenderFormat, carries, render_text
from mlnode.knowledge.model import ImageSettings, Layer
from mlnode.knowledge.placement import place
from mlnode.knowledge.table import kubelet_setting_by_field, kubelet_setting_by_flag
from mlnode.knowledge.validation import validate_kubelet
from mlnode.lint.effective import compute_effective
from mlnode.lint.engine import LintContext, lint_documents
from mlnode.lint.findings import Severity
from mlnode.versions import RuntimeKind, RuntimeSpec, Version, parse_runtime

RUNTIMES = [
    "containerd@1.6.20",
    "containerd@1.7.13",
    "containerd@1.7.2",
    "containerd@2.0.0",
    "containerd@2.3.0",
    "crio@1.31.3",
    "crio@1.33.0",
    "cri-dockerd@0.3.9",
    "docker",
]
FILE_FORMATS = [f for f in RenderFormat if f is not RenderFormat.ALL]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[ImageSettings, Version, RuntimeSpec]:
    minor = draw(st.integers(20, 35))
    runtime = parse_runtime(draw(st.sampled_from(RUNTIMES)))
    high = draw(st.integers(1, 100))
    low = draw(st.integers(0, high - 1))
    values: dict[str, Any] = {
        "image_gc_high_threshold_percent": high,
        "image_gc_low_threshold_percent": low,
    }
    if draw(st.booleans()):
        values["image_pull_progress_deadline_seconds"] = float(draw(st.integers(0, 4 * 3600)))
    if draw(st.booleans()):
        values["image_minimum_gc_age_seconds"] = float(draw(st.integers(1, 3600)))
    if draw(st.booleans()):
        values["registry_pull_qps"] = draw(st.integers(0, 50))
    if draw(st.booleans()):
        values["serialize_image_pulls"] = False
        if minor >= 27:
            values["max_parallel_image_pulls"] = draw(st.integers(1, 8))
    if minor >= 30 and draw(st.booleans()):
        values["image_maximum_gc_age_seconds"] = float(draw(st.integers(3601, 30 * 86400)))
    if draw(st.booleans()):
        values["eviction_hard"] = {
            "imagefs.available": f"{draw(st.integers(1, 30))}%",
            "nodefs.available": "10%",
            "memory.available": "100Mi",
            "nodefs.inodesFree": "5%",
            "imagefs.inodesFree": "5%",
        }
    return ImageSettings(**values), Version(1, minor), runtime


def _render_all(s: ImageSettings, k8s: Version, rt: RuntimeSpec) -> dict[RenderFormat, str]:
    placement = place(s, k8s, rt)
    out = {}
    for fmt in FILE_FORMATS:
        if not carries(fmt, placement):
            continue
        try:
            out[fmt] = render_text(fmt, placement)
        except NotApplicable:
            continue
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_render_then_lint_has_no_error_and_rereads_stably(
    case: tuple[ImageSettings, Version, RuntimeSpec],
) -> None:
    s, k8s, rt = case
    assert validate_kubelet(s.set_fields(), k8s, {"ImageMaximumGCAge": True}) == []
    placement = place(s, k8s, rt)
    refused = {r.key for r in placement.refusals}
    expected = {k: v for k, v in s.set_fields().items() if k not in refused}
    rendered = _render_all(s, k8s, rt)
    for fmt, text in rendered.items():
        name = f"/node/{fmt.value}" + (".conf" if fmt is RenderFormat.KUBELET_DROPIN else "")
        docs = read_any(name, text)
        ctx = LintContext(kubernetes_version=k8s, runtime=rt)
        report = lint_documents(docs, ctx)
        errors = [f for f in report.findings if f.severity is Severity.ERROR]
        assert errors == [], (fmt, text, errors)
        eff = compute_effective(docs, k8s, rt)
        read_back = {
            k: sv.value
            for k, sv in {**eff.kubelet, **eff.runtime}.items()
            if sv.layer is not Layer.DEFAULT
        }
        # Each format carries its share of the settings; what it carries must read back equal.
        for key, value in read_back.items():
            assert expected.get(key) == value, (fmt, key, text)
        assert set(read_back) == _carried(fmt, placement), (fmt, text)
        # Rendering what was read back gives the same bytes (kubespray also lists, as
        # comments, the settings it has no variable for, so it gets the rest too).
        base = {k: v for k, v in expected.items() if k not in read_back}
        again_settings = {**base, **read_back} if fmt is RenderFormat.KUBESPRAY else read_back
        again = render_text(fmt, place(ImageSettings(**again_settings), k8s, rt))
        assert again == text, (fmt, text, again)


def _carried(fmt: RenderFormat, placement: Any) -> set[str]:
    """The settings a format holds for a placement (the others live in other files)."""
    fields = {kubelet_setting_by_field(f).key for f in placement.kubelet_fields}  # type: ignore[union-attr]
    flags = {kubelet_setting_by_flag(f).key for f in placement.kubelet_flags}  # type: ignore[union-attr]
    runtime = {pv.row.key for pv in placement.runtime_values}
    if fmt in (RenderFormat.CONTAINERD, RenderFormat.CRIO):
        return runtime
    if fmt is RenderFormat.ENV:
        return flags
    if fmt in (RenderFormat.KUBELET_CONFIG, RenderFormat.KUBELET_DROPIN):
        return fields
    if fmt is RenderFormat.KUBEADM:
        return fields | flags
    containerd = (
        runtime if placement.runtime.kind in (RuntimeKind.CONTAINERD, RuntimeKind.CRIO) else set()
    )
    return fields | flags | containerd
