"""`mlnode apply --root` on node trees built from genuine upstream files (PROVENANCE.md).

Two trees: kubeadm's packaged ``kubelet.service`` + ``10-kubeadm.conf`` (the RPM flavour,
``EnvironmentFile=-/etc/sysconfig/kubelet``, holding the classic line), and kubespray's
rendered ``kubelet.env`` + ``kubelet-config.yaml``. On each: ``--dry-run`` changes not one
byte; a real apply (the kubelet stand-in, restarted by the service-manager stand-in as
``--systemctl``) succeeds and verifies; every written file keeps every unrelated line byte
for byte and in order; the genuine files apply does not need to touch stay byte-identical;
``mlnode lint --root`` accepts the result.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from apply.conftest import free_port
from apply.layouts import CONTAINERD_CONFIG_V2, build_kubeadm, build_kubespray
from apply.standin_services import StandinServiceManager
from apply.treeutil import tree_digest, whole_tree_digest
from typer.testing import CliRunner

from mlnode.cli.app import app

from .test_corpus_merge import CORPUS, LINE, assert_only_intended

runner = CliRunner()
STANDIN_SERVICES = Path(__file__).parent.parent / "apply" / "standin_services.py"


def _containerd_standin(root: Path, bindir: str, version: str) -> None:
    """containerd that answers --version and ``config dump`` (the root's config as is)."""
    p = root / bindir / "containerd"
    p.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  --version|-v) echo "containerd containerd.io {version} '
        'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";;\n'
        f'  "config dump") cat "{root}/etc/containerd/config.toml";;\n'
        '  *) echo "containerd stand-in: $*" >&2; exit 1;;\n'
        "esac\n"
    )
    p.chmod(p.stat().st_mode | stat.S_IXUSR)


UNIT_DIR = "usr/lib/systemd/system"
SYSCONFIG = "etc/sysconfig/kubelet"
SYSCONFIG_TEXT = (
    "# Extra kubelet flags (the kubelet RPM ships KUBELET_EXTRA_ARGS= here).\n"
    f'KUBELET_EXTRA_ARGS="{LINE}"\n'
)


def _kubeadm(root: Path) -> None:
    build_kubeadm(
        root,
        flavor="rpm",
        kubelet_version="1.33.1",
        containerd_version="1.7.20",
        extra_args=SYSCONFIG_TEXT,
    )
    shutil.copy(CORPUS / "kubeadm-packaging/kubelet.service", root / UNIT_DIR / "kubelet.service")
    shutil.copy(
        CORPUS / "kubeadm-packaging/10-kubeadm.conf",
        root / UNIT_DIR / "kubelet.service.d/10-kubeadm.conf",
    )
    _containerd_standin(root, "usr/bin", "1.7.20")


def _kubespray(root: Path) -> None:
    build_kubespray(
        root,
        kubelet_version="1.35.4",
        containerd_version="1.7.20",
        env=(CORPUS / "kubespray/kubelet.env").read_text(),
    )
    shutil.copy(
        CORPUS / "kubespray/kubelet-config.yaml", root / "etc/kubernetes/kubelet-config.yaml"
    )
    _containerd_standin(root, "usr/local/bin", "1.7.20")


CTRD_ADDED = ('    image_pull_progress_timeout = "30m0s"\n',)
RUNTIME_CGROUPS = "--runtime-cgroups=/system.slice/containerd.service"


@dataclass(frozen=True)
class Tree:
    build: Callable[[Path], None]
    kubelet_version: str
    #: genuine files apply leaves alone: node path -> corpus file
    untouched: dict[str, str]
    #: written files: node path -> (text before, lines added, lines removed)
    edits: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]


