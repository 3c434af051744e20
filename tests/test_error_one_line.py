"""Runtime error messages stay one line and keep the root cause of a Go error chain."""

from __future__ import annotations

from mlnode.runtime.errors import one_line


def test_a_long_message_keeps_its_end_where_the_root_cause_is() -> None:
    chain = (
        'failed to pull and unpack image "127.0.0.1:5000/ml/train:v3": failed to extract '
        "layer sha256:" + "a" * 64 + ": write /var/lib/containerd/io.containerd.snapshotter."
        "v1.overlayfs/snapshots/42/fs/usr/lib/python3/dist-packages/" + "x" * 200 + ".so: "
        "no space left on device"
    )
    out = one_line(chain)
    assert len(out) == 300 and "\n" not in out
    assert out.startswith("failed to pull and unpack image")
    assert out.endswith("no space left on device")
    assert " … " in out


def test_a_short_message_is_only_flattened() -> None:
    assert one_line("rpc error:\n  code = Unavailable\tdesc = gone") == (
        "rpc error: code = Unavailable desc = gone"
    )
