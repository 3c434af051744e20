from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import place
from mlnode.versions import Version, parse_runtime

CLASSIC = ImageSettings(
    image_gc_high_threshold_percent=80,
    image_gc_low_threshold_percent=70,
    image_pull_progress_deadline_seconds=1800,
)


def test_classic_line_on_containerd_1_7() -> None:
    p = place(CLASSIC, Version(1, 28), parse_runtime("containerd@1.7.13"))
    assert dict(p.kubelet_fields) == {
        "imageGCHighThresholdPercent": 80,
        "imageGCLowThresholdPercent": 70,
    }
    assert p.kubelet_flags == {}
    [rv] = p.runtime_values
    assert (rv.row.table, rv.row.name, rv.value) == (
        ("plugins", "io.containerd.grpc.v1.cri"),
        "image_pull_progress_timeout",
        "30m0s",
    )
    assert p.refusals == ()


def test_classic_line_on_containerd_2() -> None:
    p = place(CLASSIC, Version(1, 30), parse_runtime("containerd@2.0.0"))
    [rv] = p.runtime_values
    assert rv.row.table == ("plugins", "io.containerd.cri.v1.images")


def test_containerd_1_6_refuses_deadline() -> None:
    p = place(CLASSIC, Version(1, 30), parse_runtime("containerd@1.6.20"))
    assert p.runtime_values == ()
    [refusal] = p.refusals
    assert "1.7.0" in refusal.reason and "ignores unknown keys" in refusal.reason


def test_dockershim_keeps_the_flag_before_1_24_only() -> None:
    p = place(CLASSIC, Version(1, 20), parse_runtime("docker"))
    assert p.kubelet_flags == {"image-pull-progress-deadline": "30m0s"}
    p = place(CLASSIC, Version(1, 24), parse_runtime("docker"))
    assert p.kubelet_flags == {}
    assert "removed in Kubernetes 1.24" in p.refusals[0].reason


def test_max_gc_age_needs_1_29_and_gate_in_1_29() -> None:
    s = ImageSettings(image_maximum_gc_age_seconds=7 * 86400)
    assert place(s, Version(1, 28), parse_runtime("containerd@1.7.13")).refusals
    p129 = place(s, Version(1, 29), parse_runtime("containerd@1.7.13"))
    assert p129.feature_gates == {"ImageMaximumGCAge": True}
    p130 = place(s, Version(1, 30), parse_runtime("containerd@1.7.13"))
    assert p130.feature_gates == {} and p130.kubelet_fields["imageMaximumGCAge"] == "168h0m0s"


def test_partial_eviction_warns() -> None:
    s = ImageSettings(eviction_hard={"imagefs.available": "20%"})
    p = place(s, Version(1, 30), parse_runtime("containerd@1.7.13"))
    assert any("imagefs.inodesFree" in w for w in p.warnings)


@given(
    high=st.integers(0, 100),
    minor=st.integers(20, 35),
    runtime=st.sampled_from(
        [
            "containerd@1.6.20",
            "containerd@1.7.13",
            "containerd@2.1.0",
            "crio@1.31.3",
            "cri-dockerd@0.3.9",
            "docker",
        ]
    ),
    deadline=st.one_of(st.none(), st.integers(0, 7200)),
)
def test_every_setting_is_placed_or_refused_once(
    high: int, minor: int, runtime: str, deadline: int | None
) -> None:
    s = ImageSettings(
        image_gc_high_threshold_percent=high, image_pull_progress_deadline_seconds=deadline
    )
    p = place(s, Version(1, minor), parse_runtime(runtime))
    homes = (
        [k for k in p.kubelet_fields if k == "imageGCHighThresholdPercent"]
        + [k for k in p.kubelet_flags]
        + [pv.row.key for pv in p.runtime_values]
        + [r.key for r in p.refusals]
    )
    assert len(homes) == len(s.set_fields())
