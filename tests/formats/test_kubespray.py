"""kubespray group_vars: the variable table, reading, rendering and merging."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind
from mlnode.formats.kubespray import (
    KUBESPRAY_VARIABLES,
    TEMPLATE_ALWAYS_WRITES,
    Target,
    merge_kubespray,
    read_kubespray,
    render_kubespray,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import kubelet_setting_by_field
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

DATA = Path(__file__).parent.parent / "data" / "formats"
CONTAINERD = RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 13))
SAMPLE = "kubespray-k8s-cluster.yml"


def _opt(s: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | s


settings_strategy = st.builds(
    ImageSettings,
    image_gc_high_threshold_percent=_opt(st.integers(1, 100)),
    image_gc_low_threshold_percent=_opt(st.integers(0, 99)),
    image_minimum_gc_age_seconds=_opt(st.integers(0, 10**6).map(float)),
    image_maximum_gc_age_seconds=_opt(st.integers(0, 10**7).map(float)),
    image_pull_progress_deadline_seconds=_opt(st.integers(0, 7200).map(float)),
    serialize_image_pulls=_opt(st.booleans()),
    max_parallel_image_pulls=_opt(st.integers(1, 10)),
    eviction_hard=_opt(
        st.dictionaries(
            st.sampled_from(["memory.available", "imagefs.available"]),
            st.sampled_from(["10%", "15%", "100Mi"]),
            min_size=1,
        )
    ),
    max_concurrent_downloads=_opt(st.integers(1, 8)),
)
placements = st.builds(
    place,
    settings_strategy,
    st.sampled_from([Version(1, 23), Version(1, 29), Version(1, 31)]),
    st.sampled_from(
        [
            CONTAINERD,
            RuntimeSpec(RuntimeKind.CRIO, Version(1, 31, 9)),
            RuntimeSpec(RuntimeKind.DOCKER),
        ]
    ),
)


def test_table_is_consistent() -> None:
    names = [r.variable for r in KUBESPRAY_VARIABLES]
    assert len(names) == len(set(names))
    for row in KUBESPRAY_VARIABLES:
        assert row.since.startswith("v2.")
        assert row.source
        if row.target == "field":
            assert kubelet_setting_by_field(row.setting) is not None
    assert "maxParallelImagePulls" in TEMPLATE_ALWAYS_WRITES


def test_read_sample() -> None:
    doc = read_kubespray("k8s-cluster.yml", (DATA / SAMPLE).read_text())
    assert doc.kind is DocumentKind.KUBESPRAY
    assert [(f.field, f.value, f.origin.line, f.origin.detail) for f in doc.fields] == [
        (
            "evictionHard",
            {"memory.available": "100Mi", "nodefs.available": "10%", "imagefs.available": "10%"},
            7,
            "eviction_hard",
        ),
        ("imageGCHighThresholdPercent", 90, 12, "kubelet_image_gc_high_threshold"),
        ("imageGCLowThresholdPercent", 85, 13, "kubelet_image_gc_low_threshold"),
        ("imageMinimumGCAge", "30m0s", 17, "kubelet_config_extra_args"),
        ("maxParallelImagePulls", 3, 18, "kubelet_config_extra_args"),
        ("serializeImagePulls", False, 19, "kubelet_config_extra_args"),
    ]
    assert [(f.name, f.value, f.origin.line) for f in doc.flags] == [
        ("image-pull-progress-deadline", "30m", 22),
        ("node-status-max-images", "100", 23),
    ]
    (rv,) = doc.runtime_values
    assert (rv.name, rv.value, rv.origin.line) == ("image_pull_progress_timeout", "10m", 25)
    assert doc.facts.extra_args_duplicating_template == ("maxParallelImagePulls",)
    assert {v.name for v in doc.variables} >= {"kube_config_dir", "kube_network_plugin"}


def test_templated_and_string_flags() -> None:
    text = (
        'kubelet_image_gc_high_threshold: "{{ gc_high }}"\n'
        'kubelet_custom_flags: "--v=2 --image-gc-low-threshold=70"\n'
        "kubelet_feature_gates: ['ImageMaximumGCAge=true']\n"
    )
    doc = read_kubespray("g", text)
    assert doc.facts.templated == ("kubelet_image_gc_high_threshold",)
    assert doc.facts.flags_given_as_string == ("kubelet_custom_flags",)
    assert [f.name for f in doc.flags] == ["v", "image-gc-low-threshold"]
    assert doc.facts.feature_gates == {"ImageMaximumGCAge": True}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("kubelet_config_extra_args: [1]\n", 1, "mapping of KubeletConfiguration fields"),
        ("kubelet_custom_flags:\n  - 3\n", 2, "entries must be strings"),
        ("kubelet_feature_gates: [Foo]\n", 1, "Gate=true"),
        ("- a\n", 1, "mapping of variables"),
        ("a: b: c\n", 1, "not valid YAML"),
    ],
)
def test_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as e:
        read_kubespray("g.yml", text)
    assert e.value.line == line
    assert message in str(e.value)


def test_empty_file() -> None:
    assert read_kubespray("g", "# nothing\n").fields == ()


def test_render_uses_dedicated_variables() -> None:
    p = Placement(
        Version(1, 31),
        CONTAINERD,
        kubelet_fields={
            "imageGCHighThresholdPercent": 85,
            "maxParallelImagePulls": 4,
            "imageMinimumGCAge": "1h0m0s",
        },
        feature_gates={"ImageMaximumGCAge": True},
    )
    text = render_kubespray(p)
    body = [x for x in text.splitlines() if not x.startswith("#")]
    assert body == [
        "kubelet_image_gc_high_threshold: 85",
        "kubelet_max_parallel_image_pulls: 4",
        "kubelet_config_extra_args:",
        "  imageMinimumGCAge: 1h0m0s",
        "kubelet_feature_gates:",
        "- ImageMaximumGCAge=true",
    ]


def test_render_notes_what_kubespray_cannot_set() -> None:
    p = place(ImageSettings(max_concurrent_downloads=5), Version(1, 31), CONTAINERD)
    assert "# NOT SET: containerd max_concurrent_downloads" in render_kubespray(p)


def test_merge_sample() -> None:
    text = (DATA / SAMPLE).read_text()
    p = Placement(
        Version(1, 31),
        CONTAINERD,
        kubelet_fields={"imageGCHighThresholdPercent": 80, "maxParallelImagePulls": 4},
    )
    out = merge_kubespray(text, "g", p, remove_flags=frozenset({"image-pull-progress-deadline"}))
    expected = (
        text.replace("kubelet_image_gc_high_threshold: 90", "kubelet_image_gc_high_threshold: 80")
        .replace("  maxParallelImagePulls: 3   # duplicates the template's own key\n", "")
        .replace('  - "--image-pull-progress-deadline=30m"\n', "")
        + "kubelet_max_parallel_image_pulls: 4\n"
    )
    assert out == expected
    assert merge_kubespray(out, "g", p) == out


def test_merge_gates_copies_kube_feature_gates() -> None:
    text = "kube_feature_gates:\n  - Foo=true\n"
    p = Placement(Version(1, 29), CONTAINERD, feature_gates={"ImageMaximumGCAge": True})
    out = merge_kubespray(text, "g", p)
    assert read_kubespray("g", out).facts.feature_gates == {
        "Foo": True,
        "ImageMaximumGCAge": True,
    }


def test_merge_custom_flags_item_with_several_flags() -> None:
    text = 'kubelet_custom_flags:\n  - "--v=2 --image-gc-high-threshold=90"\n'
    p = Placement(Version(1, 29), CONTAINERD, kubelet_fields={"imageGCHighThresholdPercent": 85})
    out = merge_kubespray(text, "g", p)
    assert 'kubelet_custom_flags:\n  - "--v=2"\n' in out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements)
def test_render_read_render(p: Placement) -> None:
    text = render_kubespray(p)
    doc = read_kubespray("g", text)
    fields = {f.field: f.value for f in doc.fields}
    assert fields == dict(p.kubelet_fields)
    assert {f.name: f.value for f in doc.flags} == dict(p.kubelet_flags)
    assert doc.facts.feature_gates == dict(p.feature_gates)
    assert not doc.facts.extra_args_duplicating_template
    again = Placement(
        p.kubernetes_version,
        p.runtime,
        fields,
        {f.name: f.value or "" for f in doc.flags},
        doc.facts.feature_gates,
        p.runtime_values,
    )
    assert render_kubespray(again) == text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements)
# Placed fields with dedicated variables, one of them (maxParallelImagePulls) already in the
# sample's kubelet_config_extra_args, where the template writes it too.
@example(
    place(
        ImageSettings(
            image_gc_high_threshold_percent=80,
            image_gc_low_threshold_percent=70,
            serialize_image_pulls=False,
            max_parallel_image_pulls=4,
        ),
        Version(1, 31),
        CONTAINERD,
    )
)
def test_merge_idempotent_keeps_unrelated(p: Placement) -> None:
    text = (DATA / SAMPLE).read_text()
    once = merge_kubespray(text, "g", p)
    assert merge_kubespray(once, "g", p) == once
    for line in ("kube_config_dir: /etc/kubernetes", "# Extra KubeletConfiguration fields"):
        assert line in once
    doc = read_kubespray("g", once)
    got = {f.field: f.value for f in doc.fields}
    for fld, value in p.kubelet_fields.items():
        assert got[fld] == value
    # A placed field with a dedicated kubespray variable is written through it and leaves
    # kubelet_config_extra_args, so kubelet-config.yaml never holds a placed key twice.
    dedicated = {r.setting for r in KUBESPRAY_VARIABLES if r.target is Target.FIELD}
    extra_args = {f.field for f in doc.fields if f.origin.detail == "kubelet_config_extra_args"}
    assert not (set(p.kubelet_fields) & dedicated) & extra_args
    assert not set(p.kubelet_fields) & set(doc.facts.extra_args_duplicating_template)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_read_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        read_kubespray("g", text)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("kubelet_image_gc_high_threshold: high\n", 1),
        ("x: 1\nkubelet_config_extra_args:\n  imageMinimumGCAge: 5\n", 3),
    ],
)
def test_undecodable_values_are_lint_errors(text: str, line: int) -> None:
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.versions import Version, parse_runtime

    doc = read_kubespray("g.yml", text)
    ctx = LintContext(Version(1, 30), parse_runtime("containerd@1.7.13"))
    [finding] = [f for f in lint_documents([doc], ctx).findings if f.code == "E103"]
    assert finding.origin is not None and finding.origin.line == line


def test_extra_arg_that_the_template_also_writes_is_a_lint_warning() -> None:
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.versions import Version, parse_runtime

    text = "kubelet_config_extra_args:\n  maxParallelImagePulls: 4\n  imageMinimumGCAge: 5m\n"
    doc = read_kubespray("k8s-cluster.yml", text)
    ctx = LintContext(Version(1, 30), parse_runtime("containerd@1.7.13"))
    [w] = [f for f in lint_documents([doc], ctx).findings if f.code == "W212"]
    assert w.origin is not None and w.origin.line == 2
    assert "maxParallelImagePulls" in w.message
