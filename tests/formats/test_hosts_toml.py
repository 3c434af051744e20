"""hosts.toml and the CRI-O drop-in that put the node mirror first: rendered, merged,
read back, and parsed the way containerd reads them (tomllib, then mlnode.registry.hosts,
which follows containerd's host order)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mlnode.errors import InputError, InvalidValue, UsageError
from mlnode.formats.base import DocumentKind
from mlnode.formats.containerd import (
    merge_hosts_toml,
    parse_mirror_url,
    parse_registry_name,
    read_hosts_toml,
    render_hosts_toml,
    set_config_path,
)
from mlnode.formats.crio_mirror import render_crio_mirror
from mlnode.formats.detect import detect_kind, read_any
from mlnode.formats.facts import HostsTomlFacts
from mlnode.formats.mirror_files import MirrorFormat, mirror_files
from mlnode.registry.hosts import hosts_for, parse_hosts_toml
from mlnode.versions import RuntimeKind, RuntimeSpec, Version

MIRROR = parse_mirror_url("http://127.0.0.1:6055")
V16 = Version.parse("1.6.20")
V21 = Version.parse("2.1.0")


def _hosts(text: str, namespace: str) -> list[tuple[str, frozenset[str]]]:
    tomllib.loads(text)  # containerd silently ignores a file that does not decode
    found = parse_hosts_toml(text, namespace=namespace, path=Path(f"/x/{namespace}/hosts.toml"))
    return [(h.base_url, h.capabilities) for h in found]


@pytest.mark.parametrize(
    ("namespace", "server"),
    [
        ("docker.io", "https://registry-1.docker.io"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("ghcr.io", "https://ghcr.io"),
    ],
)
@pytest.mark.parametrize("version", [V16, V21])
def test_rendered_file_puts_the_mirror_first_and_keeps_the_registry(
    namespace: str, server: str, version: Version
) -> None:
    text = render_hosts_toml(namespace, MIRROR, version)
    assert text.startswith("# Written by mlnode")
    assert _hosts(text, namespace) == [
        ("http://127.0.0.1:6055", frozenset({"pull", "resolve"})),
        (server, frozenset({"pull", "resolve", "push"})),
    ]
    assert tomllib.loads(text)["server"] == server


def _mirror_table(version: str) -> dict[str, object]:
    doc = tomllib.loads(render_hosts_toml("ghcr.io", MIRROR, Version.parse(version)))
    table: dict[str, object] = doc["host"]["http://127.0.0.1:6055"]
    return table


def test_dial_timeout_only_where_containerd_reads_it() -> None:
    for version in ("1.6.20", "1.7.13", "2.0.6"):
        assert "dial_timeout" not in _mirror_table(version), version
    for version in ("2.0.7", "2.1.0", "2.2.1"):
        assert _mirror_table(version)["dial_timeout"] == "200ms", version


def test_default_file_has_no_server_so_each_registry_is_its_own_fallback() -> None:
    text = render_hosts_toml("_default", MIRROR, V16)
    assert "server" not in tomllib.loads(text)
    assert _hosts(text, "ghcr.io") == [
        ("http://127.0.0.1:6055", frozenset({"pull", "resolve"})),
        ("https://ghcr.io", frozenset({"pull", "resolve", "push"})),
    ]


EXISTING = """\
# team settings
server = "https://ghcr.io"
capabilities = ["pull", "resolve"]

[host."https://cache.example:8443"]  # the team cache
  capabilities = ["pull"]
  skip_verify = true
