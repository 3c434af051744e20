"""Profile files, value syntax, and how layers of values resolve into a NodeProfile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnode.errors import InputError, UsageError
from mlnode.planning.profile import (
    ProfileInput,
    format_rate,
    load_profile,
    option_input,
    parse_rate,
    parse_size,
    resolve_profile,
)
from mlnode.versions import RuntimeKind, Version

GiB = 1024**3
TiB = 1024**4

FULL = """\
# a GPU node pool
image_disk: 1.75TiB
largest_image: 15GiB
unpack_ratio: 2.5
largest_layer: 12GiB
bandwidth: 10Gbit/s
concurrent_pulls: 3
growth_per_hour: 20GiB
other_data: 40GiB
shared_with_os: false
imagefs_eviction_percent: 10
unpack_rate: 200MB/s
registry_stall: 90s
discard_unpacked_layers: true
kubernetes_version: "1.30"
runtime: containerd@1.7.13
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_full_yaml_profile(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    got = load_profile(path)
    assert got.image_disk_capacity_bytes == int(1.75 * TiB)
    assert got.largest_image_bytes == 15 * GiB
    assert got.unpack_ratio == 2.5
    assert got.largest_layer_bytes == 12 * GiB
    assert got.link_bandwidth_bytes_per_second == pytest.approx(1.25e9)
    assert got.concurrent_pulls == 3
    assert got.other_writers_growth_bytes_per_hour == 20 * GiB
    assert got.other_data_bytes == 40 * GiB
    assert got.shared_with_os is False
    assert got.imagefs_eviction_percent == 10.0
    assert got.unpack_bytes_per_second == pytest.approx(200e6)
    assert got.registry_stall_seconds == 90.0
    assert got.discard_unpacked_layers is True
    assert got.kubernetes_version == Version(1, 30)
    assert got.runtime is not None and got.runtime.kind is RuntimeKind.CONTAINERD
    assert got.sources["image_disk_capacity_bytes"] == f"profile {path}:2"
    assert got.sources["runtime"] == f"profile {path}:16"

    resolved = resolve_profile([got])
    assert resolved.largest_image_unpacked_bytes == round(15 * GiB * 2.5)
    assert "2.5 × largest image" in resolved.sources["largest_image_unpacked_bytes"]


def test_json_profile_with_field_names(tmp_path: Path) -> None:
    doc = {"image_disk_capacity_bytes": 2 * TiB, "link_bandwidth_bytes_per_second": 1.25e8}
    path = write(tmp_path, json.dumps(doc, indent=2), "p.json")
    got = load_profile(path)
    assert got.image_disk_capacity_bytes == 2 * TiB
    assert got.link_bandwidth_bytes_per_second == 1.25e8
    assert got.sources["image_disk_capacity_bytes"] == f"profile {path}:2"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("image_disk: 1TiB\nlargest_imag: 15GiB\n", 2, "unknown key 'largest_imag'"),
        ("largest_image: 15GiB\nimage_disk: 0\n", 2, "image_disk: 0 must be greater than 0"),
        ("image_disk: 1TiB\ngrowth_per_hour: -5GiB\n", 2, "cannot be negative"),
        ("other_data: -5\n", 1, "cannot be negative"),
        ("image_disk: 1TiB\n\nconcurrent_pulls: 0\n", 3, "must be at least 1"),
        ("concurrent_pulls: two\n", 1, "not a whole number"),
        ("image_disk: 100GiB\nlargest_image: 150GiB\n", 2, "larger than the image disk"),
        ("largest_image: 10GiB\nlargest_layer: 11GiB\n", 2, "larger than the largest image"),
        ("bandwidth: 10Gb/s\n", 1, "not a rate"),
        ("kubernetes_version: 1.30\n", 1, "quote the version"),
        ("kubernetes_version: '1.12'\n", 1, "outside the versions"),
        ("runtime: podman@4.0\n", 1, "unknown runtime"),
        ("imagefs_eviction_percent: 100\n", 1, "percent"),
        ("image_disk: 1TiB\nimage_disk_capacity_bytes: 5\n", 2, "repeats 'image_disk'"),
        ("largest_image_unpacked: 30GiB\nunpack_ratio: 2\n", 2, "not both"),
        ("shared_with_os: maybe\n", 1, "not true or false"),
        ("registry_stall: 60\nunpack_rate: fast\n", 2, "not a rate"),
        ("image_disk:\n", 1, "no value"),
    ],
)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert err.value.line == line
    assert err.value.path == path
    assert words in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_json_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "image_disk": "1TiB",\n  "largest_image": \n}\n', "p.json")
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert err.value.line == 4
    assert "not valid JSON" in str(err.value)


