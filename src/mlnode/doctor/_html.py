"""The shareable HTML report: one self-contained page rendered from ``mlnode.doctor/v1`` JSON.

:func:`render_html` takes what :func:`mlnode.doctor._model.report_json` returns (scope
``node`` or ``cluster``) and returns one HTML document: inline CSS, inline SVG, nothing
(font, image, style sheet, script) fetched from anywhere, so it can be mailed, attached to a
ticket or opened offline, and it prints (print rules drop the scroll containers and keep
table headers on every page). Every string that came from a node, an event or a file goes
through :func:`html.escape`; nothing from the report is ever markup.

The page, top to bottom: a header (scope, when, the API server, counts by severity, nodes
at risk and unreachable); the imagefs usage chart; the per-node table (one
``<tr class="node-row" id="node-...">`` per node, worst first: error findings, then at
risk, then warnings, then usage); in-flight pulls when there are any; the findings,
grouped by severity and then by code; the fleet's dominant images.

The chart (:mod:`mlnode.doctor._html_chart`, whose docstring explains how it stays legible
at 1,000 nodes): labelled bars for the 50 most used nodes with each node's own GC-high
and eviction marks, and above 50 nodes a usage profile of every node, sorted.

One small inline script (:data:`SORT_SCRIPT`) lets the node table's headers sort it; the
page needs it for nothing else and is complete without it (a mail client or viewer that
blocks scripts shows the same page, sorted worst first).

Left out on purpose: filtering, per-node detail pages, the thresholds other than GC high
and hard eviction (GC low, soft eviction).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlnode.doctor._html_chart import (
    NONE,
    TOP_BARS,
    as_map,
    chart_section,
    esc,
    human_bytes,
    usage_percent,
)
from mlnode.doctor._model import DOCTOR_CODES
from mlnode.lint.findings import CODES as LINT_CODES
from mlnode.units import format_go_duration

__all__ = ["SORT_SCRIPT", "TOP_BARS", "render_html"]

_SEVERITIES = ("error", "warning", "info")

# Optional: click a node-table header to sort by it (again: reverse); ``#sort-K`` or
# ``#sort-K-desc`` in the URL sorts by column K on load. Numbers from data-v, else text.
# Without scripts the page is complete, sorted worst first. No "//" in it (the page test).
SORT_SCRIPT = """(function(){
var t=document.querySelector("table.nodes");if(!t||!t.tHead)return;
var hs=t.tHead.rows[0].cells;
function val(r,k){var c=r.cells[k];var v=c.getAttribute("data-v");
return v===null?c.textContent.trim():parseFloat(v);}
function sort(k,d){var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var a=val(x,k),c=val(y,k);
var r=typeof a==="number"?a-c:String(a).localeCompare(String(c));return d*r;});
for(var i=0;i<rows.length;i++)b.appendChild(rows[i]);
for(var j=0;j<hs.length;j++)hs[j].removeAttribute("data-dir");hs[k].setAttribute("data-dir",d);}
for(var i=0;i<hs.length;i++)(function(k){hs[k].style.cursor="pointer";
hs[k].addEventListener("click",function(){sort(k,hs[k].getAttribute("data-dir")==="1"?-1:1);});
})(i);
var m=/^#sort-(\\d+)(-desc)?$/.exec(location.hash);if(m&&hs[+m[1]])sort(+m[1],m[2]?-1:1);
})();"""

_CSS = """
:root{--err:#b3261e;--warn:#8a5a00;--info:#1f5fbf;--ok:#3a7bd5;--line:#d0d4da;--mute:#5f6670}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#1b1f24;background:#fff;margin:0 auto;padding:16px 24px;max-width:1600px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid
var(--line);padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.meta{color:var(--mute)}.meta span{margin-right:18px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}.card.error b{color:var(--err)}
.card.warning b{color:var(--warn)}.card.info b{color:var(--info)}
nav a{margin-right:14px}
.scroll{max-height:70vh;overflow:auto;border:1px solid var(--line)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:3px 6px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top;
white-space:nowrap}td.wrap{white-space:normal;min-width:11em;max-width:24em}
th{background:#f4f6f8;position:sticky;top:0;z-index:1;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.unreachable td{color:var(--mute);background:#fafafa}
tr.at-risk td.risk{color:var(--err);font-weight:600}
.ref{word-break:break-all;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600;
color:#fff;margin-right:2px}.badge.error{background:var(--err)}
.badge.warning{background:var(--warn)}.badge.info{background:var(--info)}
.badge.zero{background:#e6e8eb;color:var(--mute)}
details.code{border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:4px 10px}
details.code>summary{cursor:pointer;font-weight:600}
article.finding{border-left:4px solid var(--line);padding:2px 10px;margin:10px 0}
article.finding.error{border-color:var(--err)}article.finding.warning{border-color:var(--warn)}
article.finding.info{border-color:var(--info)}
article.finding h4{margin:4px 0;font-size:14px}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border:1px solid #e3e6ea;
border-radius:4px;padding:6px 8px;margin:4px 0;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",
monospace}pre.fix{background:#eef6ee;border-color:#cfe3cf}
.label{font-weight:600;color:var(--mute)}
svg{display:block;max-width:100%;height:auto}svg text{font:11px system-ui,"DejaVu Sans",sans-serif;
fill:#1b1f24}svg .grid{stroke:#e3e6ea}svg .b-ok{fill:var(--ok)}svg .b-warn{fill:#d29922}
svg .b-crit{fill:var(--err)}svg .gc{stroke:#1b1f24;stroke-dasharray:3 2;stroke-width:1.5;
fill:none}svg .ev{stroke:var(--err);stroke-width:3;fill:none}svg .axis{fill:var(--mute)}
.legend span{margin-right:16px;white-space:nowrap}.sw{display:inline-block;width:12px;
height:12px;vertical-align:-2px;margin-right:4px}
@media print{body{padding:0;max-width:none;font-size:11px}.scroll{max-height:none;
overflow:visible;border:0}th{position:static}thead{display:table-header-group}
tr,article.finding{break-inside:avoid}nav{display:none}.badge{border:1px solid #000}}
"""


# ---------------------------------------------------------------------------- node facts


def _node_ids(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """A stable, unique, attribute-safe id per node, from its name."""
    seen: dict[str, int] = {}
    out = []
    for n in nodes:
        base = "node-" + re.sub(r"[^A-Za-z0-9._-]", "_", str(n.get("name") or ""))
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}--{seen[base]}")
    return out


def _counts(findings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(_SEVERITIES, 0)
    for f in findings:
        sev = str(f.get("severity"))
        out[sev] = out.get(sev, 0) + 1
    return out


def _opt(value: object, fmt: Any = str) -> str:
    return NONE if value is None else esc(fmt(value))


def _deadline(node: Mapping[str, Any]) -> str:
    s = node.get("pull_deadline_seconds")
    if not isinstance(s, Mapping):
        return NONE
    value = s.get("value")
    if value is None:
        text = "none"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = "off (0)" if value == 0 else format_go_duration(float(value))
    else:
        text = str(value)
    return f'<span title="{esc(s.get("source", ""))}">{esc(text)}</span>'


# ---------------------------------------------------------------------------- tables

_NODE_COLUMNS = (
    "Node", "Pool", "Ready", "Kubelet", "Runtime", "Pull deadline", "Imagefs used",
    "Capacity", "Available", "Largest image", "Headroom", "At risk", "Findings", "Could not read",
)  # fmt: skip


def _sev_badges(counts: Mapping[str, int]) -> str:
    return "".join(
        f'<span class="badge {s if counts.get(s) else "zero"}" title="{s}">'
        f"{counts.get(s, 0)}{s[0].upper()}</span>"
        for s in _SEVERITIES
    )


def _key(value: object) -> str:
    """A cell's sort key for the optional sorter: the number, or -1 when not known."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return repr(value) if is_number else "-1"


def _deadline_key(node: Mapping[str, Any]) -> str:
    s = node.get("pull_deadline_seconds")
    if not isinstance(s, Mapping):
        return "-1"
    value = s.get("value")
    if value is None or value == 0:
        return "1e18"  # no deadline: longer than any
    return _key(value)


def _node_row(n: Mapping[str, Any], node_id: str) -> str:
    fs = as_map(n.get("imagefs"))
    largest = as_map(n.get("largest_image"))
    reachable = n.get("reachable", True)
    ready = n.get("ready")
    ready_text = NONE if ready is None else "Ready" if ready else "NotReady"
    ready_text = ready_text if reachable else "did not answer"
    classes = ["node-row"] + (["unreachable"] if not reachable else [])
    classes += ["at-risk"] if n.get("at_risk") else []
    usage = usage_percent(n)
    largest_cell = (
        f'<span class="ref">{esc(largest.get("ref") or "?")}</span> '
        f"{human_bytes(largest.get('size_bytes'))}"
        if largest
        else NONE
    )
    counts = _counts(n.get("findings") or [])
    rank = counts["error"] * 10**6 + counts["warning"] * 10**3 + counts["info"]
    cells = [
        f'<td><a href="#{node_id}">{esc(n.get("name"))}</a></td>',
        f"<td>{_opt(n.get('pool'))}</td>",
        f"<td>{esc(ready_text)}</td>",
        f"<td>{_opt(n.get('kubelet_version'))}</td>",
        f"<td>{_opt(n.get('runtime'))}</td>",
        f'<td data-v="{_deadline_key(n)}">{_deadline(n)}</td>',
        f'<td class="num" title="{esc(fs.get("source", ""))}" data-v="{_key(usage)}">'
        f"{NONE if usage is None else f'{usage}%'}</td>",
        f'<td class="num" data-v="{_key(fs.get("capacity_bytes"))}">'
        f"{human_bytes(fs.get('capacity_bytes'))}</td>",
        f'<td class="num" data-v="{_key(fs.get("available_bytes"))}">'
        f"{human_bytes(fs.get('available_bytes'))}</td>",
        f'<td class="wrap" data-v="{_key(largest.get("size_bytes"))}">{largest_cell}</td>',
        f'<td class="num" data-v="{_key(n.get("headroom_bytes"))}">'
        f"{human_bytes(n.get('headroom_bytes'))}</td>",
        f'<td class="risk" data-v="{int(bool(n.get("at_risk")))}">'
        f"{'AT RISK' if n.get('at_risk') else 'no'}</td>",
        f'<td data-v="{rank}">{_sev_badges(counts)}</td>',
        '<td class="wrap">' + "<br>".join(esc(x) for x in n.get("errors") or []) + "</td>",
    ]
    return f'<tr class="{" ".join(classes)}" id="{node_id}">{"".join(cells)}</tr>'


def _node_table(nodes: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> str:
    def worst_first(i: int) -> tuple[int, int, int, int, str]:
        n = nodes[i]
        c = _counts(n.get("findings") or [])
        usage = usage_percent(n)
        return (-c["error"], -bool(n.get("at_risk")), -c["warning"], -(usage or 0), str(n["name"]))

    order = sorted(range(len(nodes)), key=worst_first)
    head = "".join(f"<th>{esc(c)}</th>" for c in _NODE_COLUMNS)
    body = "".join(_node_row(nodes[i], ids[i]) for i in order)
    return (
        f'<section id="nodes"><h2>Nodes ({len(nodes)})</h2><p class="meta">Worst first: '
        "error findings, at risk, warnings, imagefs usage. Click a column header to sort "
        "(needs scripts; the order above is the page's own).</p>"
        f'<div class="scroll"><table class="nodes"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div></section>"
    )


def _pulls_section(nodes: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> str:
    rows = []
    for n, node_id in zip(nodes, ids, strict=True):
        for p in n.get("pulls") or []:
            rate = p.get("rate_bytes_per_second")
            stalled = p.get("stalled_seconds")
            written = f"{human_bytes(p.get('offset_bytes'))} / {human_bytes(p.get('total_bytes'))}"
            rows.append(
                f'<tr><td><a href="#{node_id}">{esc(n.get("name"))}</a></td>'
                f'<td class="ref">{_opt(p.get("image"))}</td>'
                f'<td class="ref">{_opt(p.get("digest") or p.get("ref"))}</td>'
                f'<td class="num">{written}</td>'
                f'<td class="num">{NONE if rate is None else human_bytes(int(rate)) + "/s"}</td>'
                f'<td class="num">{NONE if stalled is None else f"{stalled:.0f} s"}</td>'
                f"<td>{_opt(p.get('source'))}</td></tr>"
            )
    if not rows:
        return ""
    head = "".join(
        f"<th>{c}</th>"
        for c in ("Node", "Image", "Layer", "Written", "Rate", "Silent for", "Seen by")
    )
    return (
        f'<section id="pulls"><h2>Downloads in flight ({len(rows)})</h2><div class="scroll">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        "</section>"
    )


def _images_section(doc: Mapping[str, Any]) -> str:
    fleet = doc.get("fleet")
    images = fleet.get("dominant_images") if isinstance(fleet, Mapping) else None
    if not images:
        return ""
    rows = "".join(
        f'<tr class="image-row"><td class="ref">{esc(i.get("ref"))}</td>'
        f'<td class="num">{human_bytes(i.get("size_bytes"))}</td><td class="num">'
        f'{_opt(i.get("nodes"))}</td><td class="num">{human_bytes(i.get("total_bytes"))}</td></tr>'
        for i in images
    )
    return (
        '<section id="images"><h2>Images that dominate the fleet\'s disk</h2><table><thead>'
        "<tr><th>Image</th><th>Size</th><th>Nodes</th><th>Total</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


# ---------------------------------------------------------------------------- findings


def _meaning(code: str) -> str:
    entry = DOCTOR_CODES.get(code) or LINT_CODES.get(code)
    return entry[1] if entry else ""


def _finding(f: Mapping[str, Any], node_ids: Mapping[str, str]) -> str:
    sev = esc(f.get("severity"))
    node = f.get("node")
    where = (
        "fleet"
        if node is None
        else f'node <a href="#{node_ids.get(str(node), "nodes")}">{esc(node)}</a>'
    )
    subject = f' · <span class="ref">{esc(f["subject"])}</span>' if f.get("subject") else ""
    evidence = f.get("evidence") or []
    fix = f.get("fix") or ""
    return (
        f'<article class="finding {sev}"><h4><span class="badge {sev}">{esc(f.get("code"))}</span> '
        f'{esc(f.get("title"))}</h4><p class="meta">{where}{subject}</p>'
        + (
            '<div class="label">Evidence</div><pre class="evidence">'
            + esc("\n".join(str(x) for x in evidence))
            + "</pre>"
            if evidence
            else ""
        )
        + f'<p><span class="label">Why:</span> {esc(f.get("cause"))}</p>'
        + (
            f'<div class="label">Fix</div><pre class="fix"><code>{esc(fix)}</code></pre>'
            if fix
            else '<p><span class="label">Fix:</span> nothing to change</p>'
        )
        + "</article>"
    )


def _findings_section(findings: Sequence[Mapping[str, Any]], node_ids: Mapping[str, str]) -> str:
    out = [f'<section id="findings"><h2>Findings ({len(findings)})</h2>']
    for sev in _SEVERITIES:
        of_sev = [f for f in findings if f.get("severity") == sev]
        out.append(f'<h3 id="findings-{sev}">{sev.capitalize()} ({len(of_sev)})</h3>')
        by_code: dict[str, list[Mapping[str, Any]]] = {}
        for f in of_sev:
            by_code.setdefault(str(f.get("code")), []).append(f)
        for code in sorted(by_code):
            group = by_code[code]
            nodes = {f.get("node") for f in group if f.get("node") is not None}
            out.append(
                f'<details class="code {sev}"{"" if sev == "info" else " open"}><summary>'
                f'<span class="badge {sev}">{esc(code)}</span> {esc(_meaning(code))} — '
                f"{len(group)} finding(s) "
                + (f"on {len(nodes)} node(s)" if nodes else "fleet-wide")
                + "</summary>"
                + "".join(_finding(f, node_ids) for f in group)
                + "</details>"
            )
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------------------- the page


def _header(doc: Mapping[str, Any]) -> str:
    summary = as_map(doc.get("summary"))
    fleet = doc.get("fleet") if isinstance(doc.get("fleet"), Mapping) else None
    nodes = doc.get("nodes") or []
    scope = str(doc.get("scope"))
    what = "cluster" if scope == "cluster" else f"node {nodes[0].get('name')}" if nodes else scope
    meta = [f"<span>generated {esc(doc.get('generated_at'))}</span>"]
    if fleet is not None:
        meta.append(f"<span>API server {_opt(fleet.get('server'))}</span>")
        if isinstance(fleet.get("duration_seconds"), int | float):
            meta.append(f"<span>read in {fleet['duration_seconds']:.1f} s</span>")
    meta.append(f"<span>schema {esc(doc.get('schema'))}</span>")
    cards = [(s, s + "s" if s != "info" else "info", summary.get(s, 0)) for s in _SEVERITIES]
    at_risk, unreachable = summary.get("nodes_at_risk", 0), summary.get("nodes_unreachable", 0)
    cards += [
        ("", "nodes", summary.get("nodes", len(nodes))),
        ("error" if at_risk else "", "at risk", at_risk),
        ("warning" if unreachable else "", "unreachable", unreachable),
    ]
    return (
        f'<header><h1>mlnode doctor: {esc(what)}</h1><p class="meta">{"".join(meta)}</p>'
        '<div class="cards">'
        + "".join(
            f'<div class="card {c}"><b>{esc(v)}</b>{esc(label)}</div>' for c, label, v in cards
        )
        + '</div><nav><a href="#chart">Usage chart</a><a href="#nodes">Nodes</a>'
        '<a href="#findings-error">Errors</a><a href="#findings-warning">Warnings</a>'
        '<a href="#findings-info">Info</a>'
        + ('<a href="#images">Images</a>' if fleet and fleet.get("dominant_images") else "")
        + "</nav></header>"
    )


def render_html(doc: Mapping[str, Any]) -> str:
    """The report page for ``doc`` (a ``mlnode.doctor/v1`` dict, scope node or cluster)."""
    nodes: list[Mapping[str, Any]] = list(doc.get("nodes") or [])
    ids = _node_ids(nodes)
    by_name = {str(n.get("name")): i for n, i in zip(nodes, ids, strict=True)}
    fleet = as_map(doc.get("fleet"))
    findings = [f for n in nodes for f in n.get("findings") or []]
    findings += list(fleet.get("findings") or [])
    title = "mlnode doctor — " + (
        "cluster" if doc.get("scope") == "cluster" else str(nodes[0].get("name") if nodes else "")
    )
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)} — {esc(doc.get('generated_at'))}</title>"
            f"<style>{_CSS}</style></head><body>",
            _header(doc),
            chart_section(nodes),
            _node_table(nodes, ids),
            _pulls_section(nodes, ids),
            _findings_section(findings, by_name),
            _images_section(doc),
            '<footer class="meta"><p>Rendered by mlnode from its mlnode.doctor/v1 JSON; '
            "self-contained. The one inline script only sorts the node table.</p></footer>",
            f'<script id="sort-table">{SORT_SCRIPT}</script></body></html>',
        ]
    )
