"""What the DaemonSet's securityContext (uid 0, every capability dropped, /run/containerd
mounted read-only) and the unit's hardening rely on, shown against a real containerd 1.6:
its socket is root:root 0660; a uid-0 process with no capability at all reaches CRI through
a read-only bind mount of the socket's directory, reads the image filesystem with statvfs and
writes a root-owned state dir. The counter-case shows the rule can fail: with the socket owned
by another uid, the same capability-less root is refused (only CAP_DAC_OVERRIDE would pass)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
import testbed  # noqa: E402  (tests/runtime: the real containerd the runtime tests use)
from prereq import unavailable  # noqa: E402

# Runs inside the capability-less process: CRI Version + ImageFsInfo over the socket, statvfs
# of the image root, a file written in the state dir; prints what it saw.
PROBE = r"""
import json, os, sys
from pathlib import Path
from mlnode.errors import MlnodeError
from mlnode.runtime.cri import CriClient
sock, image_root, state_dir = sys.argv[1:4]
caps = {l.split(":")[0]: l.split()[1] for l in open("/proc/self/status") if l.startswith("Cap")}
out = {"uid": os.geteuid(), "cap_eff": caps["CapEff"], "cap_bnd": caps["CapBnd"]}
try:
    with CriClient(Path(sock), connect_timeout_seconds=5, call_timeout_seconds=10) as cri:
        out["runtime"] = cri.version().runtime_name
        out["image_fs"] = [f.mountpoint for f in cri.image_fs_info()]
except MlnodeError as e:
    out["cri_error"] = str(e)
out["statvfs_blocks"] = os.statvfs(image_root).f_blocks
try:
    Path(state_dir, "probe").write_text("x")
    out["state_write"] = "ok"
except OSError as e:
    out["state_write"] = e.strerror
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testbed.Containerd]:
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    for program in ("setpriv", "unshare", "mount"):
        if shutil.which(program) is None:
            unavailable(f"{program} (util-linux) is not installed")
    ctr = testbed.Containerd(tmp_path_factory.mktemp("ctrd-privileges") / "containerd")
    try:
        ctr.start()
        yield ctr
    finally:
        ctr.stop()


def _run_without_capabilities(ctr: testbed.Containerd, tmp_path: Path) -> dict[str, object]:
    """PROBE as uid 0 with an empty bounding set (so no effective capability after exec),
    no_new_privs, in a private mount namespace where the socket's directory is a read-only
    bind mount (as the DaemonSet's /run/containerd)."""
    ro = tmp_path / "run-containerd"
    ro.mkdir()
    state = tmp_path / "state"  # as /var/lib/mlnode: made by root (the kubelet), 0755
    state.mkdir(mode=0o755)
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    setpriv = "setpriv --bounding-set=-all --inh-caps=-all --ambient-caps=-all --no-new-privs"
    shell = (
        f"mount --bind {ctr.workdir} {ro} && mount -o remount,bind,ro {ro} && "
        f"exec {setpriv} {sys.executable} {script} {ro / ctr.socket.name} {ro / 'root'} {state}"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    assert out["uid"] == 0
    assert out["cap_eff"] == out["cap_bnd"] == "0000000000000000"
    return out


def test_containerd_socket_is_root_only(containerd: testbed.Containerd) -> None:
    st = os.stat(containerd.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o660)


def test_root_without_capabilities_reaches_cri_on_a_read_only_mount(
    containerd: testbed.Containerd, tmp_path: Path
) -> None:
    out = _run_without_capabilities(containerd, tmp_path)
    assert out.get("runtime") == "containerd", out
    assert out["image_fs"], out
    assert isinstance(out["statvfs_blocks"], int) and out["statvfs_blocks"] > 0
    assert out["state_write"] == "ok"


def test_without_owning_the_socket_it_is_refused(
    containerd: testbed.Containerd, tmp_path: Path
) -> None:
    os.chown(containerd.socket, 65534, 65534)
    try:
        out = _run_without_capabilities(containerd, tmp_path)
    finally:
        os.chown(containerd.socket, 0, 0)
    assert "runtime" not in out, out
    assert "permission denied" in str(out["cri_error"]), out
