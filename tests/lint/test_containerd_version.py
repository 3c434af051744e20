"""containerd's config ``version`` per containerd version (E108 refused, W213 read as 2).

The expectations are containerd's own behaviour, read from its source at each tag:
1.6.32 and 1.7.17 added ``if version > 2 { return ... "unsupported config version" }`` to
``ValidateV2`` (services/server/config/config.go:106-110); before that a version 3 file is
decoded as version 2. 2.0-2.2 refuse above 3 and 2.3 above 4 (``ValidateVersion``); a
negative version panics in 2.x's migration loop; 2.3 refuses an import above the root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.formats.containerd import read_containerd
from mlnode.knowledge.table import (
    CONTAINERD_CONFIG_VERSIONS,
    ConfigVersionOutcome,
    containerd_config_version,
    containerd_native_config_version,
)
from mlnode.lint.engine import LintContext, lint_documents
from mlnode.versions import RuntimeKind, RuntimeSpec, Version, parse_runtime

CORPUS = Path(__file__).parent.parent / "data" / "upstream" / "containerd"
DOCS_V3 = CORPUS / "docs-cri-config-2.0.11-v3.toml"
runner = CliRunner()


def lint(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["lint", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def lint_json(path: Path, runtime: str, kubernetes: str = "1.30") -> tuple[int, list[dict]]:
    code, out, err = lint(
        str(path), "--kubernetes-version", kubernetes, "--runtime", runtime, "-o", "json"
    )
    assert "Traceback" not in out + err
    return code, json.loads(out)["findings"]


# (containerd, file version, code lint must give or None), on both sides of each boundary.
CASES = [
    ("1.6.20", 2, None),
    ("1.6.31", 1, None),
    ("1.6.31", 3, "W213"),
    ("1.6.31", 4, "W213"),
    ("1.6.31", -1, "W213"),
    ("1.6.32", 2, None),
    ("1.6.32", 3, "E108"),
    ("1.6.39", 4, "E108"),
    ("1.7.0", 3, "W213"),
    ("1.7.16", 2, None),
    ("1.7.16", 3, "W213"),
    ("1.7.17", 3, "E108"),
    ("1.7.17", 2, None),
    ("1.7.20", 3, "E108"),
    ("1.7.34", 4, "E108"),
    ("2.0.0", 2, None),
    ("2.0.0", 3, None),
    ("2.0.0", 4, "E108"),
    ("2.0.0", -1, "E108"),
    ("2.2.7", 3, None),
    ("2.2.7", 4, "E108"),
    ("2.3.0", 3, None),
    ("2.3.0", 4, None),
    ("2.3.0", 5, "E108"),
    ("2.3.0", -1, "E108"),
]


@pytest.mark.parametrize(
    ("containerd", "file_version", "expected"),
    CASES,
    ids=[f"{c}-v{n}" for c, n, _ in CASES],
)
def test_version_rule_per_containerd_version(
    tmp_path: Path, containerd: str, file_version: int, expected: str | None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"# a config\nversion = {file_version}\n")
    code, findings = lint_json(config, f"containerd@{containerd}")
    codes = [f["code"] for f in findings if f["code"] in ("E108", "W213")]
    assert codes == ([expected] if expected else []), findings
    assert code == (1 if expected == "E108" else 0)
    if expected:
        [f] = [f for f in findings if f["code"] == expected]
        assert f["line"] == 2
        assert f"version = {file_version}" in f["message"]
        assert "config.go" in f["message"]  # names the rule's source


def test_acceptance_version_3_on_1_7_20_is_an_error_naming_the_rule() -> None:
    code, findings = lint_json(DOCS_V3, "containerd@1.7.20")
    assert code == 1
    [e] = [f for f in findings if f["code"] == "E108"]
    assert e["severity"] == "error"
    assert "unsupported config version `3`" in e["message"]
    assert "services/server/config/config.go:106-110 ValidateV2" in e["message"]
    assert "v1.7.17" in e["message"]
    assert e["consequence"] == "containerd does not start"
    assert "version = 2" in e["fix"]


def test_acceptance_version_3_on_1_7_16_says_what_1_7_16_does() -> None:
    code, findings = lint_json(DOCS_V3, "containerd@1.7.16")
    assert code == 0
    assert not [f for f in findings if f["code"] == "E108"]
    [w] = [f for f in findings if f["code"] == "W213"]
    assert "reads config version 3 or higher as version 2" in w["message"]
    assert "ValidateV2 has no upper bound" in w["message"]
    assert "io.containerd.cri.v1.images" in w["consequence"]
    assert "ignored" in w["consequence"]


def test_human_output_exits_the_same_way() -> None:
    code, out, err = lint(
        str(DOCS_V3), "--kubernetes-version", "1.30", "--runtime", "containerd@1.7.20"
    )
    assert code == 1 and "error E108" in out and err == ""


def _lint_files(runtime: str, *texts: str) -> list[tuple[str, int | None, str]]:
    docs = [read_containerd(f"/etc/containerd/{i}.toml", t) for i, t in enumerate(texts)]
    ctx = LintContext(Version.parse("1.30"), parse_runtime(runtime))
    report = lint_documents(docs, ctx)
    return [
        (f.code, f.origin.line if f.origin else None, f.origin.path if f.origin else "")
        for f in report.findings
        if f.code in ("E108", "W213")
    ]


def test_1x_checks_the_merged_version_the_last_non_zero_one() -> None:
    # mergeConfig (mergo.WithOverride): each file's non-zero version overrides.
    assert _lint_files("containerd@1.7.20", "version = 2\n", "version = 3\n") == [
        ("E108", 1, "/etc/containerd/1.toml")
    ]
    assert _lint_files("containerd@1.7.20", "version = 3\n", "version = 2\n") == []
    assert _lint_files("containerd@1.7.20", "version = 3\n", "# no version\n") == [
        ("E108", 1, "/etc/containerd/0.toml")
    ]


def test_2_0_to_2_2_skip_version_0_and_1_files() -> None:
    # LoadConfig converts a 0/1 file to the version reached so far before merging it.
    assert _lint_files("containerd@2.0.5", "version = 4\n", "version = 1\n") == [
        ("E108", 1, "/etc/containerd/0.toml")
    ]
    assert _lint_files("containerd@2.0.5", "version = 4\n", "version = 3\n") == []


def test_2_3_refuses_an_import_above_the_root_version() -> None:
    assert _lint_files("containerd@2.3.0", "version = 3\n", "version = 4\n") == [
        ("E108", 1, "/etc/containerd/1.toml")
    ]
    assert _lint_files("containerd@2.3.0", "version = 4\n", "version = 3\n") == []
    # the root version is the first non-zero one
    assert _lint_files("containerd@2.3.0", "# none\n", "version = 3\n", "version = 4\n") == [
        ("E108", 1, "/etc/containerd/2.toml")
    ]
    # 2.2 has no such check: the merged version is 4 there, which it refuses anyway
    assert _lint_files("containerd@2.2.0", "version = 3\n", "version = 2\n") == []


def test_other_runtimes_get_no_containerd_version_finding(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("version = 9\n")
    ctx = LintContext(Version.parse("1.30"), RuntimeSpec(RuntimeKind.CRIO, Version.parse("1.30")))
    docs = [read_containerd(str(config), config.read_text())]
    assert not [f for f in lint_documents(docs, ctx).findings if f.code in ("E108", "W213")]


KNOWN = [
    "1.6.0",
    "1.6.31",
    "1.6.32",
    "1.6.39",
    "1.7.0",
    "1.7.16",
    "1.7.17",
    "1.7.34",
    "2.0.0",
    "2.1.5",
    "2.2.7",
    "2.3.0",
    "2.3.4",
]


@pytest.mark.parametrize("containerd", KNOWN)
def test_every_file_version_has_exactly_one_row(containerd: str) -> None:
    rv = Version.parse(containerd)
    for n in range(-3, 8):
        rows = [r for r in CONTAINERD_CONFIG_VERSIONS if r.span.contains(rv) and r.covers(n)]
        assert len(rows) == 1, (containerd, n, rows)
        assert rows[0].source.startswith("containerd v")


@pytest.mark.parametrize(
    ("containerd", "native", "highest"),
    [
        ("1.6.31", 2, None),  # no upper bound before the check
        ("1.6.32", 2, 2),
        ("1.7.16", 2, None),
        ("1.7.17", 2, 2),
        ("2.0.0", 3, 3),
        ("2.2.7", 3, 3),
        ("2.3.0", 4, 4),
    ],
)
def test_native_and_highest_accepted_version(
    containerd: str, native: int, highest: int | None
) -> None:
    rv = Version.parse(containerd)
    assert containerd_native_config_version(rv) == native
    starts = [
        n
        for n in range(0, 12)
        if containerd_config_version(rv, n).outcome
        not in (ConfigVersionOutcome.REFUSED, ConfigVersionOutcome.CRASHES)
    ]
    assert max(starts) == (11 if highest is None else highest)


def test_refusals_quote_containerd_with_the_files_number() -> None:
    row = containerd_config_version(Version.parse("1.7.20"), 3)
    assert row.says(3).startswith("unsupported config version `3`")
    row = containerd_config_version(Version.parse("2.0.0"), 4)
    assert row.says(4) == "expected containerd config version equal to or less than `3`, got `4`"
