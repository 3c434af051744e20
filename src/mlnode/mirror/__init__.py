"""The node-local pull-through registry mirror (``mlnode mirror``).

containerd is pointed at it with hosts.toml (``mlnode apply --mirror``); every pull on the
node, the kubelet's too, then goes through it:

- :mod:`~mlnode.mirror._config`: the config file and options, validated before anything runs;
- :mod:`~mlnode.mirror._upstream`: one aiohttp client per upstream registry (TLS, its own
  mirrors first);
- :mod:`~mlnode.mirror._fetch`: one blob fetched with ranged parallel connections into the
  sparse cache (:mod:`mlnode.blobcache`), reconnecting from its offset, sha256-checked;
- :mod:`~mlnode.mirror._engine`: one fetch per digest, the cache bound, the credentials
  check before a cache hit, dropping what containerd has committed;
- :mod:`~mlnode.mirror._server`: the aiohttp app (``/v2/…``, ``/healthz``, ``/metrics``,
  ``/mlnode/v1/status``);
- :mod:`~mlnode.mirror._run`: start, serve, stop.
"""

from mlnode.mirror._config import (
    DEFAULT_LISTEN,
    MirrorConfig,
    UpstreamConfig,
    check_config,
    load_config,
    parse_listen,
    parse_upstream_option,
)
from mlnode.mirror._run import MirrorService, run_mirror
from mlnode.mirror._server import STATUS_SCHEMA

__all__ = [
    "DEFAULT_LISTEN",
    "STATUS_SCHEMA",
    "MirrorConfig",
    "MirrorService",
    "UpstreamConfig",
    "check_config",
    "load_config",
    "parse_listen",
    "parse_upstream_option",
    "run_mirror",
]
