"""A small real filesystem for disk-pressure tests: an ext4 image in a temp dir, loop-mounted.

:func:`small_disk` makes, mounts and always unmounts and detaches it; :func:`containerd_on`
starts a testbed containerd whose root (content store, snapshots, ingests) is on it while
its state, socket and config stay in the caller's workdir. Needs root, ``mkfs.ext4``,
``losetup`` and ``/dev/loop-control``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import testbed

DISK_TOOLS = ("mkfs.ext4", "losetup", "mount", "umount")


def missing_disk_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "loop-mounted disks need root"
    missing = [t for t in DISK_TOOLS if shutil.which(t) is None]
    if missing:
        return f"loop-mounted disks need {', '.join(missing)} (e2fsprogs, mount)"
    if not Path("/dev/loop-control").exists():
        return "loop-mounted disks need /dev/loop-control (the loop module)"
    return None


def loop_devices_of(image: Path) -> list[str]:
    """The loop devices backed by ``image`` (``losetup -j``), e.g. ``["/dev/loop3"]``."""
    out = subprocess.run(
        ["losetup", "-j", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


def _umount(mount: Path) -> None:
    for _ in range(20):
        if not os.path.ismount(mount):
            return
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(0.25)  # busy: a process of the test may still be closing files
    subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@contextlib.contextmanager
def small_disk(workdir: Path, size_mib: int) -> Iterator[Path]:
    """An ext4 filesystem of ``size_mib`` MiB mounted at ``workdir/mnt``; yields the mount
    path. At exit (also on failure) it is unmounted and its loop device detached."""
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "disk.img"
    mount = workdir / "mnt"
    mount.mkdir(exist_ok=True)
    with image.open("wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    try:
        subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True
        )
        yield mount
    finally:
        _umount(mount)
        for device in loop_devices_of(image):
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def containerd_on(
    mount: Path, workdir: Path, *, sandbox_image: str = "registry.invalid/pause:3.9"
) -> Iterator[testbed.Containerd]:
    """A started testbed containerd whose ``root`` is ``mount/containerd-root``; stopped at
    exit (before the disk may be unmounted). Trust registries with ``trust_registry``."""
    with testbed.running_containerd(
        workdir, sandbox_image=sandbox_image, root=mount / "containerd-root"
    ) as ctr:
        yield ctr
