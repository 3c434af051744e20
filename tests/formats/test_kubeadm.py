"""kubeadm config files: kubeletExtraArgs (map / v1beta4 list) and the KubeletConfiguration."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError, UsageError
from mlnode.formats.facts import KubeletConfigFacts
from mlnode.formats.kubeadm import (
    kubeadm_api_version_for,
    kubelet_configmap_name,
    merge_kubeadm,
    read_kubeadm,
    render_kubeadm,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

DATA = Path(__file__).parent.parent / "data" / "formats"
CONTAINERD = RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 13))
DOCKER = RuntimeSpec(RuntimeKind.DOCKER)
REMOVE = frozenset({"image-pull-progress-deadline"})


def _opt(s: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | s


settings_strategy = st.builds(
    ImageSettings,
    image_gc_high_threshold_percent=_opt(st.integers(1, 100)),
    image_gc_low_threshold_percent=_opt(st.integers(0, 99)),
    image_minimum_gc_age_seconds=_opt(st.integers(0, 10**6).map(float)),
    image_pull_progress_deadline_seconds=_opt(st.integers(0, 7200).map(float)),
    serialize_image_pulls=_opt(st.booleans()),
    max_parallel_image_pulls=_opt(st.integers(1, 10)),
)
placements = st.builds(
    place,
    settings_strategy,
    st.sampled_from([Version(1, 21), Version(1, 23), Version(1, 29), Version(1, 31)]),
    st.sampled_from([CONTAINERD, DOCKER]),
)


def test_read_v1beta3() -> None:
    docs = read_kubeadm("init.yaml", (DATA / "kubeadm-init-v1beta3.yaml").read_text())
    assert [d.facts.kind for d in docs] == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
    ]
    init, cluster, kubelet = docs
    assert [(f.name, f.value, f.origin.line, f.text) for f in init.flags] == [
        ("image-gc-high-threshold", "90", 7, "--image-gc-high-threshold=90"),
        ("image-pull-progress-deadline", "30m", 8, "--image-pull-progress-deadline=30m"),
        ("node-labels", "gpu=true", 9, "--node-labels=gpu=true"),
    ]
    assert init.flags[0].origin.detail == "InitConfiguration.nodeRegistration.kubeletExtraArgs"
    assert cluster.facts.kubernetes_version == "v1.28.4"
    assert [(f.field, f.value, f.origin.line) for f in kubelet.fields] == [
        ("cgroupDriver", "systemd", 19),
        ("imageMinimumGCAge", "24h0m0s", 21),
        ("serializeImagePulls", False, 22),
    ]


def test_read_v1beta4_list() -> None:
    docs = read_kubeadm("init.yaml", (DATA / "kubeadm-init-v1beta4.yaml").read_text())
    assert [(f.name, f.value, f.origin.line) for f in docs[0].flags] == [
        ("node-labels", "gpu=true", 6),
        ("image-gc-high-threshold", "90", 8),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\nnodeRegistration:\n"
            "  kubeletExtraArgs:\n    image-gc-high-threshold: 90\n",
            5,
            "value must be a string",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n"
            "  kubeletExtraArgs:\n    image-gc-high-threshold: '90'\n",
            5,
            "must be a list of {name, value}",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n"
            "  kubeletExtraArgs:\n  - value: '1'\n",
            5,
            "without name",
        ),
        ("kind: InitConfiguration\n", 1, "without apiVersion and kind"),
        ("a: 1\n---\nb: [\n", 4, "not valid YAML"),
    ],
)
def test_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as e:
        read_kubeadm("k.yaml", text)
    assert e.value.line == line
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("k8s", "api"),
    [
        (Version(1, 21), "kubeadm.k8s.io/v1beta2"),
        (Version(1, 22), "kubeadm.k8s.io/v1beta3"),
        (Version(1, 30), "kubeadm.k8s.io/v1beta3"),
        (Version(1, 31), "kubeadm.k8s.io/v1beta4"),
    ],
)
def test_api_version_for(k8s: Version, api: str) -> None:
    assert kubeadm_api_version_for(k8s) == api


def test_configmap_name() -> None:
    assert kubelet_configmap_name(Version(1, 23, 4)) == "kubelet-config-1.23"
    assert kubelet_configmap_name(Version(1, 24)) == "kubelet-config"


def test_render_with_flags_v1beta4() -> None:
    p = Placement(Version(1, 31), DOCKER, {"imageGCHighThresholdPercent": 85}, {"foo": "1"})
    text = render_kubeadm(p)
    assert "kube-system/kubelet-config" in text
    assert "kubeadm upgrade node phase kubelet-config" in text
    init, kubelet = read_kubeadm("r", text)
    assert init.facts.kind == "InitConfiguration"
    assert init.facts.api_version == "kubeadm.k8s.io/v1beta4"
    assert [(f.name, f.value) for f in init.flags] == [("foo", "1")]
    assert "  - name: foo\n    value: '1'" in text
    assert [(f.field, f.value) for f in kubelet.fields] == [("imageGCHighThresholdPercent", 85)]


def test_render_join_carries_flags_only() -> None:
    """kubeadm join ignores a KubeletConfiguration in its file: the field becomes its flag."""
    p = Placement(Version(1, 31), DOCKER, {"imageGCHighThresholdPercent": 85}, {"foo": "1"})
    text = render_kubeadm(p, configuration="JoinConfiguration")
    assert "kube-system/kubelet-config" in text
    [join] = read_kubeadm("r", text)
    assert join.facts.kind == "JoinConfiguration"
    assert join.facts.api_version == "kubeadm.k8s.io/v1beta4"
    assert [(f.name, f.value) for f in join.flags] == [
        ("foo", "1"),
        ("image-gc-high-threshold", "85"),
    ]
    with pytest.raises(UsageError, match=r"^maxParallelImagePulls has no kubelet flag"):
        render_kubeadm(
            Placement(Version(1, 31), DOCKER, {"maxParallelImagePulls": 2}),
            configuration="JoinConfiguration",
        )


def test_render_without_flags_has_only_kubelet_config() -> None:
    p = Placement(Version(1, 28), CONTAINERD, {"maxParallelImagePulls": 3})
    docs = read_kubeadm("r", render_kubeadm(p))
    assert [d.facts.kind for d in docs] == ["KubeletConfiguration"]


def test_merge_v1beta3_keeps_comments() -> None:
    text = (DATA / "kubeadm-init-v1beta3.yaml").read_text()
    p = Placement(Version(1, 28), CONTAINERD, {"imageMinimumGCAge": "1h0m0s"})
    out = merge_kubeadm(text, "k", p, remove_flags=REMOVE)
    assert out == text.replace('    image-pull-progress-deadline: "30m"\n', "").replace(
        "imageMinimumGCAge: 24h0m0s", "imageMinimumGCAge: 1h0m0s"
    )
    assert merge_kubeadm(out, "k", p, remove_flags=REMOVE) == out


def test_merge_field_override_flag_removed_v1beta4_and_appends_kubelet_doc() -> None:
    text = (DATA / "kubeadm-init-v1beta4.yaml").read_text()
    p = Placement(Version(1, 31), CONTAINERD, {"imageGCHighThresholdPercent": 85})
    out = merge_kubeadm(text, "k", p)
    docs = read_kubeadm("k", out)
    assert [(f.name, f.value) for f in docs[0].flags] == [("node-labels", "gpu=true")]
    assert docs[-1].facts.kind == "KubeletConfiguration"
    assert [(f.field, f.value) for f in docs[-1].fields] == [("imageGCHighThresholdPercent", 85)]
    assert out.startswith(text.split("  - name: image-gc-high-threshold")[0])


def test_merge_sets_flag_in_map() -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n"
    p = Placement(Version(1, 23), DOCKER, {}, {"image-pull-progress-deadline": "30m0s"})
    out = merge_kubeadm(text, "k", p)
    assert (
        out
        == text
        + "nodeRegistration:\n  kubeletExtraArgs:\n    image-pull-progress-deadline: 30m0s\n"
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements)
def test_render_read_render(p: Placement) -> None:
    text = render_kubeadm(p)
    docs = read_kubeadm("r", text)
    flags = {f.name: f.value for d in docs for f in d.flags}
    fields = {f.field: f.value for d in docs for f in d.fields if f.field != "featureGates"}
    assert flags == dict(p.kubelet_flags)
    assert fields == dict(p.kubelet_fields)
    gates: dict[str, bool] = next(
        (d.facts.feature_gates for d in docs if isinstance(d.facts, KubeletConfigFacts)), {}
    )
    again = Placement(p.kubernetes_version, p.runtime, fields, flags, gates)  # type: ignore[arg-type]
    assert render_kubeadm(again) == text


_DEADLINE_FLAG = "image-pull-progress-deadline"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements, st.sampled_from(["kubeadm-init-v1beta3.yaml", "kubeadm-init-v1beta4.yaml"]))
# Both sides of the removal rule, whatever hypothesis draws: the placement does not place the
# flag (containerd), and it does (dockershim ≤ 1.23, where the deadline is a kubelet flag).
@example(
    place(ImageSettings(image_gc_high_threshold_percent=80), Version(1, 29), CONTAINERD),
    "kubeadm-init-v1beta3.yaml",
)
@example(
    place(ImageSettings(image_pull_progress_deadline_seconds=900.0), Version(1, 23), DOCKER),
    "kubeadm-init-v1beta3.yaml",
)
def test_merge_idempotent(p: Placement, sample: str) -> None:
    text = (DATA / sample).read_text()
    once = merge_kubeadm(text, "k", p, remove_flags=REMOVE)
    assert merge_kubeadm(once, "k", p, remove_flags=REMOVE) == once
    docs = read_kubeadm("k", once)
    flags = {f.name: f.value for d in docs for f in d.flags}
    assert flags.get("node-labels") == "gpu=true"
    for name, value in p.kubelet_flags.items():
        assert flags[name] == value
    # The sample's --image-pull-progress-deadline=30m is in remove_flags: it is gone unless
    # the placement itself puts the flag there, and then it has the placed value.
    assert flags.get(_DEADLINE_FLAG) == p.kubelet_flags.get(_DEADLINE_FLAG)
    if "v1beta3" in sample:
        assert "# kubeadm init --config kubeadm-init-v1beta3.yaml" in once


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_read_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        read_kubeadm("k", text)


def test_undecodable_value_in_kubelet_document_is_a_lint_error() -> None:
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.versions import parse_runtime

    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n---\n"
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "maxParallelImagePulls: many\n"
    )
    docs = read_kubeadm("k.yaml", text)
    ctx = LintContext(Version(1, 30), parse_runtime("containerd@1.7.13"))
    [finding] = [f for f in lint_documents(docs, ctx).findings if f.code == "E103"]
    assert finding.origin is not None and finding.origin.line == 6
