"""E113 (a hosts.toml containerd cannot decode), E114 (one containerd never reads) and
W215 (a mirror that is not the first host), on files given and on a whole node tree."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.formats.containerd import parse_mirror_url, render_hosts_toml
from mlnode.formats.detect import read_any
from mlnode.lint.engine import LintContext, lint_documents
from mlnode.versions import Version, parse_kubernetes_version, parse_runtime

runner = CliRunner()
CERTS = "/n/etc/containerd/certs.d"
CONFIG_16 = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{}"\n'
GOOD = render_hosts_toml("docker.io", parse_mirror_url("http://127.0.0.1:6055"), Version(1, 6, 20))


def _codes(files: dict[str, str], runtime: str = "containerd@1.6.20", **ctx: object) -> list:
    docs = [d for p, t in files.items() for d in read_any(p, t)]
    report = lint_documents(
        docs,
        LintContext(parse_kubernetes_version("1.30"), parse_runtime(runtime), **ctx),  # type: ignore[arg-type]
    )
    return [(f.code, f.origin.path if f.origin else None, f.origin.line if f.origin else None)
            for f in report.findings if f.code in ("E113", "E114", "W215")]  # fmt: skip


def test_written_file_is_clean() -> None:
    files = {"/n/etc/containerd/config.toml": CONFIG_16.format(CERTS.removeprefix("/n")),
             f"{CERTS}/docker.io/hosts.toml": GOOD}  # fmt: skip
    assert _codes(files) == []


def test_e113_undecodable_with_line() -> None:
    bad = GOOD.replace('capabilities = ["pull", "resolve"]', 'capabilities = "pull"')
    line = bad.splitlines().index('  capabilities = "pull"') + 1
    assert _codes({f"{CERTS}/docker.io/hosts.toml": bad}) == [
        ("E113", f"{CERTS}/docker.io/hosts.toml", line)
    ]
    assert _codes({f"{CERTS}/docker.io/hosts.toml": "server = [\n"})[0][0] == "E113"


def test_e114_config_path_elsewhere_or_unset() -> None:
    elsewhere = {"/n/etc/containerd/config.toml": CONFIG_16.format("/opt/certs"),
                 f"{CERTS}/docker.io/hosts.toml": GOOD}  # fmt: skip
    assert [c[0] for c in _codes(elsewhere)] == ["E114"]
    unset = {"/n/etc/containerd/config.toml": "version = 2\n",
             f"{CERTS}/docker.io/hosts.toml": GOOD}  # fmt: skip
    assert [c[0] for c in _codes(unset)] == ["E114"]
    # 2.2 reads /etc/containerd/certs.d by default; 2.1 does not.
    v3 = {"/n/etc/containerd/config.toml": "version = 3\n", f"{CERTS}/docker.io/hosts.toml": GOOD}
    assert _codes(v3, "containerd@2.2.0") == []
    assert [c[0] for c in _codes(v3, "containerd@2.1.0")] == ["E114"]
    # A list of roots: the second one holds it.
    listed = {"/n/etc/containerd/config.toml": CONFIG_16.format("/opt/x:/etc/containerd/certs.d"),
              f"{CERTS}/docker.io/hosts.toml": GOOD}  # fmt: skip
    assert _codes(listed) == []
    # Without the containerd config among the files, where config_path is is unknown.
    assert _codes({f"{CERTS}/docker.io/hosts.toml": GOOD}) == []


def test_w215_mirror_not_first() -> None:
    text = (
        'server = "https://registry-1.docker.io"\n'
        '[host."https://cache.example"]\n  capabilities = ["pull"]\n'
        '[host."http://127.0.0.1:6055"]\n  capabilities = ["pull", "resolve"]\n'
    )
    path = f"{CERTS}/docker.io/hosts.toml"
    assert _codes({path: text}) == [("W215", path, 4)]
    assert _codes({path: text}, mirror_url="http://127.0.0.1:6055") == [("W215", path, 4)]
    assert _codes({path: text}, mirror_url="http://127.0.0.1:7000") == []
    # The registry itself on loopback is not a mirror.
    own = '[host."https://a.example"]\n[host."http://127.0.0.1:5000"]\n'
    assert _codes({f"{CERTS}/127.0.0.1:5000/hosts.toml": own}) == []
    assert _codes({path: GOOD}) == []


def test_lint_root_finds_hosts_files_in_config_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text(CONFIG_16.format("/opt/hosts"))
    (root / "opt/hosts/ghcr.io").mkdir(parents=True)
    (root / "opt/hosts/ghcr.io/hosts.toml").write_text("server = [\n")
    (root / "etc/containerd/certs.d/docker.io").mkdir(parents=True)
    (root / "etc/containerd/certs.d/docker.io/hosts.toml").write_text(GOOD)
    res = runner.invoke(
        app,
        ["lint", "--root", str(root), "--kubernetes-version", "1.30", "--runtime",
         "containerd@1.6.20", "-o", "json"],
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    found = {(f["code"], Path(f["file"]).relative_to(root).as_posix()) for f in report["findings"]}
    assert ("E113", "opt/hosts/ghcr.io/hosts.toml") in found
    assert ("E114", "etc/containerd/certs.d/docker.io/hosts.toml") in found


def test_lint_root_stays_in_the_root(tmp_path: Path) -> None:
    """config_path = a link out of the tree: read as <root>/<target>, never the host's."""
    root = tmp_path / "root"
    outside = tmp_path / "outside/x.io"
    outside.mkdir(parents=True)
    (outside / "hosts.toml").write_text("server = [\n")
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text(CONFIG_16.format("/etc/hosts.d"))
    (root / "etc/hosts.d").symlink_to(tmp_path / "outside")
    res = runner.invoke(
        app,
        ["lint", "--root", str(root), "--kubernetes-version", "1.30", "--runtime",
         "containerd@1.6.20", "-o", "json"],
    )  # fmt: skip
    assert str(tmp_path / "outside") not in res.stdout
    assert all(f["code"] != "E113" for f in json.loads(res.stdout)["findings"])
