"""`mlnode apply --mirror` on the kubeadm and kubespray trees: hosts.toml that lint accepts,
config_path where containerd has none (with a restart), dry runs that change no byte, a
second apply that is a no-op, rollback, and bad input refused with one line."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.registry.hosts import hosts_for

from .layouts import CONTAINERD_CONFIG_V2, build_kubeadm, build_kubespray
from .treeutil import tree_digest, whole_tree_digest

runner = CliRunner()
MIRROR = "http://127.0.0.1:6055"
LAYOUTS: dict[str, Callable[[Path], Path]] = {
    "kubeadm": lambda r: build_kubeadm(r, containerd_version="1.6.20"),
    "kubespray": lambda r: build_kubespray(r, containerd_version="1.6.20"),
}
CERTS = "etc/containerd/certs.d"


def _apply(root: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    res = runner.invoke(
        app, ["apply", "--root", str(root), "--mirror", MIRROR, "--no-restart", "-o", "json",
              *extra]
    )  # fmt: skip
    assert res.stdout, res.output
    return res.exit_code, json.loads(res.stdout)


def _lint(root: Path) -> dict:  # type: ignore[type-arg]
    res = runner.invoke(app, ["lint", "--root", str(root), "-o", "json"])
    report: dict = json.loads(res.stdout)  # type: ignore[type-arg]
    assert res.exit_code == 0, report["findings"]
    return report


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_apply_mirror_writes_what_lint_accepts_and_is_idempotent(root: Path, layout: str) -> None:
    LAYOUTS[layout](root)
    original = tree_digest(root)
    before = whole_tree_digest(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "--mirror", MIRROR, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "then: systemctl restart containerd  (containerd reads config_path only at start)" in (
        res.stdout
    )
    assert whole_tree_digest(root) == before  # --dry-run: not one byte

    code, doc = _apply(root)
    assert code == 0, doc
    assert doc["status"] == "written" and doc["mirror"] == MIRROR
    assert {f["path"] for f in doc["files"]} == {
        "/etc/containerd/config.toml",
        "/etc/containerd/certs.d/_default/hosts.toml",
    }
    assert [a["command"] for a in doc["actions"]] == ["systemctl restart containerd"]
    config = tomllib.loads((root / "etc/containerd/config.toml").read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"  # the rest is kept
    assert (
        "# keep at most 3 layer downloads per pull"
        in (root / "etc/containerd/config.toml").read_text()
    )
    for registry, server in [
        ("docker.io", "https://registry-1.docker.io"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ]:
        hosts = hosts_for(registry, root / CERTS)
        assert [h.base_url for h in hosts] == [MIRROR, server]

    report = _lint(root)
    assert any(f.endswith("_default/hosts.toml") for f in report["files"])
    assert not [f for f in report["findings"] if f["code"] in ("E113", "E114", "W215")]

    written = tree_digest(root)
    code, doc = _apply(root)
    assert code == 0 and doc["status"] == "no-change"
    assert tree_digest(root) == written

    res = runner.invoke(app, ["rollback", "--root", str(root), "--no-restart", "-o", "json"])
    assert res.exit_code == 0, res.output
    assert tree_digest(root) == original and not (root / CERTS).exists()
    assert (root / "etc/containerd/config.toml").read_text() == CONTAINERD_CONFIG_V2


def test_existing_hosts_file_keeps_its_hosts_after_the_mirror(root: Path) -> None:
    build_kubeadm(root, containerd_version="1.6.20")
    config = root / "etc/containerd/config.toml"
    config.write_text(
        CONTAINERD_CONFIG_V2
        + '\n    [plugins."io.containerd.grpc.v1.cri".registry]\n'
        + '      config_path = "/etc/containerd/certs.d"\n'
    )
    hosts = root / CERTS / "ghcr.io/hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text(
        'server = "https://ghcr.io"\n\n[host."https://cache.example"]\n  capabilities = ["pull"]\n'
    )
    code, doc = _apply(root, "--mirror-registry", "ghcr.io", "--mirror-registry", "docker.io")
    assert code == 0, doc
    assert doc["actions"] == []  # config_path was there: no restart
    assert any("no restart needed" in n for n in doc["notes"])
    assert {f["path"]: f["change"] for f in doc["files"]} == {
        "/etc/containerd/certs.d/ghcr.io/hosts.toml": "modified",
        "/etc/containerd/certs.d/docker.io/hosts.toml": "created",
    }
    assert [h.base_url for h in hosts_for("ghcr.io", root / CERTS)] == [
        MIRROR,
        "https://cache.example",
        "https://ghcr.io",
    ]
    _lint(root)
    assert (
        _apply(root, "--mirror-registry", "ghcr.io", "--mirror-registry", "docker.io")[1]["status"]
        == "no-change"
    )


def test_containerd_2_2_needs_no_config_path(root: Path) -> None:
    build_kubeadm(root, containerd_version="2.2.1", containerd_config="version = 3\n")
    code, doc = _apply(root)
    assert code == 0, doc
    assert [f["path"] for f in doc["files"]] == ["/etc/containerd/certs.d/_default/hosts.toml"]
    assert doc["actions"] == []
    hosts = tomllib.loads((root / CERTS / "_default/hosts.toml").read_text())
    assert hosts["host"][MIRROR]["dial_timeout"] == "200ms"


def test_non_loopback_mirror_is_warned_about(root: Path) -> None:
    build_kubeadm(root, containerd_version="1.6.20")
    res = runner.invoke(
        app, ["apply", "--root", str(root), "--mirror", "http://10.0.0.9:6055", "--dry-run"]
    )
    assert res.exit_code == 0, res.output
    assert "warning: the mirror http://10.0.0.9:6055 is not on loopback" in res.stdout


def _refused(root: Path, args: list[str], what: str) -> None:
    before = whole_tree_digest(root)
    res = runner.invoke(app, ["apply", "--root", str(root), "--no-restart", *args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: "), res.stderr
    assert what in lines[0]
    assert "Traceback" not in res.output
    assert whole_tree_digest(root) == before


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--mirror", "127.0.0.1:6055"], "--mirror: "),
        (["--mirror", "http://127.0.0.1"], "no host and port"),
        (["--mirror", "http://127.0.0.1:6055/v2/"], "a path is not supported"),
        (["--mirror", MIRROR, "--mirror-registry", "https://docker.io"], "--mirror-registry"),
        (["--mirror", MIRROR, "--mirror-registry", "no_such registry"], "--mirror-registry"),
        (["--mirror", MIRROR, "--image-gc-high-threshold", "80"], "in a run of their own"),
        (["--mirror-registry", "docker.io"], "--mirror: required"),
    ],
)
def test_bad_input_one_line_nothing_written(root: Path, args: list[str], what: str) -> None:
    build_kubeadm(root, containerd_version="1.6.20")
    _refused(root, args, what)


def test_default_dir_unknown_to_old_containerd_needs_registries(root: Path) -> None:
    build_kubeadm(root, containerd_version="1.6.16")
    _refused(root, ["--mirror", MIRROR], "--mirror-registry")


@pytest.mark.parametrize("dry_run", [False, True])
def test_hosts_file_linked_out_of_the_root_is_refused(
    root: Path, tmp_path: Path, dry_run: bool
) -> None:
    build_kubeadm(root, containerd_version="1.6.20")
    outside = tmp_path / "outside-hosts.toml"
    outside.write_text('server = "https://registry-1.docker.io"\n')
    d = root / CERTS / "docker.io"
    d.mkdir(parents=True)
    (d / "hosts.toml").symlink_to(outside)
    _refused(
        root,
        ["--mirror", MIRROR, "--mirror-registry", "docker.io", *(["--dry-run"] if dry_run else [])],
        "outside the root",
    )
    assert outside.read_text() == 'server = "https://registry-1.docker.io"\n'


def test_deprecated_registry_mirrors_are_refused(root: Path) -> None:
    build_kubeadm(
        root,
        containerd_version="1.6.20",
        containerd_config=CONTAINERD_CONFIG_V2
        + '\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
        + '  endpoint = ["https://mirror.example"]\n',
    )
    _refused(root, ["--mirror", MIRROR], "`mirrors` cannot be set")


def test_broken_existing_hosts_file_is_refused(root: Path) -> None:
    build_kubeadm(root, containerd_version="1.6.20")
    d = root / CERTS / "docker.io"
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text('server = "https://a"\n[host."x"\n')
    _refused(root, ["--mirror", MIRROR, "--mirror-registry", "docker.io"], "cannot decode")


def test_crio_node_gets_the_registries_dropin(root: Path) -> None:
    build_kubeadm(root, containerd_version="1.6.20", containerd_config=None)
    (root / "usr/bin/containerd").unlink()
    (root / "etc/crio/crio.conf.d").mkdir(parents=True)
    code, doc = _apply(root, "--runtime", "crio@1.30.4", "--mirror-registry", "docker.io")
    assert code == 0, doc
    path = root / "etc/containers/registries.conf.d/90-mlnode-mirror.conf"
    reg = tomllib.loads(path.read_text())["registry"][0]
    assert reg["prefix"] == "docker.io"
    assert reg["mirror"] == [{"location": "127.0.0.1:6055", "insecure": True}]
    assert [a["command"] for a in doc["actions"]] == ["systemctl restart crio"]
    _refused(root, ["--mirror", MIRROR, "--runtime", "crio@1.30.4"], "--mirror-registry")


def _mirror_plan(root: Path):  # type: ignore[no-untyped-def]
    from mlnode.formats.containerd import parse_mirror_url
    from mlnode.ops.apply import MirrorRequest, plan_node_mirror

    return plan_node_mirror(root, MirrorRequest(parse_mirror_url(MIRROR)))


def test_restart_and_verify_config_path_in_the_dump(root: Path) -> None:
    from mlnode.ops.apply import execute_apply
    from mlnode.ops.services import RecordingServiceManager
    from mlnode.ops.verify import CommandRuntimeConfig, Verifier

    from .conftest import containerd_dump_runner

    build_kubeadm(root, containerd_version="1.6.20")
    mgr = RecordingServiceManager()
    dump = CommandRuntimeConfig(("containerd", "config", "dump"), containerd_dump_runner(root))
    verifier = Verifier(mgr, runtime_config=dump, interval_seconds=0, sleep=lambda s: None)
    result = execute_apply(_mirror_plan(root), services=mgr, verifier=verifier)
    assert result.status == "applied", result.error
    assert mgr.calls == ["restart containerd"]
    assert result.verification is not None
    assert [c.name for c in result.verification.checks] == [
        "unit containerd active",
        "runtime plugins.io.containerd.grpc.v1.cri.registry.config_path",
    ]


def test_config_path_not_in_effect_restores_every_byte(root: Path) -> None:
    from mlnode.node import CommandResult
    from mlnode.ops.apply import execute_apply
    from mlnode.ops.services import RecordingServiceManager
    from mlnode.ops.verify import CommandRuntimeConfig, Verifier

    build_kubeadm(root, containerd_version="1.6.20")
    before = tree_digest(root)
    mgr = RecordingServiceManager()

    def stale_dump(argv):  # type: ignore[no-untyped-def]
        return CommandResult(tuple(argv), 0, CONTAINERD_CONFIG_V2)  # the old config in effect

    dump = CommandRuntimeConfig(("containerd", "config", "dump"), stale_dump)
    verifier = Verifier(mgr, runtime_config=dump, interval_seconds=0, sleep=lambda s: None)
    result = execute_apply(
        _mirror_plan(root), services=mgr, verifier=verifier, timeout_seconds=0.01
    )
    assert result.status == "restored"
    assert "config_path" in (result.error or "")
    assert tree_digest(root) == before