"""


def test_merge_keeps_other_hosts_after_the_mirror_and_the_server() -> None:
    merged = merge_hosts_toml(EXISTING, "/x/ghcr.io/hosts.toml", "ghcr.io", MIRROR, V21)
    assert "# team settings" in merged and "# the team cache" in merged
    assert [u for u, _ in _hosts(merged, "ghcr.io")] == [
        "http://127.0.0.1:6055",
        "https://cache.example:8443",
        "https://ghcr.io",
    ]
    # A second merge changes nothing.
    assert merge_hosts_toml(merged, "/x/ghcr.io/hosts.toml", "ghcr.io", MIRROR, V21) == merged


def test_merge_moves_an_existing_mirror_entry_first_without_duplicating_it() -> None:
    text = EXISTING + '\n[host."http://127.0.0.1:6055"]\n  capabilities = ["pull"]\n'
    merged = merge_hosts_toml(text, "/x/ghcr.io/hosts.toml", "ghcr.io", MIRROR, V21)
    assert merged.count('[host."http://127.0.0.1:6055"]') == 1
    hosts = _hosts(merged, "ghcr.io")
    assert hosts[0] == ("http://127.0.0.1:6055", frozenset({"pull"}))  # kept as written
    assert len(hosts) == 3


def test_merge_without_server_adds_the_registry_itself() -> None:
    text = '[host."https://other.example"]\n  capabilities = ["pull"]\n'
    merged = merge_hosts_toml(text, "/x/127.0.0.1:5000/hosts.toml", "127.0.0.1:5000", MIRROR, V16)
    assert tomllib.loads(merged)["server"] == "http://127.0.0.1:5000"


def test_merge_refuses_a_file_containerd_cannot_decode() -> None:
    with pytest.raises(InputError, match=r"hosts.toml:2: containerd cannot decode"):
        merge_hosts_toml("server = 'x'\nserver = 'y'\n", "/x/a/hosts.toml", "a", MIRROR, V16)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('server = "https://a"\n[host."x"\n', 2, "not valid TOML"),
        ("server = 5\n", 1, "server: expected a URL string"),
        ('[host."http://m:1"]\n  capabilities = "pull"\n', 2, "expected a list of strings"),
        ('[host."http://m:1"]\n  skip_verify = "yes"\n', 2, "expected true or false"),
        ('[host."http://m:1"]\n  dial_timeout = 200\n', 2, "duration string"),
    ],
)
def test_read_records_what_containerd_cannot_decode_with_the_line(
    text: str, line: int, what: str
) -> None:
    doc = read_any("/n/etc/containerd/certs.d/127.0.0.1_5000_/hosts.toml", text)[0]
    assert doc.kind is DocumentKind.CONTAINERD_HOSTS
    facts = doc.facts_as(HostsTomlFacts)
    assert facts.namespace == "127.0.0.1:5000"
    assert facts.error is not None and what in facts.error
    assert facts.error_line == line


def test_read_lists_hosts_in_file_order_with_lines() -> None:
    merged = merge_hosts_toml(EXISTING, "/x/ghcr.io/hosts.toml", "ghcr.io", MIRROR, V21)
    facts = read_hosts_toml("/x/ghcr.io/hosts.toml", merged).facts_as(HostsTomlFacts)
    assert facts.error is None and facts.server == "https://ghcr.io"
    assert [h.url for h in facts.hosts] == ["http://127.0.0.1:6055", "https://cache.example:8443"]
    lines = merged.splitlines()
    assert all(h.line and lines[h.line - 1].startswith(f'[host."{h.url}"]') for h in facts.hosts)


def test_detect_a_hosts_file_by_content() -> None:
    assert detect_kind("/tmp/x.toml", 'server = "https://a"\n') is DocumentKind.CONTAINERD_HOSTS
    assert detect_kind("/tmp/x.toml", 'version = 2\nroot = "/r"\n') is DocumentKind.CONTAINERD


def test_hosts_for_reads_the_written_default_dir(tmp_path: Path) -> None:
    d = tmp_path / "_default"
    d.mkdir()
    (d / "hosts.toml").write_text(render_hosts_toml("_default", MIRROR, V16))
    assert [h.base_url for h in hosts_for("docker.io", tmp_path)] == [
        "http://127.0.0.1:6055",
        "https://registry-1.docker.io",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "127.0.0.1:6055",
        "ftp://127.0.0.1:6055",
        "http://127.0.0.1",
        "http://127.0.0.1:6055/v2",
        "http://user@127.0.0.1:6055",
        "http://127.0.0.1:6055?x=1",
        "http://127.0.0.1:99999",
        "http://bad_host:1",
        "http://127.0.0.1:0",
    ],
)
def test_mirror_url_must_be_scheme_host_port(bad: str) -> None:
    with pytest.raises(InvalidValue):
        parse_mirror_url(bad)


def test_mirror_url_forms() -> None:
    assert parse_mirror_url("http://127.0.0.1:6055/").url == "http://127.0.0.1:6055"
    assert parse_mirror_url("http://[::1]:6055").loopback
    assert parse_mirror_url("http://localhost:6055").loopback
    assert not parse_mirror_url("https://mirror.example:443").loopback


@pytest.mark.parametrize("bad", ["http://docker.io", "docker.io/library", "_default", "a b", ""])
def test_registry_names(bad: str) -> None:
    assert parse_registry_name("Docker.IO") == "docker.io"
    assert parse_registry_name("127.0.0.1:5000") == "127.0.0.1:5000"
    with pytest.raises(InvalidValue):
        parse_registry_name(bad)


def test_set_config_path_in_the_table_of_each_version() -> None:
    v2 = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "p"\n'
    out = tomllib.loads(set_config_path(v2, "c.toml", V16))
    cri = out["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["sandbox_image"] == "p"
    v3 = 'version = 3\n\n[plugins."io.containerd.cri.v1.images"]\n  snapshotter = "o"\n'
    out = tomllib.loads(set_config_path(v3, "c.toml", V21))
    assert out["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == (
        "/etc/containerd/certs.d"
    )
    new = tomllib.loads(set_config_path(None, "c.toml", V21))
    assert new["version"] == 3
    assert new["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"]
    new16 = tomllib.loads(set_config_path(None, "c.toml", V16))
    assert new16["version"] == 2
    assert new16["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"]


def test_crio_dropin_parses_with_mirror_first() -> None:
    text = render_crio_mirror(["docker.io", "127.0.0.1:5000"], MIRROR)
    doc = tomllib.loads(text)
    regs = {r["prefix"]: r for r in doc["registry"]}
    assert regs["docker.io"]["location"] == "docker.io"
    assert "insecure" not in regs["docker.io"]
    assert regs["127.0.0.1:5000"]["insecure"] is True
    # the registry rides in the mirror location's path: CRI-O sends no ?ns=
    assert regs["docker.io"]["mirror"] == [
        {"location": "127.0.0.1:6055/docker.io", "insecure": True}
    ]
    assert regs["127.0.0.1:5000"]["mirror"] == [
        {"location": "127.0.0.1:6055/127.0.0.1_5000", "insecure": True}
    ]


def test_mirror_files_default_or_registries() -> None:
    rt = RuntimeSpec(RuntimeKind.CONTAINERD, V16)
    files, notes = mirror_files(MirrorFormat.CONTAINERD_HOSTS, rt, MIRROR, [])
    assert [f.path for f in files] == ["/etc/containerd/certs.d/_default/hosts.toml"]
    assert any("restart containerd" in n for n in notes)
    files, _ = mirror_files(MirrorFormat.CONTAINERD_HOSTS, rt, MIRROR, ["docker.io", "a.io"])
    assert [f.path.split("/")[-2] for f in files] == ["docker.io", "a.io"]
    old = RuntimeSpec(RuntimeKind.CONTAINERD, Version.parse("1.6.16"))
    with pytest.raises(UsageError, match="--mirror-registry"):
        mirror_files(MirrorFormat.CONTAINERD_HOSTS, old, MIRROR, [])
    new = RuntimeSpec(RuntimeKind.CONTAINERD, Version.parse("2.2.0"))
    _, notes = mirror_files(MirrorFormat.CONTAINERD_HOSTS, new, MIRROR, [])
    assert any("need no config change" in n for n in notes)


def test_a_file_that_would_not_decode_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlnode.formats.containerd._hosts as hosts

    # Through the module object itself (other tests may have re-imported mlnode modules).
    mirror = hosts.parse_mirror_url(MIRROR.url)
    monkeypatch.setattr(hosts, "_mirror_table_text", lambda m, v: f'[host."{m.url}"\n')
    with pytest.raises(hosts.InputError, match="nothing written"):
        hosts.render_hosts_toml("docker.io", mirror, V16)
    monkeypatch.setattr(hosts, "_mirror_table_text", lambda m, v: '[host."http://other:1"]\n')
    with pytest.raises(hosts.InputError, match="mirror not first"):
        hosts.render_hosts_toml("docker.io", mirror, V16)
