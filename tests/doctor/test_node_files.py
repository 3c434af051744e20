"""Issue 11, acceptance 1: the classic KUBELET_EXTRA_ARGS line on kubelet 1.30 / containerd
1.7.13 — `mlnode doctor --root T` names the removed flag as why the kubelet does not start and
prints the `mlnode apply` line that fixes it; that line, run, fixes it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from apply.layouts import build_kubeadm, build_kubespray
from typer.testing import CliRunner

from mlnode.cli.app import app

LINE = "--image-gc-low-threshold 70 --image-gc-high-threshold 80 --image-pull-progress-deadline 30m"
runner = CliRunner()


def _doctor(root: Path, *extra: str) -> tuple[int, dict]:
    r = runner.invoke(app, ["doctor", "--root", str(root), "--no-journal", "-o", "json", *extra])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def test_classic_line_names_the_removed_flag_and_the_apply_line(tmp_path: Path) -> None:
    root = tmp_path / "node"
    build_kubeadm(root, extra_args=f'KUBELET_EXTRA_ARGS="{LINE}"\n')
    (root / "etc/hostname").write_text("GPU-7\n")
    code, doc = _doctor(root)
    assert code == 1  # an error finding
    node = doc["nodes"][0]
    assert node["name"] == "gpu-7"  # the tree's own host name, not this machine's
    assert node["kubelet_version"] == "1.30.2"
    assert node["runtime"] == "containerd@1.7.13"
    e101 = [f for f in node["findings"] if f["code"] == "E101"]
    assert len(e101) == 1, node["findings"]
    f = e101[0]
    assert f["severity"] == "error"
    assert "--image-pull-progress-deadline" in f["title"]
    assert "the kubelet does not start" in f["cause"]
    assert f["evidence"] == [f"{root}/etc/default/kubelet:1"]
    command = shlex.join(["mlnode", "apply", "--root", str(root), "--from-kubelet-args", LINE])
    assert f["fix"].startswith(command + "  ")

    # The printed line is the fix: run it (without restarting anything) and ask again.
    argv = [*shlex.split(f["fix"].split("  ")[0])[1:], "--no-restart"]
    applied = runner.invoke(app, argv)
    assert applied.exit_code == 0, applied.output
    code, after = _doctor(root)
    codes = {f["code"] for f in after["nodes"][0]["findings"]}
    assert "E101" not in codes and code == 0, after["nodes"][0]["findings"]
    deadline = after["nodes"][0]["pull_deadline_seconds"]
    assert deadline["value"] == 1800.0 and "config.toml" in deadline["source"]


def test_human_output_prints_the_apply_line_literally(tmp_path: Path) -> None:
    root = tmp_path / "node [x]"  # a name rich would read as markup
    build_kubeadm(root, extra_args=f'KUBELET_EXTRA_ARGS="{LINE}"\n')
    r = runner.invoke(app, ["doctor", "--root", str(root), "--no-journal"])
    assert r.exit_code == 1, r.output
    assert "error E101: --image-pull-progress-deadline was removed in Kubernetes 1.24" in r.stdout
    assert "why: the kubelet does not start" in r.stdout
    assert f"fix: mlnode apply --root '{root}' --from-kubelet-args '{LINE}'" in r.stdout


def test_thresholds_carry_their_provenance(tmp_path: Path) -> None:
    root = tmp_path / "node"
    build_kubeadm(root, extra_args=f'KUBELET_EXTRA_ARGS="{LINE}"\n')
    _, doc = _doctor(root)
    t = doc["nodes"][0]["thresholds"]
    assert t["image_gc_high_threshold_percent"] == {
        "value": 80,
        "source": f"{root}/etc/default/kubelet:1 (KUBELET_EXTRA_ARGS)",
    }
    assert t["image_minimum_gc_age_seconds"]["source"] == "default of kubelet 1.30.2"
    assert doc["nodes"][0]["pull_deadline_seconds"]["value"] == 300.0
    assert "1.7.10" in doc["nodes"][0]["pull_deadline_seconds"]["source"]


def test_kubespray_node_without_image_flags_gets_no_apply_line(tmp_path: Path) -> None:
    root = tmp_path / "node"
    build_kubespray(root)
    _, doc = _doctor(root)
    assert doc["nodes"][0]["name"] == "gpu-node-1"  # the kubelet's --hostname-override
    fixes = [f["fix"] for f in doc["nodes"][0]["findings"]]
    assert not any("--from-kubelet-args" in fx for fx in fixes), fixes


def test_a_root_that_is_not_a_directory_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["doctor", "--root", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"mlnode: error: --root: {tmp_path / 'nope'} is not a directory"
    ]


def test_a_hostile_tree_is_read_inside_its_root_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text('KUBELET_EXTRA_ARGS="--image-gc-high-threshold=99"  # SECRET\n')
    root = build_kubeadm(tmp_path / "node", extra_args=f'KUBELET_EXTRA_ARGS="{LINE}"\n')
    # absolute and ../ symlinks out of the root, a loop, a hosts.toml pointing at /etc/passwd
    (root / "etc/default/kubelet").unlink()
    (root / "etc/default/kubelet").symlink_to(outside)
    (root / "var/lib/kubelet/config.yaml").unlink()
    (root / "var/lib/kubelet/config.yaml").symlink_to("../../../../outside.txt")
    (root / "etc/hostname").symlink_to("/etc/hostname")
    hosts = root / "etc/containerd/certs.d/docker.io/hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.symlink_to("/etc/passwd")
    before = {p: p.lstat() for p in tmp_path.rglob("*")}
    r = runner.invoke(app, ["doctor", "--root", str(root), "--no-journal", "-o", "json"])
    assert r.exit_code in (0, 1), r.output
    assert "SECRET" not in r.stdout and "root:x:" not in r.stdout
    doc = json.loads(r.stdout)
    assert doc["nodes"][0]["name"] == "node"  # the looping /etc/hostname is no name
    assert doc["nodes"][0]["thresholds"]["image_gc_high_threshold_percent"]["value"] == 85
    assert {p: p.lstat() for p in tmp_path.rglob("*")} == before  # nothing written


def test_a_deeply_nested_node_file_is_one_line(tmp_path: Path) -> None:
    root = build_kubeadm(tmp_path / "node")
    deep = "[" * 5000 + "]" * 5000
    (root / "var/lib/kubelet/config.yaml").write_text(
        f"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nx: {deep}\n"
    )
    r = runner.invoke(app, ["doctor", "--root", str(root), "--no-journal"])
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"mlnode: error: {root}/var/lib/kubelet/config.yaml:3: nested")
