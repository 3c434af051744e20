"""What a node is, as far as image settings care: its image disk, its images, its link.

A :class:`NodeProfile` is assembled from layers, highest priority first: command-line
options, a profile file (:func:`load_profile`), local inspection
(:mod:`mlnode.ops.inspect`), and finally :data:`ML_DEFAULTS`. Every value remembers
where it came from (``NodeProfile.sources``) so a plan can say "15 GiB (ML default)".

Profile file keys (YAML or JSON; every key optional; sizes and rates as below)::

    image_disk: 1.75TiB              # capacity of the filesystem holding the runtime's images
    largest_image: 15GiB             # compressed (what the registry sends, what CRI reports)
    largest_image_unpacked: 30GiB    # on disk after unpacking; or instead:
    unpack_ratio: 2.0                #   unpacked = ratio × compressed
    largest_layer: 12GiB             # compressed
    bandwidth: 10Gbit/s              # registry → node, for this node alone
    concurrent_pulls: 2              # large pulls the node may run at once
    growth_per_hour: 10GiB           # other writers on the image disk (logs, datasets, ...)
    other_data: 30GiB                # data on the image disk that image GC cannot free
    shared_with_os: true             # the image disk is the root filesystem
    imagefs_eviction_percent: 15     # the node's evictionHard imagefs.available, in percent
    unpack_rate: 150MB/s             # unpacked bytes written per second while unpacking
    registry_stall: 60s              # longest silence expected from the registry
    discard_unpacked_layers: false   # containerd's CRI option of that name
    kubernetes_version: "1.30"       # quote it: YAML reads 1.30 as the number 1.3
    runtime: containerd@1.7.13       # containerd@X.Y.Z, crio@X.Y.Z, cri-dockerd@X.Y.Z, docker

Each key may also be spelt as its NodeProfile field name (``largest_image_bytes``, ...);
then a size or rate may be a plain number in the field's unit.

Sizes: ``15GiB``, ``15Gi``, ``16GB``, ``500MB`` or a byte count (:func:`mlnode.units.parse_bytes`;
``G``/``GB`` are powers of 1000, ``Gi``/``GiB`` powers of 1024).

Rates (:func:`parse_rate`): a number, an optional SI or binary prefix, then a unit that says
bits or bytes — ``bit/s`` or ``bps`` for bits, ``B/s`` for bytes: ``10Gbit/s``, ``10Gbps``,
``1.25GB/s``, ``800MiB/s``, ``125000000`` (bytes per second). Prefixes are decimal
(``k``/``K``=10³, ``M``=10⁶, ``G``=10⁹, ``T``=10¹²) unless followed by ``i`` (``Mi``=2²⁰).
The case of ``b``/``B`` matters: ``Gb/s`` is refused because it is ambiguous in practice.
"""

from __future__ import annotations

from mlnode.planning.profile._model import (
    ML_DEFAULTS,
    MlDefault,
    NodeProfile,
    ProfileInput,
    resolve_profile,
)
from mlnode.planning.profile._sources import load_profile, option_input
from mlnode.planning.profile._values import PROFILE_KEYS, format_rate, parse_rate, parse_size

__all__ = [
    "ML_DEFAULTS",
    "PROFILE_KEYS",
    "MlDefault",
    "NodeProfile",
    "ProfileInput",
    "format_rate",
    "load_profile",
    "option_input",
    "parse_rate",
    "parse_size",
    "resolve_profile",
]
