"""Pure tests of the image-filesystem figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnode.errors import InputError
from mlnode.runtime.fs import FilesystemUsage, image_filesystem


def test_usage_percent_truncates_like_the_kubelet() -> None:
    # 15.9 % free → int(15.9) = 15 → 85 % used: GC at high=85 fires.
    fs = FilesystemUsage(Path("/x"), capacity_bytes=1000, available_bytes=159, used_bytes=841)
    assert fs.usage_percent() == 85
    assert FilesystemUsage(Path("/x"), 1000, 1000, 0).usage_percent() == 0
    assert FilesystemUsage(Path("/x"), 1000, 0, 1000).usage_percent() == 100


def test_zero_capacity_is_an_error() -> None:
    with pytest.raises(InputError, match="invalid capacity 0 on image filesystem"):
        FilesystemUsage(Path("/x"), 0, 0, 0).usage_percent()


def test_image_filesystem_of_a_real_dir(tmp_path: Path) -> None:
    fs = image_filesystem(tmp_path)
    assert fs.path == tmp_path
    assert fs.capacity_bytes > 0
    assert 0 <= fs.available_bytes <= fs.capacity_bytes
    assert 0 <= fs.used_bytes <= fs.capacity_bytes
    assert 0 <= fs.usage_percent() <= 100


def test_missing_dir_measures_nearest_parent(tmp_path: Path) -> None:
    fs = image_filesystem(tmp_path / "not" / "yet")
    assert fs.path == tmp_path
