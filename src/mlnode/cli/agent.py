"""``mlnode agent``: the long-running node agent, and ``mlnode agent status``.

``mlnode agent --config FILE`` runs in the foreground until SIGTERM or SIGINT (exit 0);
SIGHUP reads the config again. ``--check`` validates the config and prints it
(``--output json``: ``{"schema": "mlnode.agent.config/v1", ...}``, the effective values).
``mlnode agent status [--url URL]`` prints what the running agent is doing, from its
status endpoint (``--output json``: the endpoint's ``mlnode.agent.status/v1`` document).
Exit codes: 0; 2 bad option or config (``file:line``); 3 the runtime cannot be reached at
start; 1 ``status``: the agent does not answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from mlnode.cli._common import OutputFormat, emit_config, emit_json, run, stdout
from mlnode.cli._options import OutputOption
from mlnode.cli.mirror import _setup_logging
from mlnode.errors import MlnodeError, UsageError
from mlnode.units import format_bytes

__all__ = ["register"]

CONFIG_SCHEMA = "mlnode.agent.config/v1"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="The agent's YAML config (schema: README, examples/agent.yaml).",
        dir_okay=False,
    ),
]
LogFormatOption = Annotated[
    str | None,
    typer.Option(
        "--log-format", metavar="text|json", help="Log lines on stderr (default: the config's)."
    ),
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Validate the config, print it and exit.")
]
UrlOption = Annotated[
    str,
    typer.Option("--url", metavar="URL", help="The agent's status address (its listen)."),
]


def _config_json(cfg: Any) -> dict[str, Any]:
    doc = asdict(cfg)
    doc = json.loads(json.dumps(doc, default=str))
    doc["schema"] = CONFIG_SCHEMA
    return dict(doc)


class AgentUnreachable(MlnodeError):
    """``mlnode agent status``: no agent answers at the URL."""


def _get_status(url: str) -> dict[str, Any]:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/mlnode/v1/agent/status", timeout=5.0)
    except httpx.HTTPError as e:
        raise AgentUnreachable(f"{url}: no agent answers: {e}") from None
    if r.status_code != 200:
        raise AgentUnreachable(f"{url}: status endpoint answered {r.status_code}")
    try:
        doc = r.json()
    except ValueError:
        raise AgentUnreachable(f"{url}: status endpoint did not answer JSON") from None
    if not isinstance(doc, dict) or doc.get("schema") != "mlnode.agent.status/v1":
        raise AgentUnreachable(f"{url}: not an mlnode agent status document")
    return doc


def _b(n: object) -> str:
    return format_bytes(n) if isinstance(n, int) else "?"


def _print_status(doc: dict[str, Any]) -> None:
    def line(text: str) -> None:
        stdout.print(text, markup=False, highlight=False)

    ready = "ready" if doc["ready"] else f"NOT READY: {doc['not_ready_reason']}"
    line(f"node {doc['node']}: {ready}")
    fs = doc["image_fs"]
    line(
        f"image fs {fs['path']}: {_b(fs['available_bytes'])} free of {_b(fs['capacity_bytes'])}; "
        f"keeping {_b(doc['headroom']['target_bytes'])} free ({doc['headroom']['why']})"
    )
    last = doc["gc"]["last"]
    if last:
        line(
            f"GC: {doc['gc']['runs']} run(s); last ({last['trigger']}) freed "
            f"{_b(last['freed_bytes'])}, {len(last['removed'])} removed, "
            f"{'target met' if last['satisfied'] else 'TARGET NOT MET'}"
        )
    for w in doc["warm"]:
        extra = (
            f" ({w['last_error']}; retry in {w['retry_in_seconds']} s)" if w["last_error"] else ""
        )
        line(f"warm {w['image']}: {w['phase']}{extra}")
    for p in doc["pulls_in_flight"]:
        line(f"pulling {p['ref']}: {_b(p['bytes'])}")
    m = doc["mirror"]
    line(f"mirror: {m['url'] if m['enabled'] else 'off'}")
    k = doc["kubernetes"]
    api = "connected" if k["connected"] else "not configured"
    line(
        f"kubernetes API: {api}" + (f" (last error: {k['last_error']})" if k["last_error"] else "")
    )


def register(app: typer.Typer) -> None:
    @app.callback(invoke_without_command=True)
    def agent_cmd(
        ctx: typer.Context,
        config: ConfigOption = None,
        log_format: LogFormatOption = None,
        check: CheckOption = False,
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Run the node agent: headroom GC, warm images, the mirror, metrics, events."""
        if ctx.invoked_subcommand is not None:
            return

        def body() -> None:
            from mlnode.agent import load_config, run_agent

            if config is None:
                raise UsageError("the agent needs its config file", option="--config")
            cfg = load_config(config)
            _setup_logging(log_format or cfg.log_format)
            if check:
                emit_config(_config_json(cfg), output)
                return
            try:
                run_agent(cfg)
            except KeyboardInterrupt:
                return

        run(body)

    @app.command("status")
    def status_cmd(
        url: UrlOption = "http://127.0.0.1:9478",
        output: OutputOption = OutputFormat.HUMAN,
    ) -> None:
        """Show what the running agent is doing."""

        def body() -> None:
            doc = _get_status(url)
            if output is OutputFormat.JSON:
                emit_json(doc)
            else:
                _print_status(doc)

        run(body)
