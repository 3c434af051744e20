"""The transfer plugin's keys per containerd version, and what W201 says about keys that
are not the pull deadline.

Keys read from ``transferConfig`` in plugins/transfer/plugin.go at each tag: 1.7.0 declares
four but never decodes them (unexported fields); 1.7.1-2.0 read max_concurrent_downloads,
max_concurrent_uploaded_layers, unpack_config, config_path; 2.1 adds
concurrent_layer_fetch_buffer and check_platform_supported; 2.2 adds max_concurrent_unpacks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.knowledge.table import containerd_plugin_keys
from mlnode.versions import Version

TRANSFER = ("plugins", "io.containerd.transfer.v1.local")
CORPUS = Path(__file__).parent.parent / "data" / "upstream" / "containerd"
runner = CliRunner()


def w201(path: Path, runtime: str) -> tuple[int, list[dict]]:
    result = runner.invoke(
        app,
        ["lint", str(path), "--kubernetes-version", "1.30", "--runtime", runtime, "-o", "json"],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    findings = json.loads(result.stdout)["findings"]
    return result.exit_code, [f for f in findings if f["code"] == "W201"]


def write(tmp_path: Path, version: int, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'version = {version}\n\n[plugins."io.containerd.transfer.v1.local"]\n{body}')
    return path


@pytest.mark.parametrize("containerd", ["1.7.1", "1.7.13", "1.7.34", "2.0.5", "2.1.0", "2.3.0"])
def test_max_concurrent_downloads_is_a_transfer_key(tmp_path: Path, containerd: str) -> None:
    version = 2 if containerd.startswith("1.") else 3
    path = write(tmp_path, version, "  max_concurrent_downloads = 5\n  config_path = ''\n")
    code, found = w201(path, f"containerd@{containerd}")
    assert code == 0 and found == []


def test_genuine_1_7_default_has_no_w201() -> None:
    code, found = w201(CORPUS / "default-1.7.toml", "containerd@1.7.13")
    assert code == 0 and found == []


def test_1_7_0_declares_the_keys_but_reads_none(tmp_path: Path) -> None:
    path = write(tmp_path, 2, "  max_concurrent_downloads = 5\n  config_path = ''\n")
    _, [f] = w201(path, "containerd@1.7.0")
    assert f["line"] == 4
    assert "never reads them" in f["message"] and "unexported" in f["message"]
    assert "layers the transfer service downloads at once" in f["consequence"]
    assert "progress deadline" not in f["consequence"]
    assert "1.7.1" in f["fix"]


def test_1_6_has_no_transfer_plugin(tmp_path: Path) -> None:
    path = write(tmp_path, 2, "  max_concurrent_downloads = 5\n  config_path = ''\n")
    _, [f] = w201(path, "containerd@1.6.20")
    assert "has no plugin io.containerd.transfer.v1.local" in f["message"]
    assert "progress deadline" not in f["consequence"]


@pytest.mark.parametrize(
    ("containerd", "flagged"),
    [("2.0.11", True), ("2.1.0", False), ("2.3.0", False)],
)
def test_keys_added_in_2_1_are_unknown_to_2_0(
    tmp_path: Path, containerd: str, flagged: bool
) -> None:
    path = write(tmp_path, 3, "  concurrent_layer_fetch_buffer = 1048576\n")
    _, found = w201(path, f"containerd@{containerd}")
    if not flagged:
        assert found == []
        return
    [f] = found
    assert "has no key concurrent_layer_fetch_buffer in containerd@2.0.11" in f["message"]
    assert "plugins/transfer/plugin.go" in f["message"]
    assert "Ignoring unknown key in TOML for plugin" in f["consequence"]  # 2.x logs it
    assert "progress deadline" not in f["consequence"]


def test_max_concurrent_unpacks_arrived_in_2_2(tmp_path: Path) -> None:
    path = write(tmp_path, 3, "  max_concurrent_unpacks = 2\n")
    assert len(w201(path, "containerd@2.1.5")[1]) == 1
    assert w201(path, "containerd@2.2.0")[1] == []


def test_a_deadline_key_in_the_transfer_table_says_where_it_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, 3, "  image_pull_progress_timeout = '10m'\n")
    _, [f] = w201(path, "containerd@2.0.5")
    assert 'reads it from [plugins."io.containerd.cri.v1.images"]' in f["message"]
    assert "pulls get no progress deadline" in f["consequence"]


def test_misplaced_max_concurrent_downloads_says_what_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'version = 3\n\n[plugins."io.containerd.cri.v1.runtime"]\n  max_concurrent_downloads = 5\n'
    )
    _, [f] = w201(path, "containerd@2.0.5")
    assert 'reads it from [plugins."io.containerd.cri.v1.images"]' in f["message"]
    assert "layers one pull downloads at once" in f["consequence"]
    assert "progress deadline" not in f["consequence"]


def test_unknown_keys_on_1_x_are_silent() -> None:
    # containerd 1.x decodes plugin tables without strict mode: no warning at start.
    path = CORPUS / "docs-cri-config-2.0.11-v3.toml"
    _, found = w201(path, "containerd@1.7.16")
    assert found and all("silently" in f["consequence"] for f in found)


@pytest.mark.parametrize(
    ("containerd", "keys"),
    [
        ("1.6.39", None),
        ("1.7.0", 4),
        ("1.7.1", 4),
        ("2.0.0", 4),
        ("2.1.0", 6),
        ("2.2.0", 7),
        ("2.3.4", 7),
    ],
)
def test_transfer_keys_per_version(containerd: str, keys: int | None) -> None:
    row = containerd_plugin_keys(TRANSFER, Version.parse(containerd))
    if keys is None:
        assert row is None
        return
    assert row is not None and len(row.keys) == keys
    assert "max_concurrent_downloads" in row.keys
    assert row.read is (containerd != "1.7.0")
