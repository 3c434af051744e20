"""containerd config.toml: reading with lines, rendering, merging, imports."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prereq import unavailable
from tomlkit.exceptions import TOMLKitError

from mlnode.errors import InputError
from mlnode.formats._tomlscan import key_lines
from mlnode.formats.base import DocumentKind, ParsedDocument
from mlnode.formats.containerd import (
    CRI_V2,
    CRI_V3_IMAGES,
    checked_config_versions,
    config_version_for,
    declared_config_versions,
    effective_containerd_values,
    max_config_version_for,
    merge_containerd,
    read_containerd,
    read_containerd_with_imports,
    render_containerd,
    table_for,
)
from mlnode.knowledge.model import ImageSettings
from mlnode.knowledge.placement import Placement, place
from mlnode.knowledge.table import ConfigVersionOutcome, containerd_config_version
from mlnode.versions import Version, parse_runtime

DATA = Path(__file__).parent.parent / "data" / "formats"
V17 = DATA / "containerd-1.7-default.toml"
V3 = DATA / "containerd-2.x-v3.toml"


def placement(
    runtime: str, deadline: float | None = 1800.0, downloads: int | None = None
) -> Placement:
    settings_ = ImageSettings(
        image_pull_progress_deadline_seconds=deadline, max_concurrent_downloads=downloads
    )
    return place(settings_, Version.parse("1.30"), parse_runtime(runtime))


def value(doc: ParsedDocument, table: tuple[str, ...], name: str) -> object:
    found = [v for v in doc.runtime_values if v.table == table and v.name == name]
    assert len(found) == 1, (table, name, found)
    return found[0].value


def line_with(text: str, needle: str) -> int:
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


# -- reading -----------------------------------------------------------------------------------


def test_read_17_default_values_and_lines() -> None:
    text = V17.read_text()
    doc = read_containerd(str(V17), text)
    assert doc.kind is DocumentKind.CONTAINERD
    by = {(v.table, v.name): v for v in doc.runtime_values}
    expect = {
        (CRI_V2, "image_pull_progress_timeout"): ("5m0s", "image_pull_progress_timeout ="),
        (CRI_V2, "max_concurrent_downloads"): (3, "max_concurrent_downloads ="),
        (CRI_V2, "sandbox_image"): ("registry.k8s.io/pause:3.8", "sandbox_image ="),
        ((*CRI_V2, "containerd"), "snapshotter"): ("overlayfs", "snapshotter ="),
        ((*CRI_V2, "containerd"), "discard_unpacked_layers"): (False, "discard_unpacked_layers"),
        ((*CRI_V2, "registry"), "config_path"): ("/etc/containerd/certs.d", "config_path ="),
        ((), "version"): (2, "version ="),
        ((), "imports"): ([], "imports ="),
        (("grpc",), "address"): ("/run/containerd/containerd.sock", "containerd.sock"),
        (("timeouts",), "io.containerd.timeout.shim.cleanup"): ("5s", "shim.cleanup"),
    }
    for key, (val, needle) in expect.items():
        occ = by[key]
        assert occ.value == val
        assert occ.origin.path == str(V17)
        assert occ.origin.line == line_with(text, needle), key
    assert by[(CRI_V2, "max_concurrent_downloads")].origin.detail == (
        'plugins."io.containerd.grpc.v1.cri"'
    )
    assert doc.facts.config_version == 2
    assert doc.facts.config_version_explicit is True
    assert doc.facts.root == "/var/lib/containerd"
    assert doc.facts.state == "/run/containerd"
    assert doc.facts.grpc_address == "/run/containerd/containerd.sock"
    assert doc.facts.imports == ()
    assert doc.facts.cri_tables == ('plugins."io.containerd.grpc.v1.cri"',)


def test_read_v3_values_and_lines() -> None:
    text = V3.read_text()
    doc = read_containerd(str(V3), text)
    by = {(v.table, v.name): v for v in doc.runtime_values}
    pinned = by[((*CRI_V3_IMAGES, "pinned_images"), "sandbox")]
    assert pinned.value == "registry.k8s.io/pause:3.10"
    assert pinned.origin.line == line_with(text, "sandbox =")
    timeout = by[(CRI_V3_IMAGES, "image_pull_progress_timeout")]
    assert (timeout.value, timeout.origin.line) == ("5m0s", line_with(text, "image_pull_prog"))
    assert by[(CRI_V3_IMAGES, "snapshotter")].origin.line == line_with(text, "snapshotter =")
    assert doc.facts.config_version == 3
    assert doc.facts.imports == ("/etc/containerd/conf.d/*.toml",)
    assert 'plugins."io.containerd.cri.v1.images"' in doc.facts.cri_tables


@pytest.mark.parametrize(
    ("text", "version", "explicit"),
    [
        ("", 1, False),
        ("[plugins.cri]\nsandbox_image = 'x'\n", 1, False),
        ("version = 0\n", 1, True),
        ("version = 2\n", 2, True),
        ("version = 4\n", 4, True),
    ],
)
def test_config_version_rule(text: str, version: int, explicit: bool) -> None:
    # A missing version is 1 in 1.x (GetVersion) and in 2.x (migrated from 0 via 1).
    doc = read_containerd("c.toml", text)
    assert doc.facts.config_version == version
    assert doc.facts.config_version_explicit is explicit


def test_version_must_be_integer() -> None:
    with pytest.raises(InputError) as e:
        read_containerd("/etc/containerd/config.toml", '# x\nversion = "2"\n')
    assert e.value.line == 2
    assert str(e.value).startswith("/etc/containerd/config.toml:2: ")


def test_unparseable_toml_reports_file_and_line() -> None:
    text = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"\nsandbox_image = "x"\n'
    with pytest.raises(InputError) as e:
        read_containerd("/etc/containerd/config.toml", text)
    assert e.value.line == 3
    assert str(e.value).startswith("/etc/containerd/config.toml:3: not valid TOML")


def test_duplicate_key_is_input_error() -> None:
    with pytest.raises(InputError):
        read_containerd("c.toml", "version = 2\nversion = 3\n")


def test_lines_of_tricky_keys() -> None:
    text = (
        "version = 2\n"
        'note = """\n'
        "[plugins.fake]\n"
        'max_concurrent_downloads = 1\n"""\n'
        "arr = [\n  'a', # comment ]\n  \"b]\",\n]\n"
        "[plugins.'io.containerd.grpc.v1.cri']\n"
        "registry = { config_path = '/etc/certs.d',"
        ' mirrors = { "docker.io" = { endpoint = [] } } }\n'
        'containerd.snapshotter = "zfs"\n'
        '"max_concurrent_downloads" = 7 # quoted key\n'
        "[plugins . \"io.containerd.grpc.v1.cri\" . 'x.y']\n"
        "k = 1\n"
    )
    doc = read_containerd("c.toml", text)
    by = {(v.table, v.name): v.origin.line for v in doc.runtime_values}
    assert by[((), "note")] == 2
    assert by[((), "arr")] == 6
    assert by[((*CRI_V2, "registry"), "config_path")] == 11
    assert by[((*CRI_V2, "registry", "mirrors", "docker.io"), "endpoint")] == 11
    assert by[((*CRI_V2, "containerd"), "snapshotter")] == 12
    assert by[(CRI_V2, "max_concurrent_downloads")] == 13
    assert by[((*CRI_V2, "x.y"), "k")] == 15
    assert ((("plugins", "fake"), "max_concurrent_downloads")) not in by


