"""``mlnode mirror``: the node-local pull-through registry mirror.

Options override the config file (``--config``); the result is validated whole before
anything listens. ``--check`` prints the effective config and exits (``--output json``:
``{"schema": "mlnode.mirror.config/v1", "listen", "url", "cache_dir", "cache_max_bytes",
"retain_committed", "chunk_bytes", "connections", "stall_seconds", "retries",
"reap_seconds", "unpack_factor", "default_registry", "upstreams": [{"registry",
"endpoint", "mirrors", "ca_file", "client_cert", "client_key", "skip_verify"}]}``).

With a reachable containerd (``--runtime-endpoint`` or discovered), a cached blob is
dropped once containerd has committed that digest (``--retain-committed`` keeps it), and
before a blob is fetched the image filesystem is checked for room with the free-space
arithmetic of ``mlnode pull``; the ml GC (mirror cache first, ``--state-file`` for its
last-used times) frees a shortfall unless ``--no-gc``; no room → 507 to containerd (which
then tries its next host) and a log line.
Logs go to stderr, text or one JSON object a line (``--log-format json``).
Exit codes: 0 stopped by SIGTERM/SIGINT, 2 bad option or config, 3 runtime unreachable
where it was named.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from mlnode.blobcache import DEFAULT_CACHE_DIR
from mlnode.cli._common import (
    OutputFormat,
    emit_config,
    finite_float,
    run,
    size_option,
)
from mlnode.cli._options import OutputOption, RuntimeEndpointOption, StateFileOption
from mlnode.errors import InvalidValue, UsageError
from mlnode.hostnames import is_loopback_host
from mlnode.mirror import (
    DEFAULT_LISTEN,
    MirrorConfig,
    check_config,
    load_config,
    parse_listen,
    parse_upstream_option,
    run_mirror,
)
from mlnode.ops.image_state import DEFAULT_STATE_FILE

__all__ = ["register"]

ListenOption = Annotated[
    str | None,
    typer.Option(
        "--listen",
        metavar="HOST:PORT",
        help=f"Where to listen (default {DEFAULT_LISTEN}; keep it on loopback).",
    ),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", metavar="DIR", help=f"The blob cache (default {DEFAULT_CACHE_DIR})."
    ),
]
UpstreamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--upstream",
        metavar="REGISTRY[=URL]",
        help="A registry to fetch from, e.g. docker.io or 127.0.0.1:5000=http://127.0.0.1:5000 "
        "(repeatable; only these are fetched from).",
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", metavar="FILE", help="A mirror config file (YAML).")
]
CacheMaxOption = Annotated[
    str | None,
    typer.Option("--cache-max-bytes", metavar="SIZE", help="The cache's bound, e.g. 200GiB."),
]
ChunkOption = Annotated[
    str | None,
    typer.Option("--chunk-bytes", metavar="SIZE", help="One ranged upstream request (16MiB)."),
]
ConnectionsOption = Annotated[
    int | None,
    typer.Option("--connections", help="Ranged upstream connections per blob (default 4)."),
]
StallOption = Annotated[
    float | None,
    typer.Option(
        "--stall-timeout",
        metavar="SECONDS",
        parser=finite_float,
        help="No byte for this long on an upstream connection: reconnect (default 20).",
    ),
]
RetriesOption = Annotated[
    int | None,
    typer.Option("--retries", help="Reconnects in a row without progress (default 6)."),
]
ReapOption = Annotated[
    float | None,
    typer.Option(
        "--reap-interval",
        metavar="SECONDS",
        parser=finite_float,
        help="How often blobs containerd has committed are dropped (default 10).",
    ),
]
RetainOption = Annotated[
    bool,
    typer.Option("--retain-committed", help="Keep blobs containerd has committed."),
]
UnpackOption = Annotated[
    float | None,
    typer.Option(
        "--unpack-factor",
        metavar="X",
        parser=finite_float,
        help="A compressed layer's unpacked size / its size, for the room asked before "
        "a fetch (default 2.0; 1.0 for model weights).",
    ),
]
NoGcOption = Annotated[
    bool,
    typer.Option("--no-gc", help="Before a fetch, only check for room; never run GC to make it."),
]
AccessLogOption = Annotated[
    bool,
    typer.Option(
        "--access-log",
        help="Log every /v2 request: method, path, ns, the kind of credentials (never "
        "the credentials), Range, status.",
    ),
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Validate and print the effective config; do not serve.")
]
LogFormatOption = Annotated[
    str, typer.Option("--log-format", metavar="text|json", help="Log lines on stderr.")
]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def _setup_logging(log_format: str) -> None:
    if log_format not in ("text", "json"):
        raise UsageError("text or json", option="--log-format")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("mlnode")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _effective(
    config: Path | None,
    listen: str | None,
    cache_dir: Path | None,
    upstreams: list[str] | None,
    overrides: dict[str, Any],
) -> MirrorConfig:
    cfg = MirrorConfig()
    if config is not None:
        cfg = load_config(config, cfg)
    if listen is not None:
        try:
            host, port = parse_listen(listen)
        except InvalidValue as e:
            raise UsageError(str(e).removeprefix("--listen: "), option="--listen") from None
        cfg = replace(cfg, listen_host=host, listen_port=port)
    ups = dict(cfg.upstreams)
    for text in upstreams or []:
        try:
            up = parse_upstream_option(text)
        except InvalidValue as e:
            raise UsageError(str(e).removeprefix("--upstream: "), option="--upstream") from None
        ups[up.registry] = up
    cfg = replace(cfg, upstreams=ups)
    if cache_dir is not None:
        cfg = replace(cfg, cache_dir=cache_dir)
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return check_config(cfg)


def _config_json(cfg: MirrorConfig) -> dict[str, Any]:
    return {
        "schema": "mlnode.mirror.config/v1",
        "listen": cfg.listen,
        "url": cfg.url,
        "cache_dir": str(cfg.cache_dir),
        "cache_max_bytes": cfg.cache_max_bytes,
        "retain_committed": cfg.retain_committed,
        "chunk_bytes": cfg.chunk_bytes,
        "connections": cfg.connections,
        "stall_seconds": cfg.stall_seconds,
        "retries": cfg.retries,
        "reap_seconds": cfg.reap_seconds,
        "unpack_factor": cfg.unpack_factor,
        "default_registry": cfg.default_registry,
        "upstreams": [
            {
                "registry": u.registry,
                "endpoint": u.endpoint,
                "mirrors": list(u.mirrors),
                "ca_file": str(u.ca_file) if u.ca_file else None,
                "client_cert": str(u.client_cert) if u.client_cert else None,
                "client_key": str(u.client_key) if u.client_key else None,
                "skip_verify": u.skip_verify,
            }
            for u in sorted(cfg.upstreams.values(), key=lambda u: u.registry)
        ],
    }


def register(app: typer.Typer) -> None:
    @app.command("mirror")
    def mirror_cmd(
        listen: ListenOption = None,
        cache_dir: CacheDirOption = None,
        upstream: UpstreamOption = None,
        config: ConfigOption = None,
        cache_max_bytes: CacheMaxOption = None,
        chunk_bytes: ChunkOption = None,
        connections: ConnectionsOption = None,
        stall_timeout: StallOption = None,
        retries: RetriesOption = None,
        reap_interval: ReapOption = None,
        retain_committed: RetainOption = False,
        runtime_endpoint: RuntimeEndpointOption = None,
        state_file: StateFileOption = DEFAULT_STATE_FILE,
        no_gc: NoGcOption = False,
        unpack_factor: UnpackOption = None,
        log_format: LogFormatOption = "text",
        access_log: AccessLogOption = False,
        check: CheckOption = False,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Serve a node-local pull-through registry mirror for containerd (hosts.toml)."""

        def body() -> None:
            _setup_logging(log_format)
            if connections is not None and not 1 <= connections <= 64:
                raise UsageError("between 1 and 64", option="--connections")
            if retries is not None and not 0 <= retries <= 100:
                raise UsageError("between 0 and 100", option="--retries")
            if stall_timeout is not None and not 0.1 <= stall_timeout <= 3600:
                raise UsageError("between 0.1 and 3600 seconds", option="--stall-timeout")
            if unpack_factor is not None and not 1.0 <= unpack_factor <= 20.0:
                raise UsageError("between 1 and 20", option="--unpack-factor")
            if reap_interval is not None and not 0.1 <= reap_interval <= 3600:
                raise UsageError("between 0.1 and 3600 seconds", option="--reap-interval")
            overrides: dict[str, Any] = {
                "cache_max_bytes": size_option(cache_max_bytes, "--cache-max-bytes")
                if cache_max_bytes
                else None,
                "chunk_bytes": size_option(chunk_bytes, "--chunk-bytes") if chunk_bytes else None,
                "connections": connections,
                "stall_seconds": stall_timeout,
                "retries": retries,
                "reap_seconds": reap_interval,
                "unpack_factor": unpack_factor,
                "retain_committed": True if retain_committed else None,
            }
            cfg = _effective(config, listen, cache_dir, upstream, overrides)
            if check:
                emit_config(_config_json(cfg), output)
                return
            if not is_loopback_host(cfg.listen_host):
                logging.getLogger("mlnode.mirror").warning(
                    "listening on %s, not loopback: anything that reaches it can make the "
                    "mirror fetch from its upstreams",
                    cfg.listen,
                )
            from mlnode.ops.mirror_hooks import open_mirror_hooks

            hooks = open_mirror_hooks(
                runtime_endpoint, cache_dir=cfg.cache_dir, state_file=state_file, gc=not no_gc
            )
            try:
                run_mirror(cfg, committed=hooks.committed, space=hooks.space, access_log=access_log)
            except KeyboardInterrupt:
                return
            finally:
                hooks.close()

        run(body)
