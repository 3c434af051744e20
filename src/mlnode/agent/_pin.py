"""Pinning warm images in containerd, so the kubelet's image GC spares them too.

containerd's CRI plugin reports an image as ``pinned`` when its image record carries the
label ``io.cri-containerd.pinned=pinned``, from containerd 1.6.22 and 1.7.3 (before that the
label is kept but CRI reports ``pinned: false``); the kubelet's GC skips pinned images
(v1.23+). mlnode's own GC never removes a warm image either way. The agent labels every
record naming the image (its tag and its repo digest) and removes the label when the image
leaves the warm set, so it never keeps an image the operator no longer wants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mlnode.errors import ImageNotFound, MlnodeError
from mlnode.ports import ImageService
from mlnode.runtime.containerd import ContainerdClient

__all__ = ["PIN_LABEL", "PIN_VALUE", "Pinner", "containerd_pinner"]

log = logging.getLogger("mlnode.agent")

PIN_LABEL = "io.cri-containerd.pinned"
PIN_VALUE = "pinned"

#: (image reference, pinned) -> None; raises MlnodeError
Pinner = Callable[[str, bool], None]


def containerd_pinner(ctrd: ContainerdClient, cri: ImageService) -> Pinner:
    def pin(ref: str, pinned: bool) -> None:
        image = cri.image_status(ref)
        if image is None:
            return
        for name in image.names:
            try:
                record = ctrd.get_image(name)
            except ImageNotFound:
                continue
            labels = dict(record.labels)
            if pinned == (labels.get(PIN_LABEL) == PIN_VALUE):
                continue
            if pinned:
                labels[PIN_LABEL] = PIN_VALUE
            else:
                labels.pop(PIN_LABEL, None)
            ctrd.update_image(name, record.target, labels=labels)
            log.info("%s %s in containerd", "pinned" if pinned else "unpinned", name)

    return pin


def pin_quietly(pin: Pinner | None, ref: str, pinned: bool, on_error: Callable[[], None]) -> None:
    if pin is None:
        return
    try:
        pin(ref, pinned)
    except MlnodeError as e:
        on_error()
        log.warning("cannot %s %s: %s", "pin" if pinned else "unpin", ref, e)
