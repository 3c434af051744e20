"""warm.pin on a real containerd 1.6.20: the agent's pinner labels every containerd image
record naming the image (tag and repo digest) io.cri-containerd.pinned=pinned, and removes
the label again. What CRI then reports is containerd's: 1.6.20 keeps the label but still
lists the image with pinned=false (the field follows the label from 1.6.22 / 1.7.3)."""

from __future__ import annotations

import contextlib

import pytest
import testbed

from mlnode.agent._pin import PIN_LABEL, PIN_VALUE, containerd_pinner
from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient
from mlnode.versions import Version

pytestmark = pytest.mark.runtime


def test_pin_labels_every_record_of_the_image_and_unpin_removes_it(
    registry: testbed.Registry, cri: CriClient, ctrd: ContainerdClient
) -> None:
    ref = registry.push(testbed.build_image([256 * 1024], seed=777), "mlnode/pin-me", "v1")
    try:
        cri.pull_image(ref)
        image = cri.image_status(ref)
        assert image is not None
        names = [n for n in image.names if not n.startswith("sha256:")]
        assert len(names) >= 2  # the tag and the repo digest
        pin = containerd_pinner(ctrd, cri)
        pin(ref, True)
        for name in names:
            assert ctrd.get_image(name).labels.get(PIN_LABEL) == PIN_VALUE, name
        version = cri.version().runtime_version
        listed = cri.image_status(ref)
        assert listed is not None
        v = Version.parse(version.split("~")[0])
        honoured = v.at_least(Version.parse("1.7.3")) or (
            v.minor_line == (1, 6) and v.at_least(Version.parse("1.6.22"))
        )
        assert listed.pinned is honoured, (version, listed.pinned)
        pin(ref, True)  # idempotent: no second update
        pin(ref, False)
        for name in names:
            assert PIN_LABEL not in ctrd.get_image(name).labels, name
    finally:
        with contextlib.suppress(Exception):
            cri.remove_image(ref)
