"""Validation of the --snapshot file: one clear line naming the file and the key, exit 2."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from gc_helpers import invoke

from mlnode.gc import SnapshotError, load_snapshot

GOOD: dict[str, Any] = {
    "now": "2024-05-01T12:00:00Z",
    "filesystem": {"capacity_bytes": 1000, "available_bytes": 50},
    "policy": {
        "high_threshold_percent": 90,
        "low_threshold_percent": 80,
        "minimum_age_seconds": 0,
        "maximum_age_seconds": 0,
    },
    "images": [
        {
            "id": "image-0",
            "size_bytes": 450,
            "pinned": False,
            "in_use": False,
            "last_used": None,
            "first_detected": "2024-05-01T12:00:00Z",
        }
    ],
}


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc, indent=2) if not isinstance(doc, str) else doc)
    return path


def _mutate(path_in_doc: str, value: object) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    node: Any = doc
    keys = path_in_doc.split("/")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


_DELETE = object()


def test_good_snapshot_loads(tmp_path: Path) -> None:
    snap = load_snapshot(_write(tmp_path, GOOD))
    assert snap.images[0].id == "image-0" and snap.filesystem.capacity_bytes == 1000
    assert snap.policy.kubelet_uptime_seconds is None


def test_optional_keys(tmp_path: Path) -> None:
    doc = copy.deepcopy(GOOD)
    doc["_comment"] = "ignored"
    doc["policy"].update(
        kubelet_uptime_seconds=10, headroom_bytes=5, largest_image_bytes=7, keep=["x*"]
    )
    doc["images"][0].update(being_pulled=True, names=["repo/a:1"], _note="ignored")
    snap = load_snapshot(_write(tmp_path, doc))
    assert snap.images[0].being_pulled and snap.images[0].names == ("repo/a:1",)
    assert snap.policy.keep_patterns == ("x*",) and snap.policy.headroom_bytes == 5


@pytest.mark.parametrize(
    ("where", "value", "key", "fragment"),
    [
        ("now", _DELETE, "now", "missing"),
        ("filesystem", _DELETE, "filesystem", "missing"),
        ("filesystem/available_bytes", _DELETE, "filesystem.available_bytes", "missing"),
        ("policy/minimum_age_seconds", _DELETE, "policy.minimum_age_seconds", "missing"),
        ("images/0/first_detected", _DELETE, "images[0].first_detected", "missing"),
        ("images/0/last_used", _DELETE, "images[0].last_used", "missing"),
        ("policy/low_threshold_percent", 90, "policy.low_threshold_percent", "less than"),
        ("policy/low_threshold_percent", 95, "policy.low_threshold_percent", "less than"),
        ("policy/high_threshold_percent", 101, "policy.high_threshold_percent", "between 0"),
        ("images/0/size_bytes", -1, "images[0].size_bytes", "negative"),
        ("images/0/size_bytes", 1.5, "images[0].size_bytes", "integer"),
        ("images/0/size_bytes", 2**63, "images[0].size_bytes", "64-bit"),
        ("images/0/pinned", "no", "images[0].pinned", "true or false"),
        ("policy/maximum_age_seconds", -5, "policy.maximum_age_seconds", ">= 0"),
        ("policy/minimum_age_seconds", True, "policy.minimum_age_seconds", "number"),
        ("now", "2024-05-01", "now", "RFC 3339"),
        ("now", "2024-05-01T12:00:00", "now", "UTC offset"),
        ("now", 17, "now", "RFC 3339"),
        ("images/0/first_detected", "2024-13-01T00:00:00Z", "images[0].first_detected", "RFC"),
        ("images/0/id", "", "images[0].id", "non-empty"),
        ("images/0/colour", "red", "images[0].colour", "unknown key"),
        ("policy/keep", "x*", "policy.keep", "list of strings"),
        ("images", {}, "images", "JSON list"),
    ],
)
def test_bad_snapshot(tmp_path: Path, where: str, value: object, key: str, fragment: str) -> None:
    path = _write(tmp_path, _mutate(where, value))
    with pytest.raises(SnapshotError) as err:
        load_snapshot(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message
    r = invoke("--snapshot", str(path), "--policy", "kubelet")
    assert r.exit_code == 2
    assert r.output == f"mlnode: error: {message}\n"


def test_duplicate_image_id(tmp_path: Path) -> None:
    doc = copy.deepcopy(GOOD)
    doc["images"].append(copy.deepcopy(doc["images"][0]))
    with pytest.raises(SnapshotError, match=r"images\[1\]\.id: duplicate image id"):
        load_snapshot(_write(tmp_path, doc))


def test_duplicate_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"now": "2024-05-01T12:00:00Z", "now": "2024-05-01T12:00:00Z"}')
    with pytest.raises(SnapshotError, match="now: appears twice"):
        load_snapshot(path)


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "now": "2024-05-01T12:00:00Z",\n  "filesystem": {,\n}')
    with pytest.raises(SnapshotError) as err:
        load_snapshot(path)
    assert str(err.value).startswith(f"{path}:3:18: invalid JSON: ")
    r = invoke("--snapshot", str(path))
    assert r.exit_code == 2 and f"{path}:3:18: invalid JSON" in r.output


def test_unreadable_snapshot(tmp_path: Path) -> None:
    r = invoke("--snapshot", str(tmp_path / "missing.json"))
    assert r.exit_code == 2
    assert "missing.json: cannot read" in r.output
