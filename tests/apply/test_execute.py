"""apply/rollback carried out against a real kubelet stand-in process, faults included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mlnode.errors import ApplyError, LockHeld, VerificationFailed
from mlnode.knowledge.model import ImageSettings
from mlnode.ops.apply import ApplyPlan, detect_layout, execute_apply, execute_rollback, plan_apply
from mlnode.ops.backups import list_backups
from mlnode.ops.fileio import atomic_write, file_sha256
from mlnode.ops.services import RecordingServiceManager
from mlnode.ops.verify import CommandRuntimeConfig, UrlConfigzSource, Verifier

from .conftest import containerd_dump_runner
from .layouts import PLAIN_SERVICE, build_kubeadm, build_kubespray, build_plain
from .standin_services import StandinServiceManager
from .treeutil import tree_digest

MakeStandin = Callable[[Path, str], StandinServiceManager]

GC = ImageSettings(
    image_gc_high_threshold_percent=75,
    image_gc_low_threshold_percent=60,
    image_pull_progress_deadline_seconds=1800.0,
)


def verifier_for(mgr: StandinServiceManager) -> Verifier:
    base = f"http://127.0.0.1:{mgr.port}"
    return Verifier(
        mgr,
        healthz_url=f"{base}/healthz",
        configz=UrlConfigzSource(f"{base}/configz"),
        runtime_config=CommandRuntimeConfig(
            ("containerd", "config", "dump"), containerd_dump_runner(mgr.root)
        ),
        interval_seconds=0.1,
    )


def configz(mgr: StandinServiceManager) -> dict[str, object]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{mgr.port}/configz") as r:
        data: dict[str, object] = json.load(r)["kubeletconfig"]
        return data


@pytest.mark.parametrize(
    ("build", "version", "kwargs"),
    [
        (build_kubeadm, "1.30.2", {}),
        (build_kubeadm, "1.29.6", {"flavor": "rpm", "kubelet_version": "1.29.6"}),
        (build_kubeadm, "1.27.9", {"kubelet_version": "1.27.9"}),
        (build_kubespray, "1.30.2", {}),
        (build_plain, "1.31.1", {}),
    ],
    ids=[
        "kubeadm-deb-1.30",
        "kubeadm-rpm-1.29",
        "kubeadm-deb-1.27",
        "kubespray-1.30",
        "plain-1.31",
    ],
)
def test_apply_each_layout_for_real(
    root: Path,
    make_standin: MakeStandin,
    build: Callable[..., Path],
    version: str,
    kwargs: dict[str, str],
) -> None:
    build(root, **kwargs)
    mgr = make_standin(root, version)
    mgr.restart("kubelet")
    assert mgr.is_active("kubelet"), mgr.log.read_text()
    plan = plan_apply(detect_layout(root), GC)
    result = execute_apply(plan, services=mgr, verifier=verifier_for(mgr), timeout_seconds=20)
    assert result.status == "applied", (result.error, mgr.log.read_text())
    assert result.verification is not None and result.verification.ok
    live = configz(mgr)
    assert live["imageGCHighThresholdPercent"] == 75
    assert live["imageGCLowThresholdPercent"] == 60
    assert "restart kubelet" in mgr.calls and "restart containerd" in mgr.calls
    names = {c.name for c in result.verification.checks}
    # build_plain installs containerd 2.0.2 (CRI images plugin, config version 3); the other
    # layouts containerd 1.7.13 (the grpc.v1.cri plugin). Exactly that table is verified.
    table, other = "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"
    if build is build_plain:
        table, other = other, table
    assert f"runtime plugins.{table}.image_pull_progress_timeout" in names
    assert not any(other in n for n in names)
    # Idempotent: the second apply changes nothing and restarts nothing.
    calls = list(mgr.calls)
    again = execute_apply(plan_apply(detect_layout(root), GC), services=mgr)
    assert again.status == "no-change"
    assert mgr.calls == calls


def test_broken_node_with_removed_flag_is_fixed(root: Path, make_standin: MakeStandin) -> None:
    build_kubeadm(root, extra_args='KUBELET_EXTRA_ARGS="--image-pull-progress-deadline=30m"\n')
    mgr = make_standin(root, "1.30.2")
    mgr.restart("kubelet")
    assert not mgr.is_active("kubelet")
    assert "unknown flag: --image-pull-progress-deadline" in mgr.log.read_text()
    plan = plan_apply(detect_layout(root), ImageSettings(image_pull_progress_deadline_seconds=1800))
    result = execute_apply(plan, services=mgr, verifier=verifier_for(mgr), timeout_seconds=20)
    assert result.status == "applied", result.error
    assert "--image-pull-progress-deadline" not in " ".join(mgr.last_argv())


def test_failed_verification_restores_every_byte(root: Path, make_standin: MakeStandin) -> None:
    # The unit passes the flag itself: it beats the drop-in, so configz keeps 90.
    build_plain(root)
    unit = root / "etc/systemd/system/kubelet.service"
    unit.write_text(
        PLAIN_SERVICE.replace(
            "--kubeconfig=/etc/kubernetes/kubelet.conf \\",
            "--kubeconfig=/etc/kubernetes/kubelet.conf --image-gc-high-threshold=90 \\",
        )
    )
    mgr = make_standin(root, "1.31.1")
    mgr.restart("kubelet")
    before = tree_digest(root)
    plan = plan_apply(detect_layout(root), GC)
    assert any("ExecStart= passes --image-gc-high-threshold=90" in w for w in plan.warnings)
    result = execute_apply(plan, services=mgr, verifier=verifier_for(mgr), timeout_seconds=3)
    assert result.status == "restored"
    assert result.error is not None and "imageGCHighThresholdPercent: 90, want 75" in result.error
    assert tree_digest(root) == before  # every file under the root, sha256 + mode + owner
    assert mgr.is_active("kubelet")  # restarted again on the restored files
    assert result.restore_verification is not None and result.restore_verification.ok
    assert mgr.calls[-3:] == ["daemon-reload", "restart containerd", "restart kubelet"]
    with pytest.raises(VerificationFailed):
        result.raise_for_status()
    assert [b.status for b in list_backups(root)] == ["restored"]


def test_kubelet_that_does_not_come_back_is_restored(root: Path, make_standin: MakeStandin) -> None:
    build_kubeadm(root)
    mgr = make_standin(root, "1.30.2")
    mgr.restart("kubelet")
    before = tree_digest(root)
    plan = plan_apply(detect_layout(root), GC)
    # Sabotage after planning: the drop-in dir becomes unreadable to the stand-in by
    # writing an invalid drop-in that sorts after ours (lint never saw it).
    bad = root / "etc/kubernetes/kubelet.conf.d/99-broken.conf"
    bad.parent.mkdir(parents=True)
    bad.write_text("maxPods: 10\n")  # no apiVersion/kind: the kubelet refuses it
    result = execute_apply(plan, services=mgr, verifier=verifier_for(mgr), timeout_seconds=3)
    assert result.status == "restored"
    assert "unit kubelet active" in (result.error or "")
    bad.unlink()
    bad.parent.rmdir()
    bad.parent.parent.rmdir()  # /etc/kubernetes: made by this test, not by the apply
    assert tree_digest(root) == before


def test_crash_between_two_writes_in_process(root: Path) -> None:
    build_kubeadm(root)
    before = tree_digest(root)
    plan = plan_apply(detect_layout(root), GC)
    calls = []

    def flaky(path: Path, data: bytes, **kw: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        atomic_write(path, data)

    result = execute_apply(plan, services=RecordingServiceManager(), write=flaky)
    assert result.status == "restored"
    assert "No space left on device" in (result.error or "")
    assert tree_digest(root) == before
    with pytest.raises(ApplyError):
        result.raise_for_status()


def test_killed_between_two_writes_then_rollback(root: Path) -> None:
    build_kubeadm(root)
    before = tree_digest(root)
    originals = {
        p: (root / p.lstrip("/")).read_bytes()
        for p in ("/etc/default/kubelet", "/etc/containerd/config.toml")
    }
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from mlnode.knowledge.model import ImageSettings
        from mlnode.ops import apply as ap
        from mlnode.ops.fileio import atomic_write
        from mlnode.ops.services import RecordingServiceManager
        root = Path({str(root)!r})
        plan = ap.plan_apply(ap.detect_layout(root), ImageSettings(
            image_gc_high_threshold_percent=75, image_gc_low_threshold_percent=60,
            image_pull_progress_deadline_seconds=1800.0))
        print([(e.path, e.sha256_after) for e in plan.edits], flush=True)
        n = 0
        def write(path, data, **kw):
            global n
            n += 1
            if n == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # dies between the 1st and 2nd write
            atomic_write(path, data)
        ap.execute_apply(plan, services=RecordingServiceManager(), write=write)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    edited = eval(proc.stdout.strip())  # the planned order of writes, with the new sha256
    (first, first_sha), (second, _) = edited[0], edited[1]
    # kubeadm 1.30: the new drop-in is written first, then /etc/default/kubelet (which exists).
    assert first == "/etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf"
    assert second == "/etc/default/kubelet"
    # The first file is fully new, the second fully old; no temp file anywhere.
    assert file_sha256(root / first.lstrip("/")) == first_sha
    assert (root / second.lstrip("/")).read_bytes() == originals[second]
    leftovers = [p for p in root.rglob("*") if ".mlnode-tmp-" in p.name]
    assert leftovers == []
    [backup] = list_backups(root)
    assert backup.status == "prepared"
    # The lock died with the process; rollback restores the pre-apply state exactly.
    result = execute_rollback(root, services=RecordingServiceManager(), restart=False)
    assert result.backup.id == backup.id
    assert tree_digest(root) == before


def test_concurrent_apply_is_refused(root: Path) -> None:
    build_kubeadm(root)
    before = tree_digest(root)
    plan = plan_apply(detect_layout(root), GC)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mlnode.ops.fileio import ApplyLock;"
            f"l = ApplyLock(Path({str(root)!r})); l.acquire(); print('locked', flush=True);"
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
            execute_apply(plan, services=RecordingServiceManager())
    finally:
        holder.kill()
        holder.wait()
    assert tree_digest(root) == before
    assert list_backups(root) == []


def test_plan_is_stale_if_files_changed(root: Path) -> None:
    build_kubeadm(root)
    plan: ApplyPlan = plan_apply(detect_layout(root), GC)
    (root / "etc/default/kubelet").write_text("KUBELET_EXTRA_ARGS=--v=4\n")
    with pytest.raises(ApplyError, match="changed since the plan"):
        execute_apply(plan, services=RecordingServiceManager())


def test_no_restart_writes_only(root: Path) -> None:
    build_kubeadm(root)
    mgr = RecordingServiceManager()
    result = execute_apply(plan_apply(detect_layout(root), GC), services=mgr, restart=False)
    assert result.status == "written"
    assert mgr.calls == []
    assert [b.status for b in list_backups(root)] == ["written"]


def test_rollback_for_real(root: Path, make_standin: MakeStandin) -> None:
    build_kubeadm(root)
    mgr = make_standin(root, "1.30.2")
    mgr.restart("kubelet")
    before = tree_digest(root)
    first = execute_apply(
        plan_apply(detect_layout(root), GC),
        services=mgr,
        verifier=verifier_for(mgr),
        timeout_seconds=20,
    )
    assert first.status == "applied"
    assert configz(mgr)["imageGCHighThresholdPercent"] == 75
    result = execute_rollback(root, services=mgr, verifier=verifier_for(mgr), timeout_seconds=20)
    assert result.status == "rolled-back", result.error
    assert tree_digest(root) == before
    assert configz(mgr)["imageGCHighThresholdPercent"] == 90  # the old flag is back
    assert [b.status for b in list_backups(root)] == ["rolled-back"]
    with pytest.raises(ApplyError, match="no backup set"):
        execute_rollback(root, services=mgr)


def test_owner_and_mode_kept(root: Path) -> None:
    build_kubespray(root)
    env = root / "etc/kubernetes/kubelet.env"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    execute_apply(plan_apply(detect_layout(root), GC), services=RecordingServiceManager())
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert (env.stat().st_uid, env.stat().st_gid) == (os.getuid(), os.getgid())
    dropin = root / "etc/kubernetes/kubelet.conf.d/90-mlnode-images.conf"
    assert oct(dropin.stat().st_mode & 0o777) == "0o644"