_BARE = st.from_regex(r"[a-z_][a-z0-9_-]{0,6}", fullmatch=True)
_ANY_KEY = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6
)
_SCALARS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)


def _quoted(key: str, style: int) -> str:
    if style == 0 and _BARE_RE_OK(key):
        return key
    if style == 1 and "'" not in key and "\n" not in key and "\r" not in key:
        return f"'{key}'"
    return tomlkit.string(key).as_string()


def _BARE_RE_OK(key: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9_-]+", key) is not None


@st.composite
def toml_documents(draw: st.DrawFn) -> tuple[str, dict[tuple[str, ...], int]]:
    """A TOML text and the expected line of every key path in it."""
    lines: list[str] = []
    expected: dict[tuple[str, ...], int] = {}
    used_tables: set[tuple[str, ...]] = set()
    for t in range(draw(st.integers(0, 4))):
        if t == 0 and draw(st.booleans()):
            table: tuple[str, ...] = ()
        else:
            table = tuple(draw(st.lists(st.one_of(_BARE, _ANY_KEY), min_size=1, max_size=3)))
            if any(
                table[: i + 1] in used_tables or table[: i + 1] in expected
                for i in range(len(table))
            ):
                continue
            header = ".".join(_quoted(k, draw(st.integers(0, 2))) for k in table)
            lines.append(f"{' ' * draw(st.integers(0, 2))}[{header}]  # c")
            expected[table] = len(lines)
            for i in range(1, len(table)):
                expected.setdefault(table[:i], len(lines))
        used_tables.add(table)
        names = draw(st.lists(st.one_of(_BARE, _ANY_KEY), max_size=4, unique=True))
        for name in names:
            if draw(st.booleans()):
                lines.append("# a comment with = and [brackets]")
            style = draw(st.integers(0, 3))
            val = draw(_SCALARS)
            expected[(*table, name)] = len(lines) + 1
            if style == 3:
                lines.append(f'{_quoted(name, 2)} = """')
                lines.append("line with [x] = y")
                lines.append('end"""')
            elif isinstance(val, str):
                lines.append(f"{_quoted(name, style)} = [\n  {tomlkit.string(val).as_string()},\n]")
                lines[-1:] = lines[-1].split("\n")
            else:
                lines.append(f"{_quoted(name, style)} = {tomlkit.item(val).as_string()}")
    return "\n".join(lines) + "\n", expected


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(toml_documents())
def test_key_lines_property(case: tuple[str, dict[tuple[str, ...], int]]) -> None:
    text, expected = case
    try:
        tomlkit.parse(text)
    except TOMLKitError:
        return  # a generated clash (e.g. a key equal to a table); not what is tested here
    assert key_lines(text) == expected


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_read_arbitrary_text_raises_only_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        read_containerd("x.toml", text)


