"""The imagefs usage chart of the HTML report: inline SVG, legible from 1 node to 1,000.

The chart has to stay legible from 1 node to 1,000. It is two pictures:

- *Most used*: one labelled horizontal bar per node, sorted by imagefs usage, for the 50
  most used nodes (all of them in a cluster of 50 or fewer). Each bar carries its node's
  own thresholds as marks across the bar: the image GC high threshold
  (``image_gc_high_threshold_percent``) dashed, the eviction threshold
  (``evictionHard`` ``imagefs.available``, a percentage or a quantity against the node's
  capacity) solid red. Where every node has the same thresholds the marks join into one
  vertical line; where a node differs its mark steps aside, which is the point.
- *Every node* (only when there are more than 50): a usage profile, one thin column per
  node, sorted by usage (most used left), the thresholds as level lines over the columns
  that know them (a node whose threshold differs gets its own short segment). 1,000 nodes
  make 1,000 one-pixel columns in a 1,000-pixel plot: the shape of the fleet (how many are
  near GC, past eviction) reads at a glance; each column's ``<title>`` names its node, and
  the table below has the exact numbers.

Bars are coloured by band: past the eviction threshold, at or past GC high, below. Nodes
without an imagefs reading (unreachable, stats not readable) are counted under the chart,
not drawn.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from mlnode.errors import InvalidValue
from mlnode.units import format_bytes, parse_bytes

__all__ = ["NONE", "TOP_BARS", "as_map", "chart_section", "esc", "human_bytes", "usage_percent"]

TOP_BARS = 50  # labelled bars in the "most used" chart; above this the profile is drawn too
NONE = "—"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def human_bytes(value: object) -> str:
    return format_bytes(value) if isinstance(value, int) else NONE


def usage_percent(node: Mapping[str, Any]) -> int | None:
    fs = node.get("imagefs")
    if not isinstance(fs, Mapping) or not fs.get("capacity_bytes"):
        return None
    pct = fs.get("usage_percent")
    return pct if isinstance(pct, int) else None


def _gc_high(node: Mapping[str, Any]) -> float | None:
    s = as_map(node.get("thresholds")).get("image_gc_high_threshold_percent")
    value = s.get("value") if isinstance(s, Mapping) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if 0 <= value <= 100 else None


def _eviction_used(node: Mapping[str, Any]) -> float | None:
    """The usage percent at which hard eviction fires on imagefs (None: not known or off)."""
    s = as_map(node.get("thresholds")).get("eviction_hard")
    value = s.get("value") if isinstance(s, Mapping) else None
    if not isinstance(value, Mapping) or "imagefs.available" not in value:
        return None
    text = str(value["imagefs.available"]).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            return None if pct <= 0 or pct >= 100 else 100 - pct  # 0% / 100% drop it
        capacity = as_map(node.get("imagefs")).get("capacity_bytes") or 0
        if capacity <= 0:
            return None
        return max(0.0, 100 - parse_bytes(text) * 100 / capacity)
    except (ValueError, InvalidValue):
        return None


def _band(node: Mapping[str, Any], usage: int) -> str:
    ev, gc = _eviction_used(node), _gc_high(node)
    if ev is not None and usage > ev:
        return "b-crit"
    if gc is not None and usage >= gc:
        return "b-warn"
    return "b-ok"


def _charted(nodes: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(usage, index) of the nodes that have an imagefs reading, most used first."""
    rows = [(u, i) for i, n in enumerate(nodes) if (u := usage_percent(n)) is not None]
    rows.sort(key=lambda r: (-r[0], str(nodes[r[1]].get("name"))))
    return rows


def _short(name: str, limit: int = 38) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _bars_svg(nodes: Sequence[Mapping[str, Any]], rows: Sequence[tuple[int, int]]) -> str:
    """Labelled horizontal bars, one per node, with each node's own threshold marks."""
    label_w, plot_w, right_w, row_h, top = 250, 620, 230, 18, 22
    x0 = label_w + 10
    height = top + row_h * len(rows) + 8
    width = x0 + plot_w + right_w
    out = [
        f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="imagefs usage per node">'
    ]
    for pct in (0, 25, 50, 75, 100):
        x = x0 + plot_w * pct / 100
        out.append(f'<line class="grid" x1="{x:g}" y1="{top - 4}" x2="{x:g}" y2="{height - 6}"/>')
        out.append(f'<text class="axis" x="{x:g}" y="{top - 8}" text-anchor="middle">{pct}%</text>')
    for k, (usage, i) in enumerate(rows):
        n = nodes[i]
        name = str(n.get("name") or "")
        fs = as_map(n.get("imagefs"))
        y = top + k * row_h
        w = plot_w * min(usage, 100) / 100
        free, cap = human_bytes(fs.get("available_bytes")), human_bytes(fs.get("capacity_bytes"))
        detail = f"{usage}% · {free} free of {cap}"
        out.append(
            f"<g><title>{esc(name)}: {esc(detail)}</title>"
            f'<text x="{label_w}" y="{y + 13}" text-anchor="end">{esc(_short(name))}</text>'
            f'<rect class="{_band(n, usage)}" x="{x0}" y="{y + 3}" width="{w:.1f}" '
            f'height="{row_h - 6}"/>'
            f'<text x="{x0 + plot_w + 8}" y="{y + 13}">{esc(detail)}</text></g>'
        )
        for cls, thr in (("ev", _eviction_used(n)), ("gc", _gc_high(n))):
            if thr is not None:
                x = x0 + plot_w * thr / 100
                out.append(
                    f'<line class="{cls}" x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + row_h}"/>'
                )
    out.append("</svg>")
    return "".join(out)


