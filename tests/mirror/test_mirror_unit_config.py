"""The mirror's config file, ``--upstream``, docker.io's aliases and ``mlnode mirror --check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.errors import InputError, InvalidValue, UsageError
from mlnode.mirror import MirrorConfig, check_config, load_config, parse_upstream_option
from mlnode.mirror._config import canonical_registry

runner = CliRunner()

GOOD = """\
listen: 127.0.0.1:7000
cache_dir: cache
cache_max_bytes: 1GiB
chunk_bytes: 8MiB
connections: 2
stall_seconds: 1.5
retries: 3
reap_seconds: 5
retain_committed: true
default_registry: index.docker.io
upstreams:
  - registry: docker.io
  - registry: registry.internal:5000
    endpoint: https://registry.internal:5000/
    ca_file: ca.pem
    client_cert: c.pem
    client_key: k.pem
    mirrors: [http://127.0.0.1:30020]
"""


def _write(tmp_path: Path, text: str) -> Path:
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    p = tmp_path / "mirror.yaml"
    p.write_text(text)
    return p


def test_a_good_file(tmp_path: Path) -> None:
    cfg = check_config(load_config(_write(tmp_path, GOOD)))
    assert (cfg.listen_host, cfg.listen_port, cfg.url) == (
        "127.0.0.1",
        7000,
        "http://127.0.0.1:7000",
    )
    assert cfg.cache_dir == tmp_path / "cache"  # relative to the file
    assert (cfg.cache_max_bytes, cfg.chunk_bytes) == (1024**3, 8 * 1024**2)
    assert (cfg.connections, cfg.stall_seconds, cfg.retries, cfg.reap_seconds) == (2, 1.5, 3, 5)
    assert cfg.retain_committed and cfg.default_registry == "docker.io"
    hub = cfg.upstreams["docker.io"]
    assert hub.endpoint == "https://registry-1.docker.io"
    internal = cfg.upstreams["registry.internal:5000"]
    assert internal.endpoint == "https://registry.internal:5000"
    assert internal.ca_file == tmp_path / "ca.pem" and internal.client_key == tmp_path / "k.pem"
    assert internal.mirrors == ("http://127.0.0.1:30020",)
    assert cfg.upstream_for(None) is hub
    assert cfg.upstream_for("registry-1.docker.io") is hub
    assert cfg.upstream_for("Registry.Internal:5000") is internal
    assert cfg.upstream_for("elsewhere.example") is None


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("listen: 127.0.0.1:1\nbogus: 1\n", 2, "unknown key 'bogus'"),
        ("cache_max_bytes: lots\n", 1, "not a size"),
        ("chunk_bytes: 0\n", 1, "more than 0"),
        ("connections: 100\n", 1, "outside 1..64"),
        ("retain_committed: yes please\n", 1, "true or false"),
        ("listen: nowhere\n", 1, "HOST:PORT"),
        (
            "upstreams:\n  - registry: a.test\n    endpoint: ftp://a.test\n",
            2,
            "http:// or https://",
        ),
        (
            "upstreams:\n  - registry: a.test\n    endpoint: http://a.test:99999\n",
            2,
            "a.test:99999",
        ),
        (
            "upstreams:\n  - registry: a.test\n  - registry: b.test\n    ca_file: nope.pem\n",
            3,
            "nope.pem",
        ),
        ("upstreams:\n  - registry: b.test\n    client_cert: c.pem\n", 2, "go together"),
        ("upstreams:\n  - registry: b.test\n    colour: red\n", 2, "unknown key 'colour'"),
        ("upstreams:\n  - endpoint: http://b.test\n", 2, "registry is required"),
        ("upstreams:\n  - registry: 'not a host!'\n", 2, "not a registry"),
        ("listen: [unclosed\n", 2, "not YAML"),
        ("- a list\n", 1, "mapping"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_config(p)
    assert (e.value.path, e.value.line) == (p, line)
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_check_config() -> None:
    with pytest.raises(UsageError, match="no upstream registry"):
        check_config(MirrorConfig())
    up = parse_upstream_option("a.test")
    with pytest.raises(UsageError, match="not among the upstreams"):
        check_config(MirrorConfig(upstreams={"a.test": up}, default_registry="b.test"))
    with pytest.raises(UsageError, match="64KiB"):
        check_config(MirrorConfig(upstreams={"a.test": up}, chunk_bytes=1000))


@pytest.mark.parametrize(
    ("text", "registry", "endpoint"),
    [
        ("docker.io", "docker.io", "https://registry-1.docker.io"),
        ("index.docker.io", "docker.io", "https://registry-1.docker.io"),
        ("REGISTRY-1.DOCKER.IO", "docker.io", "https://registry-1.docker.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "[::1]:5000", "http://[::1]:5000"),
        ("registry.example:5000", "registry.example:5000", "https://registry.example:5000"),
        ("ghcr.io=http://127.0.0.1:30020/", "ghcr.io", "http://127.0.0.1:30020"),
    ],
)
def test_parse_upstream_option(text: str, registry: str, endpoint: str) -> None:
    up = parse_upstream_option(text)
    assert (up.registry, up.endpoint) == (registry, endpoint)


@pytest.mark.parametrize(
    "text", ["a.test=ftp://x", "a.test=http://", "bad host=http://x", "a.test=http://x?q=1"]
)
def test_parse_upstream_option_refuses(text: str) -> None:
    with pytest.raises(InvalidValue, match="--upstream"):
        parse_upstream_option(text)


def test_docker_aliases() -> None:
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io", " Docker.IO "):
        assert canonical_registry(name) == "docker.io"
    assert canonical_registry("quay.io") == "quay.io"


CONFIG_KEYS = {
    "schema",
    "listen",
    "url",
    "cache_dir",
    "cache_max_bytes",
    "retain_committed",
    "chunk_bytes",
    "connections",
    "stall_seconds",
    "retries",
    "reap_seconds",
    "unpack_factor",
    "default_registry",
    "upstreams",
}
UPSTREAM_KEYS = {
    "registry",
    "endpoint",
    "mirrors",
    "ca_file",
    "client_cert",
    "client_key",
    "skip_verify",
}


def test_check_cli_json(tmp_path: Path) -> None:
    p = _write(tmp_path, GOOD)
    r = runner.invoke(
        app,
        [
            "mirror",
            "--config",
            str(p),
            "--upstream",
            "127.0.0.1:5000",
            "--connections",
            "8",
            "--check",
            "--output",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert set(doc) == CONFIG_KEYS and doc["schema"] == "mlnode.mirror.config/v1"
    assert doc["connections"] == 8  # the option wins over the file
    assert doc["listen"] == "127.0.0.1:7000" and doc["cache_max_bytes"] == 1024**3
    assert [u["registry"] for u in doc["upstreams"]] == [
        "127.0.0.1:5000",
        "docker.io",
        "registry.internal:5000",
    ]
    assert all(set(u) == UPSTREAM_KEYS for u in doc["upstreams"])
    assert doc["upstreams"][0]["endpoint"] == "http://127.0.0.1:5000"
    assert doc["upstreams"][2]["ca_file"] == str(tmp_path / "ca.pem")


def test_check_cli_human(tmp_path: Path) -> None:
    r = runner.invoke(app, ["mirror", "--upstream", "docker.io", "--check"])
    assert r.exit_code == 0, r.output
    assert 'listen: "127.0.0.1:6055"' in r.stdout
    assert "schema" not in r.stdout


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--upstream", "a.test=ftp://x"], "--upstream"),
        ([], "--upstream"),
        (["--upstream", "a.test", "--listen", "nowhere"], "--listen"),
        (["--upstream", "a.test", "--connections", "0"], "--connections"),
        (["--upstream", "a.test", "--cache-max-bytes", "lots"], "--cache-max-bytes"),
        (["--upstream", "a.test", "--config", "CONFIG"], "mirror.yaml:2"),
    ],
)
def test_check_cli_errors_are_one_line(tmp_path: Path, args: list[str], where: str) -> None:
    p = _write(tmp_path, "listen: 127.0.0.1:1\nbogus: 1\n")
    args = [str(p) if a == "CONFIG" else a for a in args]
    r = runner.invoke(app, ["mirror", *args, "--check"])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: "), r.stderr
    assert where in lines[0]
    assert "Traceback" not in r.stderr


def test_a_config_nested_too_deep_or_with_a_nul_is_one_file_line_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InputError, match=r"deep\.yaml:1: nested more than"):
        load_config(deep)
    nul = tmp_path / "nul.yaml"
    nul.write_text('listen: "a\x00b"\n')
    with pytest.raises(InputError, match=r"nul\.yaml:1: contains a NUL byte"):
        load_config(nul)