_TOMLISH = st.lists(
    st.sampled_from(
        [
            "version = 2",
            "version = 'x'",
            "[plugins]",
            '[plugins."io.containerd.grpc.v1.cri"]',
            "[plugins.cri]",
            "a = {b = 1, c = [1, 2]}",
            'x = """',
            '"""',
            "y = [",
            "]",
            "imports = ['a', 1]",
            "imports = 3",
            "k.l.m = 1",
            "[[aot]]",
            "'q' = 'r'",
            "# comment",
            "",
            "=",
            "[",
        ]
    ),
    max_size=12,
).map("\n".join)


@settings(max_examples=300)
@given(_TOMLISH)
def test_read_tomlish_text_raises_only_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        read_containerd("x.toml", text)


# -- rendering ---------------------------------------------------------------------------------


def test_render_17_exact_table_and_value() -> None:
    out = render_containerd(placement("containerd@1.7.13"))
    lines = out.splitlines()
    assert "version = 2" in lines
    i = lines.index('[plugins."io.containerd.grpc.v1.cri"]')
    assert lines[i + 1] == 'image_pull_progress_timeout = "30m0s"'
    assert "/etc/containerd/config.toml" in out
    assert "restart containerd" in out
    assert all(ln.startswith("#") for ln in lines[: lines.index("version = 2")])


def test_render_20_uses_images_table_and_version_3() -> None:
    out = render_containerd(placement("containerd@2.0.0", downloads=8))
    lines = out.splitlines()
    assert "version = 3" in lines
    i = lines.index('[plugins."io.containerd.cri.v1.images"]')
    assert lines[i + 1 : i + 3] == [
        'image_pull_progress_timeout = "30m0s"',
        "max_concurrent_downloads = 8",
    ]
    assert "/etc/containerd/conf.d/90-mlnode-images.toml" in out
    assert "grpc.v1.cri" not in out


def test_render_23_still_writes_version_3_and_says_why() -> None:
    out = render_containerd(placement("containerd@2.3.0"))
    assert "version = 3" in out.splitlines()
    assert "reads version 3" in out


def test_render_16_refused_deadline_has_no_key() -> None:
    p = placement("containerd@1.6.20", downloads=4)
    assert [r.key for r in p.refusals] == ["image_pull_progress_deadline_seconds"]
    out = render_containerd(p)
    assert "image_pull_progress_timeout" not in out
    assert "max_concurrent_downloads = 4" in out


def test_render_rejects_other_runtime() -> None:
    with pytest.raises(ValueError):
        render_containerd(placement("crio@1.31.3"))


