"""``mlnode doctor``: what is wrong with images on this node (or every node), and what to
change. Reads only; the findings, codes and the JSON schema are in docs/doctor.md."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlnode.cli._common import duration_option, emit_json, run, size_option, stderr, stdout
from mlnode.cli._options import NamespaceOption, RootOption, RuntimeEndpointOption
from mlnode.errors import InputError, UsageError
from mlnode.units import format_bytes, format_go_duration

__all__ = ["register"]


class DoctorOutput(enum.StrEnum):
    HUMAN = "human"
    JSON = "json"
    HTML = "html"


_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

ClusterFlag = Annotated[
    bool,
    typer.Option(
        "--cluster", help="Every node through the Kubernetes API (kubeconfig or in-cluster)."
    ),
]
KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        metavar="FILE",
        help="Kubeconfig (default with --cluster: in-cluster, $KUBECONFIG, ~/.kube/config).",
        dir_okay=False,
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option("--context", metavar="NAME", help="Kubeconfig context (default: current)."),
]
NodeNameOption = Annotated[
    str | None,
    typer.Option(
        "--node-name",
        metavar="NAME",
        help="This node's Node name, for its configz (default: host name).",
    ),
]
SampleOption = Annotated[
    str,
    typer.Option(
        "--sample", metavar="DURATION", help="Time between two samples of downloads in flight."
    ),
]
StallOption = Annotated[
    str,
    typer.Option(
        "--stall-after",
        metavar="DURATION",
        help="A download with no new byte this long is stalled.",
    ),
]
MirrorUrlOption = Annotated[
    str | None,
    typer.Option(
        "--mirror-url",
        metavar="URL",
        help="The node mirror (default on /: the one hosts.toml names).",
    ),
]
AgentUrlOption = Annotated[
    str | None,
    typer.Option(
        "--agent-url", metavar="URL", help="The agent (default on /: 127.0.0.1:9478 if installed)."
    ),
]
JournalFileOption = Annotated[
    Path | None,
    typer.Option(
        "--journal-file",
        metavar="FILE",
        help="Saved `journalctl -o json` lines to read instead.",
        dir_okay=False,
    ),
]
NoJournalOption = Annotated[bool, typer.Option("--no-journal", help="Do not read the journal.")]
LargestOption = Annotated[
    str | None,
    typer.Option(
        "--largest-image", metavar="SIZE", help="Largest image's size on disk (content + unpacked)."
    ),
]
GzipAdviceOption = Annotated[
    str,
    typer.Option(
        "--zstd-advice-from", metavar="SIZE", help="Images this big get the gzip-to-zstd advice."
    ),
]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", min=1, max=256, help="Nodes asked at once (--cluster).")
]
NodeTimeoutOption = Annotated[
    str,
    typer.Option(
        "--node-timeout", metavar="DURATION", help="Give up on a node's kubelet after this long."
    ),
]
PoolLabelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pool-label",
        metavar="LABEL",
        help="Label naming a node's pool (repeatable; default: common ones).",
    ),
]
SelectorOption = Annotated[
    str | None,
    typer.Option(
        "--selector",
        "-l",
        metavar="SELECTOR",
        help="Only the Nodes whose labels match (kubectl's k=v, k!=v, k, !k; --cluster).",
    ),
]
OutputOpt = Annotated[
    DoctorOutput,
    typer.Option("--output", "-o", help="human (default), json or html (a report page)."),
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _b(n: int | None) -> str:
    return "?" if n is None else format_bytes(n)


def _deadline(s: dict[str, Any] | None) -> str:
    if s is None or s["value"] is None:
        return "none"
    return "off" if s["value"] == 0 else format_go_duration(float(s["value"]))


def _print_finding(f: dict[str, Any], *, with_node: bool) -> None:
    head = f"{f['node']}: " if with_node and f["node"] else ""
    stdout.print(
        Text.assemble(
            head, (f"{f['severity']} {f['code']}", _STYLE[f["severity"]]), f": {f['title']}"
        )
    )
    for line in f["evidence"]:
        stdout.print(f"    seen: {line}", markup=False)
    stdout.print(f"    why: {f['cause']}", markup=False)
    if f["fix"]:
        stdout.print(f"    fix: {f['fix']}", markup=False)


def _print_node(doc: dict[str, Any]) -> None:
    from mlnode.doctor._settings import setting_text

    n = doc["nodes"][0]
    stdout.print(
        f"node {n['name']}: kubelet {n['kubelet_version'] or '?'}, {n['runtime'] or 'runtime ?'},"
        f" pull deadline {_deadline(n['pull_deadline_seconds'])}"
        + (f" ({n['pull_deadline_seconds']['source']})" if n["pull_deadline_seconds"] else ""),
        markup=False,
    )
    fs = n["imagefs"]
    if fs is not None:
        stdout.print(
            f"image filesystem {fs['path'] or ''}: {fs['usage_percent']}% used,"
            f" {_b(fs['available_bytes'])} of {_b(fs['capacity_bytes'])} available,"
            f" headroom {_b(n['headroom_bytes'])}",
            markup=False,
        )
    for key, s in n["thresholds"].items():
        stdout.print(f"    {key} = {setting_text(key, s['value'])}  ({s['source']})", markup=False)
    for f in n["findings"]:
        _print_finding(f, with_node=False)
    for e in n["errors"]:
        stdout.print(f"not read: {e}", markup=False)
    _print_summary(doc)


def _print_cluster(doc: dict[str, Any]) -> None:
    table = Table(title=None, box=None, pad_edge=False)
    for col in (
        "node",
        "pool",
        "ready",
        "kubelet",
        "runtime",
        "used",
        "available",
        "largest",
        "headroom",
        "E/W",
    ):
        table.add_column(col, overflow="fold")
    for n in doc["nodes"]:
        fs = n["imagefs"]
        errors = sum(1 for f in n["findings"] if f["severity"] == "error")
        warnings = sum(1 for f in n["findings"] if f["severity"] == "warning")
        table.add_row(
            Text(n["name"]),
            Text(n["pool"] or ""),
            "?" if n["ready"] is None else ("yes" if n["ready"] else "NO"),
            Text(n["kubelet_version"] or "?"),
            Text(n["runtime"] or "?"),
            f"{fs['usage_percent']}%" if fs else ("no answer" if not n["reachable"] else "?"),
            _b(fs["available_bytes"]) if fs else "",
            _b(n["largest_image"]["size_bytes"]) if n["largest_image"] else "",
            Text(_b(n["headroom_bytes"]) + (" AT RISK" if n["at_risk"] else "")),
            f"{errors}/{warnings}",
        )
    # to a terminal rich fits the table to its width; to a file or pipe, one line per node
    out = stdout if stdout.is_terminal else Console(width=400, highlight=False, emoji=False)
    out.print(table)
    fleet = doc["fleet"]
    for f in fleet["findings"]:
        _print_finding(f, with_node=False)
    _print_node_findings(doc["nodes"])
    _print_summary(doc)


#: A code on more nodes than this is printed once, with the nodes' names and one example.
_GROUP_OVER = 3


def _print_node_findings(nodes: list[dict[str, Any]]) -> None:
    """Errors and warnings of every node; a code many nodes share is shown once."""
    by_code: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        for f in n["findings"]:
            if f["severity"] != "info":
                by_code.setdefault(f["code"], []).append(f)
    order = {"error": 0, "warning": 1}
    for code, found in sorted(by_code.items(), key=lambda kv: (order[kv[1][0]["severity"]], kv[0])):
        names = sorted({f["node"] for f in found if f["node"]})
        if len(names) <= _GROUP_OVER:
            for f in found:
                _print_finding(f, with_node=True)
            continue
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        first = found[0]
        stdout.print(
            Text.assemble(
                (f"{first['severity']} {code}", _STYLE[first["severity"]]),
                f" on {len(names)} nodes: {shown}",
            )
        )
        stdout.print(f"    e.g. {first['node']}: {first['title']}", markup=False)
        stdout.print(f"    why: {first['cause']}", markup=False)
        if first["fix"]:
            stdout.print(f"    fix: {first['fix']}", markup=False)


def _print_summary(doc: dict[str, Any]) -> None:
    s = doc["summary"]
    stdout.print(
        f"{s['nodes']} node(s): {s['error']} error(s), {s['warning']} warning(s),"
        f" {s['info']} info; {s['nodes_at_risk']} at risk, {s['nodes_unreachable']} did not"
        " answer",
        markup=False,
    )


def _emit(doc: dict[str, Any], output: DoctorOutput) -> int:
    if output is DoctorOutput.JSON:
        emit_json(doc)
    elif output is DoctorOutput.HTML:
        from mlnode.doctor._html import render_html

        typer.echo(render_html(doc), nl=False)
    elif doc["scope"] == "node":
        _print_node(doc)
    else:
        _print_cluster(doc)
    return 1 if doc["summary"]["error"] else 0


def _journal_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {getattr(e, 'strerror', None) or e}", path=path) from None


def _cluster_doc(
    kubeconfig: Path | None,
    context: str | None,
    concurrency: int,
    node_timeout: str,
    pool_label: list[str] | None,
    selector: str | None,
) -> dict[str, Any]:
    from mlnode.doctor import report_json
    from mlnode.doctor._cluster import ClusterRequest, diagnose_cluster, parse_selector
    from mlnode.doctor._cluster_node import POOL_LABELS
    from mlnode.kube import connect

    timeout = duration_option(node_timeout, "--node-timeout", positive=True)
    try:
        requirements = parse_selector(selector) if selector is not None else ()
    except ValueError as e:
        raise UsageError(str(e), option="--selector") from None
    client = connect(kubeconfig=kubeconfig, discover_home=True, context=context)
    if client is None:
        raise UsageError(
            "no kubeconfig: not in a pod, no $KUBECONFIG, no ~/.kube/config", option="--kubeconfig"
        )
    req = ClusterRequest(
        concurrency=concurrency,
        node_timeout_seconds=timeout,
        pool_labels=tuple(pool_label) if pool_label else POOL_LABELS,
        selector=requirements,
    )
    with client:
        if stderr.is_terminal:
            from rich.progress import Progress

            with Progress(console=stderr, transient=True) as bar:
                task = bar.add_task("asking the nodes", total=None)
                report = diagnose_cluster(
                    client,
                    req,
                    server=client.server,
                    on_node=lambda done, total: bar.update(task, completed=done, total=total),
                )
        else:
            report = diagnose_cluster(client, req, server=client.server)
    return report_json(report, generated_at=_now())


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        cluster: ClusterFlag = False,
        root: RootOption = Path("/"),
        node_name: NodeNameOption = None,
        runtime_endpoint: RuntimeEndpointOption = None,
        namespace: NamespaceOption = "k8s.io",
        sample: SampleOption = "2s",
        stall_after: StallOption = "30s",
        mirror_url: MirrorUrlOption = None,
        agent_url: AgentUrlOption = None,
        journal_file: JournalFileOption = None,
        no_journal: NoJournalOption = False,
        largest_image: LargestOption = None,
        zstd_advice_from: GzipAdviceOption = "1GiB",
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        concurrency: ConcurrencyOption = 32,
        node_timeout: NodeTimeoutOption = "10s",
        pool_label: PoolLabelOption = None,
        selector: SelectorOption = None,
        output: OutputOpt = DoctorOutput.HUMAN,
    ) -> None:
        """Explain image health: why pulls fail or crawl, why the disk fills, what to change.

        On a node (or --root DIR, a copy of one): its files, image filesystem, runtime,
        downloads in flight, mirror, agent, kubelet configz and journal. With --cluster:
        every node's status, configz, stats/summary and events through the API server.
        Exit 0: no error found. 1: an error finding. 2: bad input. 8: the Kubernetes API
        refused or did not answer.
        """

        def body() -> int:
            if cluster:
                doc = _cluster_doc(
                    kubeconfig, context, concurrency, node_timeout, pool_label, selector
                )
                return _emit(doc, output)
            for given, name in ((selector, "--selector"), (pool_label, "--pool-label")):
                if given:
                    raise UsageError("only with --cluster", option=name)
            from mlnode.doctor import report_json
            from mlnode.doctor._node import NodeRequest, diagnose_node

            if not root.is_dir():
                raise UsageError(f"{root} is not a directory", option="--root")
            declared = None
            if largest_image is not None:
                declared = ("(declared)", size_option(largest_image, "--largest-image"))
            reader = None
            if kubeconfig is not None:
                from mlnode.kube import connect

                reader = connect(kubeconfig=kubeconfig, context=context)
            req = NodeRequest(
                root=root,
                node_name=node_name,
                runtime_endpoint=runtime_endpoint,
                namespace=namespace,
                sample_seconds=duration_option(sample, "--sample"),
                stall_after_seconds=duration_option(stall_after, "--stall-after", positive=True),
                mirror_url=mirror_url,
                agent_url=agent_url,
                journal_text=_journal_text(journal_file),
                read_journal=not no_journal,
                largest_image=declared,
                cluster=reader,
                min_gzip_image_bytes=size_option(zstd_advice_from, "--zstd-advice-from"),
            )
            try:
                report = diagnose_node(req)
            finally:
                if reader is not None:
                    reader.close()
            return _emit(report_json(report, generated_at=_now()), output)

        code = run(body)
        if code:
            raise typer.Exit(code)
