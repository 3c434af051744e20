"""The journal: recorded lines (tests/doctor/fixtures/journal, each file says what it is
composed from) parsed in both journalctl forms, and the findings they give."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlnode.doctor._journal import (
    JOURNAL_COMMAND,
    JournalEntry,
    journal_findings,
    klog_fields,
    logfmt_fields,
    parse_journal,
)
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

FIXTURES = Path(__file__).parent / "fixtures" / "journal"
NODE = "gpu-node-7"
IMAGE = "registry.example.com/ml/train:v3"
CONTAINERD = RuntimeSpec(RuntimeKind.CONTAINERD, Version.parse("1.7.13"))


def entries(name: str) -> list[JournalEntry]:
    return parse_journal((FIXTURES / name).read_text())


def test_short_iso_lines() -> None:
    got = entries("kubelet-removed-flag.short-iso.txt")
    assert len(got) == 15  # comments and the "-- Journal begins" line skipped
    first = got[0]
    assert first.timestamp == datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
    assert first.unit == "systemd"
    assert {e.unit for e in got} == {"systemd", "kubelet"}
    assert got[2].message.startswith('E1130 10:00:00.812345    2312 run.go:74] "command failed"')


def test_short_iso_with_colon_offset() -> None:
    (e,) = parse_journal("2026-11-30T11:00:00+01:00 n kubelet[1]: hello")
    assert e.timestamp == datetime(2026, 11, 30, 10, 0, tzinfo=UTC) and e.message == "hello"


def test_json_lines() -> None:
    got = entries("kubelet-gc-disk.json.txt")
    assert [e.unit for e in got] == ["kubelet", "kubelet", "kubelet", "containerd", "containerd"]
    assert got[0].timestamp == datetime(2026, 11, 30, 10, 0, 0, 412345, tzinfo=UTC)
    assert got[-1].message == 'time="2026-11-30T10:10:41Z" level=info msg="bad \ufffd byte"'


def test_klog_structured_and_plain() -> None:
    sev, msg, pairs = klog_fields(
        'E1130 10:05:00.231090    2312 kuberuntime_image.go:53] "Failed to pull image"'
        ' err="rpc error: code = Canceled desc = context canceled" image="a/b:c"'
    ) or ("", "", {})
    assert (sev, msg) == ("E", "Failed to pull image")
    assert pairs == {"err": "rpc error: code = Canceled desc = context canceled", "image": "a/b:c"}
    plain = klog_fields("I1130 10:00:00.000001 1 server.go:1] plain text here")
    assert plain == ("I", "plain text here", {})
    assert klog_fields("not klog") is None


def test_logfmt() -> None:
    fields = logfmt_fields(
        'time="2026-11-30T10:05:00.2Z" level=error msg="PullImage \\"x\\" failed" error="boom"'
    )
    assert fields == {
        "time": "2026-11-30T10:05:00.2Z",
        "level": "error",
        "msg": 'PullImage "x" failed',
        "error": "boom",
    }
    assert logfmt_fields("plain words") == {}


def test_removed_flag_names_the_flag_and_the_fix() -> None:
    findings = journal_findings(
        NODE,
        entries("kubelet-removed-flag.short-iso.txt"),
        runtime=CONTAINERD,
        deadline_seconds=None,
        kubelet_version=Version.parse("1.30.4"),
    )
    (f,) = findings
    assert f.code == "D307" and f.subject == "--image-pull-progress-deadline"
    assert "does not start" in f.title and "(x3)" in f.title
    assert "removed in Kubernetes 1.24 (removed with dockershim)" in f.cause
    assert f.fix.startswith("mlnode doctor on the node names the file and line passing")
    assert "mlnode apply" in f.fix


def test_unknown_flag_without_a_version() -> None:
    text = (
        '2026-11-30T10:00:00+0000 n kubelet[1]: E1130 10:00:00.1 1 run.go:74] "command failed"'
        ' err="failed to parse kubelet flag: unknown flag: --network-plugin"'
    )
    (f,) = journal_findings(NODE, parse_journal(text), runtime=None, deadline_seconds=None)
    assert f.code == "D307" and "--network-plugin is not a flag of this kubelet" in f.cause


def test_containerd_cancel_for_no_progress() -> None:
    findings = journal_findings(
        NODE,
        entries("containerd-progress-cancel.short-iso.txt"),
        runtime=CONTAINERD,
        deadline_seconds=None,
    )
    (f,) = findings
    assert f.code == "D308" and f.subject == IMAGE
    assert "no progress in 5m0s" in f.title and "(x2)" in f.title
    assert f.fix.startswith("mlnode apply --image-pull-progress-deadline 15m ")
    assert 'image_pull_progress_timeout = "15m0s" under [plugins."io.containerd.grpc.v1.cri"]' in (
        f.fix
    )


def test_crio_timeout_names_the_image_of_its_request() -> None:
    crio = RuntimeSpec(RuntimeKind.CRIO, Version.parse("1.30.11"))
    (f,) = journal_findings(
        "gpu-node-9", entries("crio-timeout.short-iso.txt"), runtime=crio, deadline_seconds=None
    )
    assert f.code == "D308" and f.subject == IMAGE and "10s" in f.title
    assert "[crio.image]" in f.fix


def test_gc_and_disk_full() -> None:
    findings = journal_findings(
        NODE, entries("kubelet-gc-disk.json.txt"), runtime=CONTAINERD, deadline_seconds=None
    )
    by_code = {f.code: f for f in findings}
    assert sorted(by_code) == ["D205", "D309"]
    gc = by_code["D309"]
    assert "(x3)" in gc.title and "13.0 GiB" in gc.title and "0 B eligible" in gc.title
    disk = by_code["D205"]
    assert "containerd" in disk.title and "no space left on device" in disk.evidence[0]


def test_journal_command() -> None:
    assert JOURNAL_COMMAND[0] == "journalctl"
    for unit in ("kubelet", "containerd", "crio"):
        assert f"--unit={unit}.service" in JOURNAL_COMMAND
    assert "--since=-6h" in JOURNAL_COMMAND
    assert "--output=json" in JOURNAL_COMMAND and "--no-pager" in JOURNAL_COMMAND


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_every_fixture_says_what_it_is_composed_from(name: str) -> None:
    head = (FIXTURES / name).read_text().splitlines()[:12]
    assert any("Composed" in line for line in head if line.startswith("#"))


@given(st.text(max_size=400))
def test_any_text_never_raises(text: str) -> None:
    got = parse_journal(text)
    journal_findings(NODE, got, runtime=CONTAINERD, deadline_seconds=None)
    klog_fields(text)
    logfmt_fields(text)


_values = st.one_of(
    st.none(), st.integers(), st.text(max_size=40), st.lists(st.integers(), max_size=8)
)


@given(
    st.dictionaries(
        st.sampled_from(["MESSAGE", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "__REALTIME_TIMESTAMP"]),
        _values,
    )
)
def test_any_json_line_never_raises(obj: dict[str, object]) -> None:
    parse_journal(json.dumps(obj))