def test_config_versions() -> None:
    assert config_version_for(Version.parse("1.6.20")) == 2
    assert config_version_for(Version.parse("1.7.13")) == 2
    assert config_version_for(Version.parse("2.0.0")) == 3
    assert config_version_for(Version.parse("2.3.0")) == 3
    assert max_config_version_for(Version.parse("1.7.13")) == 2
    assert max_config_version_for(Version.parse("2.2.1")) == 3
    assert max_config_version_for(Version.parse("2.3.0")) == 4
    # 1.7.16 starts on a version 3 file but reads it as 2: 2 stays the highest it reads.
    assert max_config_version_for(Version.parse("1.7.16")) == 2
    assert max_config_version_for(Version.parse("1.6.31")) == 2


def _docs(*texts: str) -> list[ParsedDocument]:
    return [read_containerd(f"/etc/containerd/{i}.toml", t) for i, t in enumerate(texts)]


def test_declared_config_versions_in_merge_order_with_lines() -> None:
    docs = _docs("# x\nversion = 2\n", "# none\n", "version = -1\n")
    got = [(n, o.line if o else None) for n, o in declared_config_versions(docs)]
    assert got == [(2, 2), (0, None), (-1, 1)]


@pytest.mark.parametrize(
    ("runtime", "texts", "checked"),
    [
        # 1.x: the merged config's version, the last non-zero one (mergo.WithOverride)
        ("1.7.20", ("version = 2\n", "version = 3\n"), [3]),
        ("1.7.20", ("version = 3\n", "version = 2\n"), [2]),
        ("1.7.20", ("version = 3\n", "# none\n"), [3]),
        ("1.7.20", ("version = 2\n", "version = 1\n"), [1]),
        ("1.6.20", ("# none\n",), [0]),
        # 2.0-2.2: version 0/1 files are converted to the version so far before merging
        ("2.0.5", ("version = 4\n", "version = 1\n"), [4]),
        ("2.2.7", ("version = 1\n",), [1]),
        ("2.2.7", ("version = 3\n", "version = -1\n"), [-1]),
        # 2.3: every file's own version
        ("2.3.0", ("version = 3\n", "version = 4\n"), [3, 4]),
        ("2.3.0", ("# none\n",), [0]),
    ],
)
def test_checked_config_versions_follow_each_release_line(
    runtime: str, texts: tuple[str, ...], checked: list[int]
) -> None:
    got = checked_config_versions(_docs(*texts), Version.parse(runtime))
    assert [n for n, _ in got] == checked


def test_table_for_moves_image_keys_between_versions() -> None:
    assert table_for(CRI_V2, "image_pull_progress_timeout", 3) == (
        CRI_V3_IMAGES,
        "image_pull_progress_timeout",
    )
    assert table_for(CRI_V3_IMAGES, "image_pull_progress_timeout", 1) == (
        ("plugins", "cri"),
        "image_pull_progress_timeout",
    )
    assert table_for(CRI_V2, "sandbox_image", 3) == ((*CRI_V3_IMAGES, "pinned_images"), "sandbox")
    assert table_for((*CRI_V2, "containerd"), "snapshotter", 3) == (CRI_V3_IMAGES, "snapshotter")
    assert table_for(CRI_V3_IMAGES, "snapshotter", 2) == ((*CRI_V2, "containerd"), "snapshotter")
    assert table_for((*CRI_V3_IMAGES, "pinned_images"), "other", 2) is None
    assert table_for(("plugins", "io.containerd.gc.v1.scheduler"), "pause_threshold", 3) == (
        ("plugins", "io.containerd.gc.v1.scheduler"),
        "pause_threshold",
    )


_RUNTIMES = st.sampled_from(
    [
        "containerd@1.6.20",
        "containerd@1.7.0",
        "containerd@1.7.13",
        "containerd@2.0.0",
        "containerd@2.1.4",
        "containerd@2.3.0",
    ]
)
_DEADLINES = st.one_of(st.none(), st.integers(0, 48 * 3600).map(float))
_DOWNLOADS = st.one_of(st.none(), st.integers(1, 64))


@settings(max_examples=80)
@given(_RUNTIMES, _DEADLINES, _DOWNLOADS)
def test_render_read_gives_back_values(
    runtime: str, deadline: float | None, downloads: int | None
) -> None:
    p = placement(runtime, deadline, downloads)
    out = render_containerd(p)
    doc = read_containerd("r.toml", out)
    version = config_version_for(p.runtime.version)  # type: ignore[arg-type]
    assert doc.facts.config_version == version
    for pv in p.runtime_values:
        home = table_for(pv.row.table, pv.row.name, version)
        assert home is not None
        assert value(doc, *home) == pv.value
    # render → read → (merge back into itself) is byte-stable
    assert merge_containerd(out, "r.toml", p) == out
    assert render_containerd(p) == out