def test_json_unknown_key_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "image_disk": "1TiB",\n  "nope": 1\n}\n', "p.json")
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert err.value.line == 3


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "image_disk: 1TiB\nlargest_image: [15GiB\n")
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert err.value.line is not None and "not valid YAML" in str(err.value)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "image_disk: 1TiB\nimage_disk: 2TiB\n")
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert err.value.line is not None


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputError, match="must be a mapping"):
        load_profile(write(tmp_path, text))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such profile file"):
        load_profile(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="empty profile"):
        load_profile(write(tmp_path, "# nothing\n"))


@pytest.mark.parametrize(
    ("text", "bytes_per_second"),
    [
        ("10Gbit/s", 1.25e9),
        ("10Gbps", 1.25e9),
        ("1.25GB/s", 1.25e9),
        ("800MiB/s", 800 * 1024**2),
        ("100 Mbit/s", 12.5e6),
        ("1kB/s", 1000),
        ("125000000", 125e6),
        (125e6, 125e6),
    ],
)
def test_parse_rate(text: str | float, bytes_per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(bytes_per_second)


@pytest.mark.parametrize("text", ["10Gb/s", "fast", "0bit/s", "-1GB/s", "10 GBps", "1e3"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_format_rate() -> None:
    assert format_rate(1.25e9) == "10 Gbit/s"
    assert format_rate(125e6) == "1 Gbit/s"


def test_parse_size() -> None:
    assert parse_size("15GiB") == 15 * GiB
    assert parse_size(5) == 5
    with pytest.raises(ValueError):
        parse_size(True)
    with pytest.raises(ValueError, match="negative"):
        parse_size("-1GiB")


def test_layers_resolve_highest_first(tmp_path: Path) -> None:
    path = write(tmp_path, "image_disk: 2TiB\nlargest_image: 10GiB\nunpack_ratio: 3\n")
    options = option_input(
        {
            "largest_image_bytes": ("--largest-image", "20GiB"),
            "concurrent_pulls": ("--concurrent-pulls", 4),
            "link_bandwidth_bytes_per_second": ("--bandwidth", None),
        }
    )
    inspected = ProfileInput(
        image_disk_capacity_bytes=TiB,
        shared_with_os=False,
        sources={"image_disk_capacity_bytes": "inspection: x", "shared_with_os": "inspection: y"},
    )
    p = resolve_profile([options, load_profile(path), inspected])
    assert p.largest_image_bytes == 20 * GiB
    assert p.sources["largest_image_bytes"] == "option --largest-image"
    assert p.image_disk_capacity_bytes == 2 * TiB  # the file beats inspection
    assert p.sources["image_disk_capacity_bytes"] == f"profile {path}:1"
    assert p.largest_image_unpacked_bytes == 60 * GiB  # the file's ratio × the option's image
    assert p.shared_with_os is False and p.other_data_bytes == 0
    assert p.link_bandwidth_bytes_per_second == 125e6
    assert p.sources["link_bandwidth_bytes_per_second"].startswith("ML default")
    assert p.largest_layer_bytes == 20 * GiB
    assert p.kubernetes_version is None and p.sources["kubernetes_version"] == "unknown"


def test_shared_disk_defaults_other_data() -> None:
    p = resolve_profile([ProfileInput(image_disk_capacity_bytes=TiB)])
    assert p.shared_with_os is True and p.other_data_bytes == 30 * GiB


def test_resolve_without_capacity_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--image-disk"):
        resolve_profile([ProfileInput(largest_image_bytes=GiB)])


def test_merged_contradiction_names_both_sources() -> None:
    opts = option_input({"largest_image_bytes": ("--largest-image", "2TiB")})
    disk = ProfileInput(
        image_disk_capacity_bytes=TiB, sources={"image_disk_capacity_bytes": "inspection: df"}
    )
    with pytest.raises(UsageError) as err:
        resolve_profile([opts, disk])
    assert "option --largest-image" in str(err.value) and "inspection: df" in str(err.value)


@pytest.mark.parametrize(
    ("field", "option", "text", "words"),
    [
        ("image_disk_capacity_bytes", "--image-disk", "0", "greater than 0"),
        ("concurrent_pulls", "--concurrent-pulls", 0, "at least 1"),
        ("kubernetes_version", "--kubernetes-version", "1.99", "outside"),
        ("runtime", "--runtime", "containerd", "needs a version"),
    ],
)
def test_option_errors_name_the_option(field: str, option: str, text: object, words: str) -> None:
    with pytest.raises(UsageError) as err:
        option_input({field: (option, text)})
    assert str(err.value).startswith(f"{option}: ") and words in str(err.value)
