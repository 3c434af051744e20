"""Planning: from what a node is (its disk, images, link, versions) to the image settings it needs.

``profile`` describes the node, ``inspect`` measures what it can on the local machine,
``plan`` is pure arithmetic from a profile to :class:`~mlnode.knowledge.model.ImageSettings`
with every number justified. Nothing here writes a file or talks to a runtime.
"""