# -- merging -----------------------------------------------------------------------------------


def _diff(a: str, b: str) -> list[tuple[str, str]]:
    import difflib

    sm = difflib.SequenceMatcher(a=a.splitlines(), b=b.splitlines())
    out = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag != "equal":
            out.append(("\n".join(a.splitlines()[i1:i2]), "\n".join(b.splitlines()[j1:j2])))
    return out


def test_merge_17_replaces_in_place_keeping_comments() -> None:
    text = V17.read_text()
    p = placement("containerd@1.7.13", downloads=6)
    merged = merge_containerd(text, str(V17), p)
    assert _diff(text, merged) == [
        (
            '    image_pull_progress_timeout = "5m0s"   # 1.7.10+ default\n'
            "    max_concurrent_downloads = 3",
            '    image_pull_progress_timeout = "30m0s"   # 1.7.10+ default\n'
            "    max_concurrent_downloads = 6",
        )
    ]
    assert merge_containerd(merged, str(V17), p) == merged
    doc = read_containerd("m.toml", merged)
    assert value(doc, CRI_V2, "image_pull_progress_timeout") == "30m0s"


def test_merge_adds_missing_key_with_sibling_indent() -> None:
    text = V17.read_text().replace(
        '    image_pull_progress_timeout = "5m0s"   # 1.7.10+ default\n', ""
    )
    merged = merge_containerd(text, "c.toml", placement("containerd@1.7.13"))
    [(old, new)] = _diff(text, merged)
    assert old == ""
    assert new == '    image_pull_progress_timeout = "30m0s"'
    doc = read_containerd("c.toml", merged)
    assert value(doc, CRI_V2, "image_pull_progress_timeout") == "30m0s"


def test_merge_v2_file_on_containerd_2_writes_v2_table_and_drops_stale_v3_key() -> None:
    text = (
        "version = 2\n"
        '[plugins."io.containerd.grpc.v1.cri"]\n'
        '  sandbox_image = "registry.k8s.io/pause:3.9"\n'
        '[plugins."io.containerd.cri.v1.images"]\n'
        '  image_pull_progress_timeout = "1m0s"  # stale\n'
        "  max_concurrent_downloads = 2\n"
    )
    merged = merge_containerd(text, "c.toml", placement("containerd@2.1.0"))
    doc = read_containerd("c.toml", merged)
    assert value(doc, CRI_V2, "image_pull_progress_timeout") == "30m0s"
    assert not [
        v
        for v in doc.runtime_values
        if v.table == CRI_V3_IMAGES and v.name == "image_pull_progress_timeout"
    ]
    assert value(doc, CRI_V3_IMAGES, "max_concurrent_downloads") == 2  # not placed: untouched
    assert merge_containerd(merged, "c.toml", placement("containerd@2.1.0")) == merged


def test_merge_v3_file_on_containerd_2_writes_images_table_and_drops_stale_v2_key() -> None:
    text = V3.read_text().replace(
        "  [plugins.'io.containerd.grpc.v1.cri']\n",
        "  [plugins.'io.containerd.grpc.v1.cri']\n    image_pull_progress_timeout = '2m0s'\n",
    )
    p = placement("containerd@2.3.0", downloads=10)
    merged = merge_containerd(text, "c.toml", p)
    doc = read_containerd("c.toml", merged)
    assert value(doc, CRI_V3_IMAGES, "image_pull_progress_timeout") == "30m0s"
    assert value(doc, CRI_V3_IMAGES, "max_concurrent_downloads") == 10
    assert "2m0s" not in merged
    assert "# containerd 2.x, config version 3" in merged
    assert merge_containerd(merged, "c.toml", p) == merged


def test_merge_keeps_literal_quoting_when_value_already_right() -> None:
    text = (
        "version = 3\n[plugins.'io.containerd.cri.v1.images']\n"
        "image_pull_progress_timeout = '30m0s'\n"
    )
    assert merge_containerd(text, "c.toml", placement("containerd@2.0.0")) == text


def test_merge_v3_file_on_17_is_refused_with_line() -> None:
    with pytest.raises(InputError) as e:
        merge_containerd(
            V3.read_text(), "/etc/containerd/config.toml", placement("containerd@1.7.13")
        )
    assert e.value.line == line_with(V3.read_text(), "version = 3")
    assert "up to 2" in str(e.value)