TREES = {
    "kubeadm-packaging": Tree(
        _kubeadm,
        "1.33.1",
        untouched={
            f"{UNIT_DIR}/kubelet.service": "kubeadm-packaging/kubelet.service",
            f"{UNIT_DIR}/kubelet.service.d/10-kubeadm.conf": "kubeadm-packaging/10-kubeadm.conf",
        },
        edits={
            # The classic line's flags go (removed in 1.24, or shadowing the config fields);
            # --config-dir arrives in the same variable; the comment above it stays.
            SYSCONFIG: (
                SYSCONFIG_TEXT,
                ('KUBELET_EXTRA_ARGS="--config-dir=/etc/kubernetes/kubelet.conf.d"\n',),
                (f'KUBELET_EXTRA_ARGS="{LINE}"\n',),
            ),
            "etc/containerd/config.toml": (CONTAINERD_CONFIG_V2, CTRD_ADDED, ()),
        },
    ),
    "kubespray-rendered": Tree(
        _kubespray,
        "1.35.4",
        untouched={"etc/kubernetes/kubelet-config.yaml": "kubespray/kubelet-config.yaml"},
        edits={
            "etc/kubernetes/kubelet.env": (
                (CORPUS / "kubespray/kubelet.env").read_text(),
                (f"{RUNTIME_CGROUPS} --config-dir=/etc/kubernetes/kubelet.conf.d \\\n",),
                (f"{RUNTIME_CGROUPS} \\\n",),
            ),
            "etc/containerd/config.toml": (CONTAINERD_CONFIG_V2, CTRD_ADDED, ()),
        },
    ),
}
DROPIN = "etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf"


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[list[StandinServiceManager]]:
    managers: list[StandinServiceManager] = []
    yield managers
    for m in managers:
        m.stop()


def _systemctl(tmp_path: Path, mgr: StandinServiceManager) -> Path:
    script = tmp_path / "systemctl"
    script.write_text(
        f"#!/bin/sh\nexec {sys.executable} {STANDIN_SERVICES} --root {mgr.root} --state-dir "
        f'{mgr.state_dir} --version {mgr.version} --port {mgr.port} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _lint_root(root: Path) -> dict[str, object]:
    res = runner.invoke(app, ["lint", "--root", str(root), "-o", "json"])
    assert res.exit_code == 0, res.output
    report: dict[str, object] = json.loads(res.stdout)
    return report


@pytest.mark.parametrize("name", sorted(TREES))
def test_dry_run_changes_no_byte(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    TREES[name].build(root)
    before = whole_tree_digest(root)
    res = runner.invoke(
        app, ["apply", "--root", str(root), "--dry-run", "--from-kubelet-args", LINE, "-o", "json"]
    )
    assert res.exit_code == 0, res.output
    changes = {f["path"]: f["change"] for f in json.loads(res.stdout)["files"]}
    expected = {"/" + p: "modified" for p in TREES[name].edits} | {"/" + DROPIN: "created"}
    assert changes == expected
    assert whole_tree_digest(root) == before


@pytest.mark.parametrize("name", sorted(TREES))
def test_apply_for_real_keeps_every_unrelated_line(
    tmp_path: Path, name: str, standins: list[StandinServiceManager]
) -> None:
    tree = TREES[name]
    root = tmp_path / "root"
    tree.build(root)
    mgr = StandinServiceManager(root, tmp_path / "state", tree.kubelet_version, free_port())
    standins.append(mgr)
    mgr.restart("kubelet")
    base = f"http://127.0.0.1:{mgr.port}"
    args = [
        "apply",
        "--root",
        str(root),
        "--systemctl",
        str(_systemctl(tmp_path, mgr)),
        "--timeout",
        "20s",
        "--healthz-url",
        f"{base}/healthz",
        "--configz-url",
        f"{base}/configz",
        "--from-kubelet-args",
        LINE,
        "-o",
        "json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "applied" and doc["verification"]["ok"] is True
    assert mgr.is_active("kubelet")
    for node_path, corpus_file in tree.untouched.items():
        assert (root / node_path).read_bytes() == (CORPUS / corpus_file).read_bytes()
    for node_path, (old, added, removed) in tree.edits.items():
        assert_only_intended(old, (root / node_path).read_text(), added, removed)
    report = _lint_root(root)
    assert report["summary"]["error"] == 0  # type: ignore[index]
    eff = report["effective"]
    assert eff["image_gc_high_threshold_percent"]["value"] == 80  # type: ignore[index]
    assert eff["image_gc_low_threshold_percent"]["value"] == 70  # type: ignore[index]
    assert eff["image_pull_progress_deadline_seconds"]["value"] == 1800  # type: ignore[index]
    # A second apply has nothing to do and writes nothing.
    before = tree_digest(root)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["status"] == "no-change"
    assert tree_digest(root) == before
