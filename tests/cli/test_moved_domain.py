"""The domain pieces the CLI calls, tested without it: render's flag rule and merge,
progress rates over samples, and what a pull reads from the running containerd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlnode.errors import MlnodeError, PullStalled, UsageError
from mlnode.formats.base import DocumentKind
from mlnode.formats.render import (
    FlagRemovalReason,
    NotApplicable,
    RenderFormat,
    flag_removals,
    merge_document,
    removable_flags,
    render_formats,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.ops.progress import downloads_from_samples, sample_downloads
from mlnode.ops.pull_session import error_event, registry_config_path
from mlnode.runtime.containerd import IngestStatus
from mlnode.versions import Version, parse_runtime


def _placement(version: Version, runtime: str = "containerd@1.7.13", **settings: Any) -> Placement:
    return place(ImageSettings(**settings), version, parse_runtime(runtime))


def test_flag_removals_name_the_reason() -> None:
    p = _placement(
        Version(1, 30),
        image_gc_high_threshold_percent=80,
        image_pull_progress_deadline_seconds=1800.0,
    )
    removals = flag_removals(p)
    assert removals["image-pull-progress-deadline"] is FlagRemovalReason.REMOVED
    assert removals["image-gc-high-threshold"] is FlagRemovalReason.SHADOWS_CONFIG
    assert removable_flags(p) == frozenset(removals)


def test_pull_deadline_flag_only_stays_for_docker_before_1_24() -> None:
    cri = _placement(Version(1, 23), image_gc_high_threshold_percent=80)
    assert flag_removals(cri)["image-pull-progress-deadline"] is FlagRemovalReason.NO_EFFECT
    docker = _placement(Version(1, 23), "docker", image_gc_high_threshold_percent=80)
    assert "image-pull-progress-deadline" not in flag_removals(docker)


def test_not_applicable_is_a_usage_error() -> None:
    # It reaches the operator from `render --merge` of a file for the other runtime.
    assert issubclass(NotApplicable, UsageError)
    p = _placement(Version(1, 30), "crio@1.30.0", image_gc_high_threshold_percent=80)
    with pytest.raises(NotApplicable, match="not containerd"):
        merge_document(None, DocumentKind.CONTAINERD, "version = 2\n", "c.toml", p)


def test_single_format_that_does_not_apply_is_refused_all_skips_it() -> None:
    p = _placement(Version(1, 30), image_gc_high_threshold_percent=80)
    with pytest.raises(UsageError, match="--format: crio: "):
        render_formats(RenderFormat.CRIO, p)
    rendered, skipped = render_formats(RenderFormat.ALL, p)
    assert "crio" in {f for f, _ in skipped}
    assert RenderFormat.KUBELET_CONFIG in {r.format for r in rendered}


def test_merge_document_diffs_and_keeps_unchanged_text() -> None:
    p = _placement(Version(1, 30), image_gc_high_threshold_percent=80)
    text = 'KUBELET_EXTRA_ARGS="--image-gc-high-threshold=70 --v=2"\n'
    merged = merge_document(None, DocumentKind.ENV_FILE, text, "kubelet.env", p)
    assert merged.format is RenderFormat.ENV
    assert merged.changed and "--image-gc-high-threshold" not in merged.text
    assert "--v=2" in merged.text
    again = merge_document(RenderFormat.ENV, DocumentKind.ENV_FILE, merged.text, "k", p)
    assert not again.changed and again.text == merged.text


def test_merge_document_refuses_another_kind() -> None:
    p = _placement(Version(1, 30), image_gc_high_threshold_percent=80)
    with pytest.raises(UsageError, match="is a env file, not kubeadm"):
        merge_document(RenderFormat.KUBEADM, DocumentKind.ENV_FILE, "A=1\n", "k.env", p)


def _ingest(ref: str, offset: int, total: int = 1000) -> IngestStatus:
    return IngestStatus(ref, offset, total, None, None)


def test_rates_pair_samples_by_ref() -> None:
    before = {"layer-sha256:aa": _ingest("layer-sha256:aa", 100)}
    now = [_ingest("layer-sha256:aa", 600), _ingest("layer-sha256:bb", 10)]
    a, b = downloads_from_samples(before, now, 2.0)
    assert (a.rate_bytes_per_second, a.percent, a.eta_seconds, a.digest) == (
        250.0,
        60.0,
        1.6,
        "sha256:aa",
    )
    assert b.rate_bytes_per_second is None and b.eta_seconds is None


def test_sampler_uses_the_given_clock_and_sleep() -> None:
    listings = iter(
        [[_ingest("r", 0)], [_ingest("r", 300)], [_ingest("r", 900)], [_ingest("r", 950)]]
    )
    t = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        t[0] += seconds * 3  # a slow sampler: the rate divides by the real gap

    samples = sample_downloads(lambda: next(listings), 0.5, monotonic=lambda: t[0], sleep=sleep)
    rates = [next(samples)[0].rate_bytes_per_second for _ in range(3)]
    assert rates == [200.0, 400.0, pytest.approx(33.333, abs=0.01)]
    assert slept == [0.5, 0.5, 0.5]


def test_registry_config_path_from_cri_status() -> None:
    cfg = json.dumps({"registry": {"configPath": "/etc/containerd/certs.d:/x"}})
    assert registry_config_path(cfg) == Path("/etc/containerd/certs.d:/x")
    assert registry_config_path(json.dumps({"registry": {"configPath": ""}})) is None
    assert registry_config_path("not json") is None
    assert registry_config_path(None) is None
    assert registry_config_path("[]") is None


def test_error_event_carries_type_and_exit_code() -> None:
    e: MlnodeError = PullStalled("no byte for 5m")
    assert error_event(e) == {
        "event": "error",
        "error": "PullStalled",
        "exit_code": 6,
        "message": str(e),
    }