def test_merge_v4_file_needs_23() -> None:
    text = "version = 4\n"
    with pytest.raises(InputError):
        merge_containerd(text, "c.toml", placement("containerd@2.2.0"))
    merged = merge_containerd(text, "c.toml", placement("containerd@2.3.0"))
    doc = read_containerd("c.toml", merged)
    assert value(doc, CRI_V3_IMAGES, "image_pull_progress_timeout") == "30m0s"


def test_merge_into_empty_file_sets_version() -> None:
    merged = merge_containerd("", "c.toml", placement("containerd@2.0.0"))
    doc = read_containerd("c.toml", merged)
    assert doc.facts.config_version == 3
    assert value(doc, CRI_V3_IMAGES, "image_pull_progress_timeout") == "30m0s"
    merged17 = merge_containerd("# mine\n", "c.toml", placement("containerd@1.7.13"))
    assert merged17.startswith("# mine\n")
    assert read_containerd("c.toml", merged17).facts.config_version == 2


def test_merge_versionless_file_with_plugins_is_version_1() -> None:
    text = "[plugins.cri]\n  sandbox_image = 'x'\n"
    merged = merge_containerd(text, "c.toml", placement("containerd@1.7.13"))
    doc = read_containerd("c.toml", merged)
    assert value(doc, ("plugins", "cri"), "image_pull_progress_timeout") == "30m0s"
    assert doc.facts.config_version == 1


def test_merge_into_inline_and_dotted_forms() -> None:
    text = 'version = 2\nplugins."io.containerd.grpc.v1.cri".sandbox_image = "x"\n'
    merged = merge_containerd(text, "c.toml", placement("containerd@1.7.13"))
    assert (
        value(read_containerd("c.toml", merged), CRI_V2, "image_pull_progress_timeout") == "30m0s"
    )
    text = 'version = 2\n[plugins]\n"io.containerd.grpc.v1.cri" = { sandbox_image = "x" }\n'
    merged = merge_containerd(text, "c.toml", placement("containerd@1.7.13"))
    assert (
        value(read_containerd("c.toml", merged), CRI_V2, "image_pull_progress_timeout") == "30m0s"
    )
    assert merge_containerd(merged, "c.toml", placement("containerd@1.7.13")) == merged


def test_merge_refuses_value_where_table_needed() -> None:
    text = 'version = 2\nplugins = "oops"\n'
    with pytest.raises(InputError) as e:
        merge_containerd(text, "c.toml", placement("containerd@1.7.13"))
    assert e.value.line == 2


_UNRELATED = st.lists(
    st.sampled_from(
        [
            "# operator note",
            '[plugins."io.containerd.gc.v1.scheduler"]\npause_threshold = 0.02',
            '[plugins."io.containerd.grpc.v1.cri".containerd]\nsnapshotter = "zfs"  # zfs!',
            "[grpc]\naddress = '/run/x.sock'",
            '[timeouts]\n"io.containerd.timeout.shim.cleanup" = "5s"',
            '[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "p:1"\n'
            "max_concurrent_downloads = 1",
            "[proxy_plugins.x]\ntype = 'snapshot'\naddress = '/run/x'",
        ]
    ),
    max_size=5,
    unique=True,
)


@settings(max_examples=100)
@given(_UNRELATED, _RUNTIMES, _DEADLINES, _DOWNLOADS)
def test_merge_idempotent_and_keeps_unrelated(
    chunks: list[str], runtime: str, deadline: float | None, downloads: int | None
) -> None:
    p = placement(runtime, deadline, downloads)
    version = config_version_for(p.runtime.version)  # type: ignore[arg-type]
    text = f"version = {version}\n" + "\n".join(chunks) + "\n"
    merged = merge_containerd(text, "c.toml", p)
    assert merge_containerd(merged, "c.toml", p) == merged
    before = read_containerd("a.toml", text)
    after = read_containerd("b.toml", merged)
    # Placed keys, and their stale copies in other versions' tables (which merge removes).
    placed = {
        table_for(pv.row.table, pv.row.name, other)
        for pv in p.runtime_values
        for other in (1, 2, 3)
    }
    for v in before.runtime_values:
        if (v.table, v.name) not in placed:
            assert value(after, v.table, v.name) == v.value
    for pv in p.runtime_values:
        home = table_for(pv.row.table, pv.row.name, version)
        assert home is not None
        assert value(after, *home) == pv.value
    for line in text.splitlines():
        if line.startswith("#") or "zfs!" in line:
            assert line in merged.splitlines()


