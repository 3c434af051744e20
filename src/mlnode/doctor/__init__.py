"""``mlnode doctor``: what is wrong with images on a node or a cluster, and what to change.

Reads only. The node doctor reads the node's files (lint), its image filesystem, its
runtime (in-flight downloads, images and their layers), its kubelet's live config, the node
mirror and agent, and its journal; the cluster doctor reads Nodes, Events and each kubelet's
configz and stats/summary through the API server. Pure analysis turns those facts into
:class:`Finding` values; the CLI prints them. docs/doctor.md has the codes and the schema.
"""

from mlnode.doctor._model import (
    DOCTOR_CODES,
    SCHEMA,
    ClusterReport,
    Finding,
    FleetImage,
    ImageFs,
    NodeReport,
    PullRow,
    Setting,
    Severity,
    code_severity,
    report_json,
)

__all__ = [
    "DOCTOR_CODES",
    "SCHEMA",
    "ClusterReport",
    "Finding",
    "FleetImage",
    "ImageFs",
    "NodeReport",
    "PullRow",
    "Setting",
    "Severity",
    "code_severity",
    "report_json",
]
