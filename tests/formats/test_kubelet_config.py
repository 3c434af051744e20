"""KubeletConfiguration (--config file and --config-dir drop-ins): read, render, merge."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError, UsageError
from mlnode.formats.base import DocumentKind
from mlnode.formats.kubelet_config import (
    merge_kubelet_config,
    read_dropin_dir,
    read_kubelet_config,
    render_kubelet_config,
    render_kubelet_dropin,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

DATA = Path(__file__).parent.parent / "data" / "formats"
CONTAINERD = RuntimeSpec(RuntimeKind.CONTAINERD, Version(1, 7, 13))
HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

# --------------------------------------------------------------------------- strategies

SIGNALS = ("memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available")


def _opt(s: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | s


settings_strategy = st.builds(
    ImageSettings,
    image_gc_high_threshold_percent=_opt(st.integers(1, 100)),
    image_gc_low_threshold_percent=_opt(st.integers(0, 99)),
    image_minimum_gc_age_seconds=_opt(st.integers(0, 10**6).map(float)),
    image_maximum_gc_age_seconds=_opt(st.integers(0, 10**7).map(float)),
    serialize_image_pulls=_opt(st.booleans()),
    max_parallel_image_pulls=_opt(st.integers(1, 10)),
    registry_pull_qps=_opt(st.integers(0, 50)),
    eviction_hard=_opt(
        st.dictionaries(
            st.sampled_from(SIGNALS), st.sampled_from(["10%", "15%", "100Mi"]), min_size=1
        )
    ),
    node_status_max_images=_opt(st.integers(-1, 500)),
)
placements = st.builds(
    place,
    settings_strategy,
    st.sampled_from([Version(1, 22), Version(1, 27), Version(1, 29), Version(1, 31)]),
    st.just(CONTAINERD),
)


def placement(**fields: object) -> Placement:
    return Placement(Version(1, 31), CONTAINERD, kubelet_fields=fields)


# --------------------------------------------------------------------------- reading


def test_kubeadm_generated_config() -> None:
    doc = read_kubelet_config(
        "/var/lib/kubelet/config.yaml", (DATA / "kubeadm-1.30-config.yaml").read_text()
    )
    assert doc.kind is DocumentKind.KUBELET_CONFIG
    by = {f.field: f for f in doc.fields}
    assert by["imageMinimumGCAge"].value == "0s"
    assert by["imageMinimumGCAge"].origin.line == 27
    assert by["authentication"].origin.line == 2  # nested values keep the key's line
    assert by["authentication"].value["x509"] == {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}
    assert doc.facts.api_version == "kubelet.config.k8s.io/v1beta1"
    assert doc.facts.kubeadm_shape is True
    assert "imageMinimumGCAge" in doc.facts.zero_durations


def test_feature_gates_and_lines() -> None:
    text = (
        HEAD + "# gc\nimageGCHighThresholdPercent: 90\nfeatureGates:\n  ImageMaximumGCAge: true\n"
    )
    doc = read_kubelet_config("c", text)
    assert [(f.field, f.value, f.origin.line) for f in doc.fields] == [
        ("imageGCHighThresholdPercent", 90, 4),
        ("featureGates", {"ImageMaximumGCAge": True}, 5),
    ]
    assert doc.facts.feature_gates == {"ImageMaximumGCAge": True}
    assert doc.facts.kubeadm_shape is False


def test_duplicate_keys_last_wins() -> None:
    doc = read_kubelet_config("c", HEAD + "maxPods: 10\nmaxPods: 20\n")
    assert [(f.value, f.origin.line) for f in doc.fields] == [(20, 4)]
    assert doc.facts.duplicate_key_lines == {"maxPods": (3, 4)}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (HEAD + "a: [1\n", 4, "not valid YAML"),
        ("kind: KubeletConfiguration\nmaxPods: 1\n", 1, "apiVersion is missing"),
        ("apiVersion: kubelet.config.k8s.io/v1beta1\nmaxPods: 1\n", 1, "kind is missing"),
        ("apiVersion: v1\nkind: KubeletConfiguration\n", 1, "apiVersion 'v1'"),
        (HEAD.replace("KubeletConfiguration", "Pod"), 2, "kind 'Pod'"),
        ("- a\n", 1, "mapping"),
        ("", 1, "empty document"),
        (HEAD + "---\n" + HEAD, 4, "more than one"),
    ],
)
def test_errors_carry_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as e:
        read_kubelet_config("/etc/k/c.yaml", text)
    assert e.value.line == line
    assert message in str(e.value)
    assert str(e.value).startswith(f"/etc/k/c.yaml:{line}: ")


def test_dropin_dir_order_and_filter(tmp_path: Path) -> None:
    (tmp_path / "20-b.conf").write_text(HEAD + "maxPods: 20\n")
    (tmp_path / "10-a.conf").write_text(HEAD + "maxPods: 10\n")
    (tmp_path / "15-skip.yaml").write_text("not: read\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "00-c.conf").write_text(HEAD + "maxPods: 5\n")
    docs = read_dropin_dir(tmp_path)
    assert [Path(d.path).relative_to(tmp_path).as_posix() for d in docs] == [
        "10-a.conf",
        "20-b.conf",
        "sub/00-c.conf",
    ]
    assert all(d.kind is DocumentKind.KUBELET_DROPIN for d in docs)
    assert docs[0].fields[0].origin.detail == "drop-in"


def test_dropin_without_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "50-x.conf").write_text("imageGCHighThresholdPercent: 90\n")
    with pytest.raises(InputError, match="apiVersion is missing"):
        read_dropin_dir(tmp_path)


# --------------------------------------------------------------------------- rendering


def test_render_minimal_document() -> None:
    p = Placement(
        Version(1, 29),
        CONTAINERD,
        kubelet_fields={"imageMaximumGCAge": "168h0m0s", "imageGCHighThresholdPercent": 85},
        feature_gates={"ImageMaximumGCAge": True},
    )
    text = render_kubelet_config(p)
    body = [x for x in text.splitlines() if not x.startswith("#")]
    assert body == [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        "imageMaximumGCAge: 168h0m0s",
        "imageGCHighThresholdPercent: 85",
        "featureGates:",
        "  ImageMaximumGCAge: true",
    ]


def test_render_dropin_by_version() -> None:
    text = render_kubelet_dropin(Placement(Version(1, 29), CONTAINERD, {"maxPods": 1}))
    assert "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf" in text
    assert "KUBELET_CONFIG_DROPIN_DIR_ALPHA" in text
    assert "KUBELET_CONFIG_DROPIN_DIR_ALPHA" not in render_kubelet_dropin(
        Placement(Version(1, 30), CONTAINERD, {"maxPods": 1})
    )
    with pytest.raises(UsageError, match="no --config-dir"):
        render_kubelet_dropin(Placement(Version(1, 27), CONTAINERD, {"maxPods": 1}))
    doc = read_kubelet_config("d.conf", text, kind=DocumentKind.KUBELET_DROPIN)
    assert [f.field for f in doc.fields] == ["maxPods"]


# --------------------------------------------------------------------------- merging


def test_merge_keeps_comments_and_order() -> None:
    text = HEAD + "# how often\nsyncFrequency: 1m0s  # keep\nimageGCHighThresholdPercent: 70\n"
    out = merge_kubelet_config(text, "c", placement(imageGCHighThresholdPercent=85, maxPods=9))
    assert out == (
        HEAD + "# how often\nsyncFrequency: 1m0s  # keep\nimageGCHighThresholdPercent: 85\n"
        "maxPods: 9\n"
    )


def test_merge_kubeadm_file_inserts_alphabetically() -> None:
    text = (DATA / "kubeadm-1.30-config.yaml").read_text()
    out = merge_kubelet_config(
        text, "c", placement(imageGCHighThresholdPercent=85, serializeImagePulls=False)
    )
    lines = out.splitlines()
    assert (
        lines.index("imageGCHighThresholdPercent: 85") == lines.index("httpCheckFrequency: 0s") + 1
    )
    assert "serializeImagePulls: false" in lines
    assert len(lines) == len(text.splitlines()) + 2


def test_merge_eviction_replaced_gates_merged() -> None:
    text = HEAD + (
        "evictionHard:\n  memory.available: 100Mi  # mem\n  nodefs.available: 5%\n"
        "featureGates:\n  Foo: true\n"
    )
    p = Placement(
        Version(1, 31),
        CONTAINERD,
        kubelet_fields={"evictionHard": {"memory.available": "200Mi", "imagefs.available": "15%"}},
        feature_gates={"ImageMaximumGCAge": True},
    )
    out = merge_kubelet_config(text, "c", p)
    assert out == HEAD + (
        "evictionHard:\n  memory.available: 200Mi  # mem\n  imagefs.available: 15%\n"
        "featureGates:\n  Foo: true\n  ImageMaximumGCAge: true\n"
    )


def test_merge_empty_text_renders() -> None:
    p = placement(maxPods=3)
    assert merge_kubelet_config("", "c", p) == render_kubelet_config(p)


def test_merge_validates() -> None:
    with pytest.raises(InputError, match=r"^c:1: apiVersion is missing"):
        merge_kubelet_config("kind: KubeletConfiguration\n", "c", placement(maxPods=1))


# --------------------------------------------------------------------------- properties


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements)
def test_render_read_render_stable(p: Placement) -> None:
    text = render_kubelet_config(p)
    doc = read_kubelet_config("c", text)
    fields = {f.field: f.value for f in doc.fields if f.field != "featureGates"}
    assert fields == dict(p.kubelet_fields)
    assert doc.facts.feature_gates == dict(p.feature_gates)
    again = Placement(p.kubernetes_version, p.runtime, fields, {}, doc.facts.feature_gates)
    assert render_kubelet_config(again) == text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements, st.sampled_from(["kubeadm-1.30-config.yaml", "plain"]))
def test_merge_idempotent_keeps_unrelated(p: Placement, sample: str) -> None:
    if sample == "plain":
        text = HEAD + "# operator comment\nmaxPods: 110\nclusterDNS:\n- 10.96.0.10\n"
    else:
        text = (DATA / sample).read_text()
    once = merge_kubelet_config(text, "c", p)
    assert merge_kubelet_config(once, "c", p) == once
    got = {f.field: f.value for f in read_kubelet_config("c", once).fields}
    for fld, value in p.kubelet_fields.items():
        assert got[fld] == value
    before = {f.field: f.value for f in read_kubelet_config("c", text).fields}
    for fld, value in before.items():
        if fld not in p.kubelet_fields and fld != "featureGates":
            assert got[fld] == value
    if sample == "plain":
        assert "# operator comment" in once


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_read_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        read_kubelet_config("c", text)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (HEAD + "imageGCHighThresholdPercent: eighty\n", 3, "whole number"),
        (HEAD + "imageGCHighThresholdPercent: true\n", 3, "whole number"),
        (HEAD + "imageMinimumGCAge: 120\n", 3, "duration string"),
        (HEAD + "imageMinimumGCAge: 2\n", 3, "duration string"),
        (HEAD + "imageMinimumGCAge: 2 minutes\n", 3, "invalid duration"),
        (HEAD + "serializeImagePulls: 'no'\n", 3, "true or false"),
        (HEAD + "evictionHard:\n  imagefs.available: 15\n", 3, "quantity strings"),
        (HEAD + "featureGates:\n  X: 'yes'\n", 3, "featureGates"),
    ],
)
def test_values_the_kubelet_cannot_decode_are_lint_errors(
    text: str, line: int, message: str
) -> None:
    # The file itself is usable; the kubelet refuses the value, which lint reports (E103).
    from mlnode.lint.engine import LintContext, lint_documents
    from mlnode.versions import Version, parse_runtime

    doc = read_kubelet_config("c", text)
    ctx = LintContext(Version(1, 30), parse_runtime("containerd@1.7.13"))
    [finding] = [f for f in lint_documents([doc], ctx).findings if f.code == "E103"]
    assert finding.origin is not None and finding.origin.line == line
    assert message in finding.message