# -- imports -----------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for p, text in files.items():
        real = root / p.lstrip("/")
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text(text)


def test_imports_breadth_first_globs_relative_and_cycles(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "/etc/containerd/config.toml": (
                "version = 3\nimports = ['conf.d/*.toml', '/opt/extra.toml']\n"
            ),
            "/etc/containerd/conf.d/20-b.toml": "version = 3\nimports = ['../config.toml']\n",
            "/etc/containerd/conf.d/10-a.toml": "version = 3\nimports = ['nested/x.toml']\n",
            "/etc/containerd/conf.d/nested/x.toml": "version = 3\n",
            "/etc/containerd/conf.d/readme.txt": "not toml [",
            "/opt/extra.toml": "version = 3\n",
        },
    )
    docs = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    assert [d.facts.node_path for d in docs] == [
        "/etc/containerd/config.toml",
        "/etc/containerd/conf.d/10-a.toml",
        "/etc/containerd/conf.d/20-b.toml",
        "/opt/extra.toml",
        "/etc/containerd/conf.d/nested/x.toml",
    ]
    assert docs[0].path == str(tmp_path / "etc/containerd/config.toml")


def test_imports_missing_literal_import_is_error_with_line(tmp_path: Path) -> None:
    _tree(tmp_path, {"/etc/containerd/config.toml": "version = 2\n\nimports = ['gone.toml']\n"})
    with pytest.raises(InputError) as e:
        read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    assert e.value.line == 3
    assert "/etc/containerd/gone.toml" in str(e.value)


def test_imports_glob_without_match_is_fine(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "/etc/containerd/config.toml": (
                "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n"
            )
        },
    )
    docs = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    assert len(docs) == 1


def test_imports_relative_glob_in_1x_is_relative_to_slash(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "/etc/containerd/config.toml": "version = 2\nimports = ['conf.d/*.toml']\n",
            "/etc/containerd/conf.d/a.toml": "version = 2\n",
            "/conf.d/b.toml": "version = 2\n",
        },
    )
    v17 = read_containerd_with_imports(
        "/etc/containerd/config.toml", tmp_path, runtime_version=Version.parse("1.7.13")
    )
    assert [d.facts.node_path for d in v17][1:] == ["/conf.d/b.toml"]
    v2 = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    assert [d.facts.node_path for d in v2][1:] == ["/etc/containerd/conf.d/a.toml"]


def test_imports_main_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)


def _import_tree(root: Path) -> None:
    _tree(
        root,
        {
            "/etc/containerd/config.toml": (
                "version = 2\nroot = '/data/containerd'\nimports = ['dropin.toml']\n"
                '[plugins."io.containerd.grpc.v1.cri"]\n'
                '  sandbox_image = "example.com/pause:9"\n'
                "  max_concurrent_downloads = 7\n"
            ),
            "/etc/containerd/dropin.toml": (
                "version = 2\nroot = ''\nimports = ['dropin.toml']\n"
                '[plugins."io.containerd.grpc.v1.cri"]\n'
                "  max_concurrent_downloads = 5\n"
            ),
        },
    )


def test_effective_values_1x_replaces_whole_plugin_table(tmp_path: Path) -> None:
    _import_tree(tmp_path)
    docs = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    eff = effective_containerd_values(docs, Version.parse("1.7.13"))
    assert (CRI_V2, "sandbox_image") not in eff  # gone: the import replaced the table
    assert eff[(CRI_V2, "max_concurrent_downloads")].value == 5
    assert eff[(CRI_V2, "max_concurrent_downloads")].origin.path.endswith("dropin.toml")
    assert eff[((), "root")].value == "/data/containerd"  # "" does not override
    assert eff[((), "imports")].value == ["dropin.toml", "dropin.toml"]  # 1.x appends


def test_effective_values_2x_merges_key_by_key(tmp_path: Path) -> None:
    _import_tree(tmp_path)
    docs = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    eff = effective_containerd_values(docs, Version.parse("2.1.0"))
    assert eff[(CRI_V2, "sandbox_image")].value == "example.com/pause:9"
    assert eff[(CRI_V2, "max_concurrent_downloads")].value == 5
    assert eff[((), "imports")].value == ["dropin.toml"]  # 2.x drops duplicates