def _level_path(points: Sequence[tuple[float, float, float | None]], cls: str) -> str:
    """One path of horizontal segments over (x_left, x_right, y or None) columns.

    Consecutive columns at one level make one segment; a level change starts a new one
    (no vertical connector, which at 1,000 columns would draw a comb); unknown is a gap.
    """
    segments: list[list[float]] = []  # [x_left, x_right, y]
    for left, right, y in points:
        if y is None:
            continue
        last = segments[-1] if segments else None
        if last is not None and last[2] == y and abs(last[1] - left) < 1e-6:
            last[1] = right
        else:
            segments.append([left, right, y])
    if not segments:
        return ""
    d = " ".join(f"M{a:.1f} {y:.1f}H{b:.1f}" for a, b, y in segments)
    return f'<path class="{cls}" d="{d}"/>'


def _profile_svg(nodes: Sequence[Mapping[str, Any]], rows: Sequence[tuple[int, int]]) -> str:
    """Every node as one thin column, most used left, thresholds as level lines."""
    left, plot_w, plot_h, top = 44, 1000, 220, 12
    width, height = left + plot_w + 10, top + plot_h + 34
    col = plot_w / max(len(rows), 1)
    out = [
        f'<svg class="profile" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="imagefs usage of every node, sorted" shape-rendering="crispEdges">'
    ]
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (100 - pct) / 100
        out.append(f'<line class="grid" x1="{left}" y1="{y:g}" x2="{left + plot_w}" y2="{y:g}"/>')
        out.append(
            f'<text class="axis" x="{left - 4}" y="{y + 4:g}" text-anchor="end">{pct}%</text>'
        )
    gc_pts: list[tuple[float, float, float | None]] = []
    ev_pts: list[tuple[float, float, float | None]] = []
    for k, (usage, i) in enumerate(rows):
        n = nodes[i]
        x = left + k * col
        h = plot_h * min(usage, 100) / 100
        out.append(
            f'<rect class="{_band(n, usage)}" x="{x:.2f}" y="{top + plot_h - h:.1f}" '
            f'width="{col + 0.35:.2f}" height="{h:.1f}"><title>{esc(n.get("name"))}: '
            f"{usage}%</title></rect>"
        )
        for pts, thr in ((gc_pts, _gc_high(n)), (ev_pts, _eviction_used(n))):
            pts.append((x, x + col, None if thr is None else top + plot_h * (100 - thr) / 100))
    out += [_level_path(ev_pts, "ev"), _level_path(gc_pts, "gc")]  # dashed GC on top
    out.append(
        f'<text class="axis" x="{left + plot_w / 2:g}" y="{height - 8}" text-anchor="middle">'
        f"{len(rows)} nodes, sorted by imagefs usage (most used left)</text></svg>"
    )
    return "".join(out)


def chart_section(nodes: Sequence[Mapping[str, Any]]) -> str:
    rows = _charted(nodes)
    missing = len(nodes) - len(rows)
    legend = (
        '<p class="legend"><span><i class="sw" style="background:#3a7bd5"></i>below GC high</span>'
        '<span><i class="sw" style="background:#d29922"></i>at or past image GC high</span>'
        '<span><i class="sw" style="background:#b3261e"></i>past hard eviction</span>'
        "<span>┆ dashed: image GC high threshold</span><span>│ red: eviction threshold "
        "(imagefs.available)</span></p>"
    )
    out = ['<section id="chart"><h2>Image filesystem usage</h2>', legend]
    if not rows:
        out.append("<p>No node reported its image filesystem.</p>")
    if len(rows) > TOP_BARS:
        out.append(f"<h3>Every node ({len(rows)})</h3>" + _profile_svg(nodes, rows))
        out.append(f"<h3>The {TOP_BARS} most used</h3>")
    if rows:
        out.append('<div class="scroll">' + _bars_svg(nodes, rows[:TOP_BARS]) + "</div>")
    if missing:
        out.append(f'<p class="meta">{missing} node(s) without an imagefs reading, not drawn.</p>')
    out.append("</section>")
    return "".join(out)
