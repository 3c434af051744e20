"""CRI-O crio.conf and crio.conf.d: reading with lines, directory order, render, merge."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlnode.errors import InputError
from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.crio import (
    DROPIN_SUGGESTED_PATH,
    crio_dropin_files,
    merge_crio,
    read_crio,
    read_crio_dir,
    render_crio,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.versions import Version, parse_runtime

DATA = Path(__file__).parent.parent / "data" / "formats"
IMAGE = ("crio", "image")


def placement(runtime: str = "crio@1.31.3", deadline: float | None = 1800.0) -> Placement:
    return place(
        ImageSettings(image_pull_progress_deadline_seconds=deadline),
        Version.parse("1.31"),
        parse_runtime(runtime),
    )


def value(doc: ParsedDocument, table: tuple[str, ...], name: str) -> object:
    found = [v for v in doc.runtime_values if v.table == table and v.name == name]
    assert len(found) == 1, (table, name, found)
    return found[0].value


def line_with(text: str, needle: str) -> int:
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_read_crio_conf_values_lines_facts() -> None:
    path = DATA / "crio.conf"
    text = path.read_text()
    doc = read_crio(str(path), text)
    assert doc.kind is DocumentKind.CRIO
    by = {(v.table, v.name): v for v in doc.runtime_values}
    for key, needle in {
        (IMAGE, "pull_progress_timeout"): "pull_progress_timeout =",
        (IMAGE, "pinned_images"): "pinned_images =",
        (IMAGE, "pause_image"): "pause_image =",
        (("crio",), "root"): 'root = "/var/lib',
        (("crio", "runtime"), "default_runtime"): 'default_runtime = "crun',
        (("crio", "runtime", "runtimes", "crun"), "runtime_path"): "runtime_path =",
    }.items():
        assert by[key].origin.line == line_with(text, needle), key
    assert by[(IMAGE, "pinned_images")].value == ["registry.k8s.io/pause:3.10"]
    assert by[(IMAGE, "pull_progress_timeout")].origin.detail == "crio.image"
    assert doc.facts.root == "/var/lib/containers/storage"
    assert doc.facts.storage_driver == "overlay"
    assert doc.facts.pull_progress_timeout == "0s"
    assert doc.facts.listen == "/var/run/crio/crio.sock"
    assert doc.facts.integer_durations == ()
    assert "crio.image" in doc.facts.tables


def test_integer_duration_is_flagged() -> None:
    doc = read_crio("d.conf", "[crio.image]\npull_progress_timeout = 1800\n")
    assert doc.facts.integer_durations == ("crio.image.pull_progress_timeout",)


def test_bad_toml_has_file_and_line() -> None:
    with pytest.raises(InputError) as e:
        read_crio("/etc/crio/crio.conf.d/10-x.conf", "[crio.image]\npull_progress_timeout = 30m\n")
    assert e.value.line == 2
    assert str(e.value).startswith("/etc/crio/crio.conf.d/10-x.conf:2: ")


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_read_arbitrary_text_raises_only_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        read_crio("x.conf", text)


def _node(tmp_path: Path) -> Path:
    etc = tmp_path / "etc" / "crio"
    (etc / "crio.conf.d" / "sub").mkdir(parents=True)
    shutil.copy(DATA / "crio.conf", etc / "crio.conf")
    shutil.copy(DATA / "crio.conf.d" / "10-gpu.conf", etc / "crio.conf.d" / "10-gpu.conf")
    (etc / "crio.conf.d" / "02-early.conf").write_text("[crio.image]\npause_image = 'a'\n")
    (etc / "crio.conf.d" / "sub" / "x.conf").write_text("[crio.image]\npause_image = 'b'\n")
    (etc / "crio.conf.d" / "99-last.conf.bak").write_text("[crio.image]\npause_image = 'c'\n")
    return tmp_path


def test_read_dir_in_crio_order(tmp_path: Path) -> None:
    root = _node(tmp_path)
    docs = read_crio_dir(root)
    d = root / "etc" / "crio"
    assert [doc.path for doc in docs] == [
        str(d / "crio.conf"),
        str(d / "crio.conf.d" / "02-early.conf"),
        str(d / "crio.conf.d" / "10-gpu.conf"),
        str(d / "crio.conf.d" / "99-last.conf.bak"),
        str(d / "crio.conf.d" / "sub" / "x.conf"),
    ]
    # every file is applied, also one not ending in .conf; flagged for the linter
    assert docs[3].facts.not_dot_conf is True
    assert docs[1].facts.not_dot_conf is False
    assert value(docs[2], IMAGE, "big_files_temporary_dir") == "/var/lib/containers/tmp"


def test_read_dir_without_main_or_dir(tmp_path: Path) -> None:
    assert read_crio_dir(tmp_path) == ()
    assert crio_dropin_files(tmp_path / "nope") == []


def test_render_crio_dropin() -> None:
    out = render_crio(placement())
    lines = out.splitlines()
    i = lines.index("[crio.image]")
    assert lines[i + 1] == 'pull_progress_timeout = "30m0s"'
    assert DROPIN_SUGGESTED_PATH in out
    assert "restart crio" in out
    doc = read_crio("r.conf", out)
    assert value(doc, IMAGE, "pull_progress_timeout") == "30m0s"


def test_render_crio_without_setting() -> None:
    p = placement("crio@1.29.0")
    assert p.refusals
    out = render_crio(p)
    assert "pull_progress_timeout" not in out
    assert read_crio("r.conf", out).runtime_values == ()


def test_render_rejects_other_runtime() -> None:
    with pytest.raises(ValueError):
        render_crio(placement("containerd@1.7.13"))


_VERSIONS = st.sampled_from(
    ["crio@1.30.11", "crio@1.31.3", "crio@1.32.0", "crio@1.33.1", "crio@1.36.3"]
)
_DEADLINES = st.one_of(st.none(), st.integers(0, 48 * 3600).map(float))


@settings(max_examples=60)
@given(_VERSIONS, _DEADLINES)
def test_render_read_roundtrip_and_stability(runtime: str, deadline: float | None) -> None:
    p = placement(runtime, deadline)
    out = render_crio(p)
    doc = read_crio("r.conf", out)
    for pv in p.runtime_values:
        assert value(doc, pv.row.table, pv.row.name) == pv.value
    assert merge_crio(out, "r.conf", p) == out
    assert render_crio(p) == out


def test_merge_main_conf_in_place() -> None:
    text = (DATA / "crio.conf").read_text()
    merged = merge_crio(text, "crio.conf", placement())
    changed = [
        (a, b) for a, b in zip(text.splitlines(), merged.splitlines(), strict=True) if a != b
    ]
    assert changed == [('pull_progress_timeout = "0s"', 'pull_progress_timeout = "30m0s"')]
    assert merge_crio(merged, "crio.conf", placement()) == merged


def test_merge_dropin_without_image_table() -> None:
    text = (
        (DATA / "crio.conf.d" / "10-gpu.conf")
        .read_text()
        .replace(
            '[crio.image]\nbig_files_temporary_dir = "/var/lib/containers/tmp"\n'
            "pinned_images = "
            '["registry.k8s.io/pause:3.10", "nvcr.io/nvidia/k8s-device-plugin:*"]\n',
            "",
        )
    )
    merged = merge_crio(text, "10-gpu.conf", placement())
    assert merged.startswith(text.rstrip("\n"))
    assert value(read_crio("m", merged), IMAGE, "pull_progress_timeout") == "30m0s"


_CHUNKS = st.lists(
    st.sampled_from(
        [
            "# note",
            "[crio]\nroot = '/data/containers'",
            "[crio.runtime]\ndefault_runtime = 'runc'  # keep",
            "[crio.image]\npause_image = 'p'\npull_progress_timeout = '1m0s'",
            "[crio.network]\nplugin_dirs = [\n  '/opt/cni/bin',\n]",
        ]
    ),
    max_size=4,
    unique=True,
)


@settings(max_examples=80)
@given(_CHUNKS, _VERSIONS, _DEADLINES)
def test_merge_idempotent_keeps_unrelated(
    chunks: list[str], runtime: str, deadline: float | None
) -> None:
    p = placement(runtime, deadline)
    text = "\n".join(chunks) + "\n"
    merged = merge_crio(text, "x.conf", p)
    assert merge_crio(merged, "x.conf", p) == merged
    before, after = read_crio("a", text), read_crio("b", merged)
    placed = {(pv.row.table, pv.row.name) for pv in p.runtime_values}
    for v in before.runtime_values:
        if (v.table, v.name) not in placed:
            assert value(after, v.table, v.name) == v.value
    for line in text.splitlines():
        if line.startswith("#") or "# keep" in line:
            assert line in merged.splitlines()