# -- the real containerd (Debian 1.6.20 here); no daemon needed ------------------------------

_CONTAINERD = shutil.which("containerd")


def test_real_containerd_default_config_reads() -> None:
    if _CONTAINERD is None:
        unavailable("no containerd binary (apt-get install containerd)")
    out = subprocess.run(
        [_CONTAINERD, "config", "default"], capture_output=True, text=True, timeout=20, check=True
    ).stdout
    doc = read_containerd("default.toml", out)
    assert doc.facts.config_version == 2
    assert value(doc, CRI_V2, "max_concurrent_downloads") == 3


def test_real_containerd_accepts_rendered_v2(tmp_path: Path) -> None:
    if _CONTAINERD is None:
        unavailable("no containerd binary (apt-get install containerd)")
    version = subprocess.run(
        [_CONTAINERD, "--version"], capture_output=True, text=True, timeout=20, check=True
    ).stdout.split()[2]
    runtime = f"containerd@{version.split('~')[0].lstrip('v')}"
    try:
        p = placement(runtime, downloads=7)
    except Exception:
        pytest.skip(f"mlnode does not know {runtime}")
    f = tmp_path / "config.toml"
    f.write_text(render_containerd(p))
    dump = subprocess.run(
        [_CONTAINERD, "--config", str(f), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    doc = read_containerd("dump.toml", dump)
    assert value(doc, CRI_V2, "max_concurrent_downloads") == 7


def test_real_containerd_agrees_on_import_merge(tmp_path: Path) -> None:
    if _CONTAINERD is None:
        unavailable("no containerd binary (apt-get install containerd)")
    version = subprocess.run(
        [_CONTAINERD, "--version"], capture_output=True, text=True, timeout=20, check=True
    ).stdout.split()[2]
    runtime_version = Version.parse(version.split("~")[0])
    _import_tree(tmp_path)
    main = tmp_path / "etc/containerd/config.toml"
    # containerd resolves the literal imports against the real main file's directory
    dump = subprocess.run(
        [_CONTAINERD, "--config", str(main), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    dumped = read_containerd("dump.toml", dump)
    docs = read_containerd_with_imports("/etc/containerd/config.toml", tmp_path)
    eff = effective_containerd_values(docs, runtime_version)
    assert value(dumped, CRI_V2, "max_concurrent_downloads") == 5
    sandbox = value(dumped, CRI_V2, "sandbox_image")
    if (CRI_V2, "sandbox_image") in eff:
        assert sandbox == eff[(CRI_V2, "sandbox_image")].value
    else:
        assert sandbox != "example.com/pause:9"  # the built-in default came back


def test_real_containerd_agrees_with_the_config_version_table(tmp_path: Path) -> None:
    """`containerd config dump` runs LoadConfig (ValidateV2) and each plugin's Decode, as
    the daemon does at start: the table's verdict for this binary must match it."""
    if _CONTAINERD is None:
        unavailable("no containerd binary (apt-get install containerd)")
    version = subprocess.run(
        [_CONTAINERD, "--version"], capture_output=True, text=True, timeout=20, check=True
    ).stdout.split()[2]
    runtime_version = Version.parse(version.split("~")[0].lstrip("v"))
    if runtime_version.at_least(Version.parse("2.0.0")):
        pytest.skip("this check is written for a 1.x binary")
    f = tmp_path / "config.toml"
    f.write_text(
        "version = 3\n"
        '[plugins."io.containerd.cri.v1.images"]\n  max_concurrent_downloads = 7\n'
        '[plugins."io.containerd.grpc.v1.cri"]\n  max_concurrent_downloads = 9\n'
    )
    run = subprocess.run(
        [_CONTAINERD, "--config", str(f), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    outcome = containerd_config_version(runtime_version, 3).outcome
    if outcome is ConfigVersionOutcome.REFUSED:
        assert run.returncode != 0 and "unsupported config version `3`" in run.stderr
        return
    assert outcome is ConfigVersionOutcome.READ_AS_V2
    assert run.returncode == 0, run.stderr
    dumped = read_containerd("dump.toml", run.stdout)
    # read as version 2: the full-name grpc table counts, the 2.x images table is ignored
    assert value(dumped, CRI_V2, "max_concurrent_downloads") == 9
    assert not [v for v in dumped.runtime_values if v.table[:2] == CRI_V3_IMAGES]
