"""Fleet findings: nodes at risk, the images that dominate disk, a pool that disagrees."""

from __future__ import annotations

from mlnode.doctor._cluster import fleet_findings
from mlnode.doctor._model import NodeReport, Setting

GIB = 1 << 30


def _node(
    name: str,
    *,
    pool: str = "pool=a",
    high: int = 85,
    largest: int = 30 * GIB,
    headroom: int = 100 * GIB,
    ref: str = "train:v1",
    kubelet: str = "1.30.2",
) -> NodeReport:
    return NodeReport(
        name=name,
        pool=pool,
        kubelet_version=kubelet,
        runtime="containerd@1.7.13",
        thresholds={"image_gc_high_threshold_percent": Setting(high, "configz")},
        largest_image_ref=ref,
        largest_image_bytes=largest,
        headroom_bytes=headroom,
    )


def test_nodes_at_risk_are_named_with_their_numbers() -> None:
    findings, _ = fleet_findings([_node("n1"), _node("n2", headroom=20 * GIB)])
    risk = [f for f in findings if f.code == "D401"]
    assert len(risk) == 1
    assert risk[0].title.startswith("1 of 2 node(s)")
    assert risk[0].evidence == ("n2 (30.0 GiB > 20.0 GiB)",)


def test_dominant_images_rank_by_total_bytes() -> None:
    nodes = [_node(f"n{i}") for i in range(3)] + [_node("big", ref="llm:v2", largest=80 * GIB)]
    _, dominant = fleet_findings(nodes)
    assert [(i.ref, i.nodes, i.total_bytes) for i in dominant] == [
        ("train:v1", 3, 90 * GIB),
        ("llm:v2", 1, 80 * GIB),
    ]


def test_a_setting_that_differs_in_a_pool_names_the_odd_nodes() -> None:
    nodes = [_node("n1"), _node("n2"), _node("n3", high=70), _node("m1", pool="pool=b", high=60)]
    findings, _ = fleet_findings(nodes)
    differ = [f for f in findings if f.code == "D403"]
    assert len(differ) == 1  # pool b has one node: nothing to compare
    f = differ[0]
    assert f.subject == "imageGCHighThresholdPercent"
    assert "pool=a" in f.title
    assert f.evidence == ("85: 2 node(s)", "70: 1 node(s) — n3")


def test_versions_that_differ_in_a_pool() -> None:
    findings, _ = fleet_findings([_node("n1"), _node("n2", kubelet="1.29.4")])
    differ = [f for f in findings if f.code == "D406"]
    assert [f.subject for f in differ] == ["kubelet version"]
    # a tie: no value is "the pool's", so every value names its nodes
    assert differ[0].evidence == ("1.29.4: 1 node(s) — n2", "1.30.2: 1 node(s) — n1")


def test_docs_list_every_code_with_its_severity() -> None:
    from pathlib import Path

    from mlnode.doctor._model import DOCTOR_CODES

    text = (Path(__file__).parents[2] / "docs" / "doctor.md").read_text()
    for code, (severity, meaning) in DOCTOR_CODES.items():
        assert f"| {code} | {severity.value} | {meaning} |" in text, code


def test_selectors_parse_as_kubectl_reads_them() -> None:
    import pytest

    from mlnode.doctor._cluster import parse_selector

    assert parse_selector("a=b, c==d,e!=f,g,!h") == (
        ("a", "=", "b"),
        ("c", "=", "d"),
        ("e", "!=", "f"),
        ("g", "exists", ""),
        ("h", "!exists", ""),
    )
    assert parse_selector("node.kubernetes.io/pool=a100") == (
        ("node.kubernetes.io/pool", "=", "a100"),
    )
    for bad in ("", "a=b,", "pool in (a,b)", "a=b c", "=v"):
        with pytest.raises(ValueError):
            parse_selector(bad)
