"""Persisted first-detected / last-used times (mlnode.gc, mlnode.ops.image_state).

The detect() cases follow the kubelet's TestDetectImages* tests in
pkg/kubelet/images/image_gc_manager_test.go, with one deliberate difference: first
detection records ``now`` (as the kubelet's main branch does), not Go's zero time.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from gc_helpers import ts

from mlnode.errors import InputError
from mlnode.gc import ImageRecord, ImageState, ObservedImage, detect
from mlnode.ops.image_state import ImageStateFile

T0 = ts("2024-05-01T12:00:00+00:00")
T1 = T0 + timedelta(minutes=5)


def images(*pairs: tuple[str, int]) -> list[ObservedImage]:
    return [ObservedImage(i, s) for i, s in pairs]


def test_initial_detect_TestDetectImagesInitialDetect() -> None:
    state = detect(
        ImageState(),
        images(("image-0", 1024), ("image-1", 2048), ("image-2", 2048)),
        {"image-1", "image-2"},
        T0,
    )
    assert len(state.images) == 3
    assert state.images["image-0"] == ImageRecord(first_detected=T0, last_used=None)
    assert state.images["image-1"] == ImageRecord(first_detected=T0, last_used=T0)
    assert state.images["image-2"].last_used == T0
    assert state.largest_image_bytes == 2048


def test_new_image_TestDetectImagesWithNewImage() -> None:
    s0 = detect(ImageState(), images(("image-0", 1024), ("image-1", 2048)), {"image-1"}, T0)
    s1 = detect(
        s0, images(("image-0", 1024), ("image-1", 1024), ("image-2", 1024)), {"image-1"}, T1
    )
    assert s1.images["image-0"] == ImageRecord(first_detected=T0, last_used=None)
    assert s1.images["image-1"] == ImageRecord(first_detected=T0, last_used=T1)
    assert s1.images["image-2"] == ImageRecord(first_detected=T1, last_used=None)
    assert s1.largest_image_bytes == 2048  # the largest ever seen, not the largest now


def test_container_stopped_keeps_last_used_TestDetectImagesContainerStopped() -> None:
    s0 = detect(ImageState(), images(("image-0", 1024), ("image-1", 2048)), {"image-1"}, T0)
    s1 = detect(s0, images(("image-0", 1024), ("image-1", 2048)), set(), T1)
    assert s1.images["image-0"] == ImageRecord(first_detected=T0, last_used=None)
    assert s1.images["image-1"] == ImageRecord(first_detected=T0, last_used=T0)


def test_removed_images_are_forgotten_TestDetectImagesWithRemovedImages() -> None:
    s0 = detect(ImageState(), images(("image-0", 1024), ("image-1", 2048)), {"image-1"}, T0)
    s1 = detect(s0, [], set(), T1)
    assert s1.images == {}


def test_detect_requires_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        detect(ImageState(), [], set(), T0.replace(tzinfo=None))


def test_times_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "image-state.json"
    ImageStateFile(path).observe(images(("a", 10), ("b", 20)), {"a"}, T0)
    # A new process (new object) sees the times written by the old one.
    reopened = ImageStateFile(path)
    state = reopened.observe(images(("a", 10), ("b", 20), ("c", 5)), set(), T1)
    assert state.images["a"] == ImageRecord(first_detected=T0, last_used=T0)
    assert state.images["b"] == ImageRecord(first_detected=T0, last_used=None)
    assert state.images["c"] == ImageRecord(first_detected=T1, last_used=None)
    assert reopened.load() == state
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["largest_image_bytes"] == 20
    assert doc["images"]["a"] == {
        "first_detected": "2024-05-01T12:00:00Z",
        "last_used": "2024-05-01T12:00:00Z",
    }


def test_missing_file_is_empty_state(tmp_path: Path) -> None:
    assert ImageStateFile(tmp_path / "none.json").load() == ImageState()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    f = ImageStateFile(path)
    f.observe(images(("a", 1)), set(), T0)
    f.observe(images(("a", 1), ("b", 2)), set(), T1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    f = ImageStateFile(path)
    f.observe(images(("a", 1)), set(), T0)
    before = path.read_text()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InputError, match="No space left on device") as err:
        f.observe(images(("a", 1), ("b", 2)), set(), T1)
    assert str(path) in str(err.value)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_corrupt_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{\n  "version": 1,\n  "images": {\n    "a": {"first_detected": }\n')
    with pytest.raises(InputError) as err:
        ImageStateFile(path).load()
    assert err.value.path == path and err.value.line == 4
    assert str(err.value).startswith(f"{path}:4: corrupt image state")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"version": 7, "images": {}}, "unsupported state file version 7"),
        ({"version": 1, "images": []}, "images: must be a JSON object"),
        ({"version": 1, "images": {"a": {}}}, "first_detected: missing"),
        ({"version": 1, "images": {"a": {"first_detected": "yesterday"}}}, "RFC 3339"),
        (
            {"version": 1, "largest_image_bytes": -1, "images": {}},
            "largest_image_bytes: must be an integer >= 0",
        ),
    ],
)
def test_corrupt_content_names_file(tmp_path: Path, doc: object, fragment: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="corrupt image state") as err:
        ImageStateFile(path).load()
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        ImageStateFile(path).load()
