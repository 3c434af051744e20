"""The knowledge tables agree with each other and with the flag lists read from the kubelet."""

from __future__ import annotations

import pytest

from mlnode.knowledge.flags import known_flags
from mlnode.knowledge.model import SETTING_KEYS
from mlnode.knowledge.table import (
    KUBELET_SETTINGS,
    REMOVED_FLAGS,
    RUNTIME_SETTINGS,
    config_dir_support,
    eviction_hard_defaults,
    runtime_settings_for,
)
from mlnode.versions import RuntimeKind, Version

READ_MINORS = [m for m in range(20, 36) if known_flags(Version(1, m)) is not None]


def test_every_row_cites_a_source_and_names_a_real_setting() -> None:
    for row in KUBELET_SETTINGS:
        assert row.source and row.key in SETTING_KEYS
    for rrow in RUNTIME_SETTINGS:
        assert rrow.source and rrow.key in SETTING_KEYS


def test_flag_lists_were_read_for_most_versions() -> None:
    assert len(READ_MINORS) >= 10


@pytest.mark.parametrize("minor", READ_MINORS)
def test_setting_flags_exist_exactly_in_their_span(minor: int) -> None:
    version = Version(1, minor)
    flags = known_flags(version)
    assert flags is not None
    for row in KUBELET_SETTINGS:
        if row.flag is None:
            continue
        assert (row.flag in flags) == row.flag_span.contains(version), (row.flag, version)


@pytest.mark.parametrize("minor", READ_MINORS)
def test_removed_flags_are_absent_after_removal(minor: int) -> None:
    version = Version(1, minor)
    flags = known_flags(version)
    assert flags is not None
    for removed in REMOVED_FLAGS:
        assert (removed.flag in flags) == (not version.at_least(removed.removed_in)), removed.flag


@pytest.mark.parametrize("minor", READ_MINORS)
def test_config_dir_flag_matches_support_table(minor: int) -> None:
    version = Version(1, minor)
    flags = known_flags(version)
    assert flags is not None
    assert ("config-dir" in flags) == config_dir_support(version).supported


def test_no_flag_for_config_only_fields() -> None:
    for minor in READ_MINORS:
        flags = known_flags(Version(1, minor))
        assert flags is not None
        assert "max-parallel-image-pulls" not in flags
        assert "image-maximum-gc-age" not in flags


@pytest.mark.parametrize(
    ("runtime", "version", "table", "default"),
    [
        (RuntimeKind.CONTAINERD, "1.6.20", None, None),
        (RuntimeKind.CONTAINERD, "1.7.0", ("plugins", "io.containerd.grpc.v1.cri"), 60.0),
        (RuntimeKind.CONTAINERD, "1.7.9", ("plugins", "io.containerd.grpc.v1.cri"), 60.0),
        (RuntimeKind.CONTAINERD, "1.7.13", ("plugins", "io.containerd.grpc.v1.cri"), 300.0),
        (RuntimeKind.CONTAINERD, "2.0.0", ("plugins", "io.containerd.cri.v1.images"), 300.0),
        (RuntimeKind.CONTAINERD, "2.3.0", ("plugins", "io.containerd.cri.v1.images"), 300.0),
        (RuntimeKind.CRIO, "1.30.10", None, None),
        (RuntimeKind.CRIO, "1.30.11", ("crio", "image"), 10.0),
        (RuntimeKind.CRIO, "1.31.2", None, None),
        (RuntimeKind.CRIO, "1.31.3", ("crio", "image"), 10.0),
        (RuntimeKind.CRIO, "1.31.9", ("crio", "image"), 0.0),
        (RuntimeKind.CRIO, "1.32.3", ("crio", "image"), 10.0),
        (RuntimeKind.CRIO, "1.33.0", ("crio", "image"), 0.0),
        (RuntimeKind.CRIO, "1.29.5", None, None),
    ],
)
def test_pull_deadline_home_per_runtime_version(
    runtime: RuntimeKind, version: str, table: tuple[str, ...] | None, default: float | None
) -> None:
    rows = [
        r
        for r in runtime_settings_for(runtime, Version.parse(version))
        if r.key == "image_pull_progress_deadline_seconds"
    ]
    if table is None:
        assert rows == []
    else:
        assert [(r.table, r.default) for r in rows] == [(table, default)]


def test_eviction_defaults_gain_imagefs_inodes_in_1_30() -> None:
    assert "imagefs.inodesFree" not in eviction_hard_defaults(Version(1, 29))
    assert eviction_hard_defaults(Version(1, 30))["imagefs.inodesFree"] == "5%"


def test_docs_settings_md_is_generated_from_the_tables() -> None:
    from pathlib import Path

    from mlnode.knowledge.doc import render_markdown

    doc = Path(__file__).parent.parent.parent / "docs" / "settings.md"
    assert doc.read_text() == render_markdown(), (
        "run: python -m mlnode.knowledge.doc > docs/settings.md"
    )
