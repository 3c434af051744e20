"""The HTML report: structure, escaping, self-containment, and a real render in Chromium.

Reports are built from the dataclasses in :mod:`mlnode.doctor._model` and passed through
``report_json``, so the tests follow the schema if it changes rather than a copy of it.
"""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from prereq import unavailable

from mlnode.doctor._html import SORT_SCRIPT, TOP_BARS, render_html
from mlnode.doctor._model import (
    ClusterReport,
    Finding,
    FleetImage,
    ImageFs,
    NodeReport,
    PullRow,
    Setting,
    report_json,
)

GIB = 1024**3
EVIL_NAME = "<script>alert(1)</script>"
EVIL_MESSAGE = """Failed to pull image "a&b<c>": rpc error: code = Canceled desc = 'x' "y" & <z>"""
WHEN = "2026-12-01T16:00:00Z"


def _thresholds(gc_high: int = 85, evict: str = "15%") -> dict[str, Setting]:
    return {
        "image_gc_high_threshold_percent": Setting(gc_high, "default for kubelet 1.30"),
        "image_gc_low_threshold_percent": Setting(80, "default for kubelet 1.30"),
        "eviction_hard": Setting({"imagefs.available": evict, "memory.available": "100Mi"}, "x"),
    }


def _node(i: int, name: str | None = None, **kw: Any) -> NodeReport:
    capacity = 1000 * GIB
    used_pct = (i * 37) % 100
    name = name or f"gpu-{i:04d}"
    findings: list[Finding] = [
        Finding("D108", "image filesystem usage", "usage", "", (f"{used_pct}% used",), name)
    ]
    if used_pct >= 85:
        findings.append(
            Finding("D104", "usage past GC high", "GC runs", "crictl rmi --prune", ("n",), name)
        )
    args: dict[str, Any] = dict(
        name=name,
        findings=tuple(findings),
        pool=f"pool-{i % 3}",
        ready=i % 7 != 0,
        kubelet_version="1.30.4",
        runtime="containerd@1.7.13",
        pull_deadline=Setting(300.0, "default for containerd 1.7.13"),
        imagefs=ImageFs(capacity, capacity * (100 - used_pct) // 100, "/var/lib/containerd"),
        thresholds=_thresholds(),
        largest_image_ref="registry.example/train:v3",
        largest_image_bytes=14 * GIB,
        headroom_bytes=capacity * max(0, 85 - used_pct) // 100,
        images_count=12,
    )
    args.update(kw)
    return NodeReport(**args)


def cluster_doc(n: int) -> dict[str, Any]:
    """A cluster of n nodes: varied usage, one unreachable, one hostile name and message."""
    nodes = [_node(i) for i in range(n)]
    for i in range(4, n, 9):  # a few nodes with their own GC threshold: their marks step aside
        nodes[i] = _node(i, thresholds=_thresholds(gc_high=75))
    nodes[1] = NodeReport(
        "gpu-0001",
        (Finding("D404", "node did not answer", "timeout", "", ("10s",), "gpu-0001"),),
        reachable=False,
        errors=("stats/summary: timed out after 10s",),
    )
    nodes[2] = _node(
        2,
        name=EVIL_NAME,
        findings=(
            Finding(
                "D201",
                "pull cancelled by the progress timeout",
                "the layer was silent for 5m",
                "mlnode apply --image-pull-progress-deadline 15m",
                (EVIL_MESSAGE,),
                EVIL_NAME,
                subject="registry.example/train:v3",
            ),
        ),
    )
    fleet = (
        Finding("D402", "images that dominate", "big", "", ("a",)),
        Finding("D403", "setting differs", "pool-1 differs", "ansible-playbook ...", ("b",)),
    )
    images = (FleetImage("registry.example/train:v3", 14 * GIB, n - 1),)
    report = ClusterReport(tuple(nodes), fleet, images, server="https://10.0.0.1:6443")
    return report_json(report, generated_at=WHEN)


class _Collector(html.parser.HTMLParser):
    """Tags with their attributes and the page's text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def _parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    c.close()
    return c


def _node_rows(c: _Collector) -> list[dict[str, str | None]]:
    return [a for t, a in c.tags if t == "tr" and "node-row" in (a.get("class") or "").split()]


def test_one_row_per_node_with_unique_ids() -> None:
    doc = cluster_doc(40)
    rows = _node_rows(_parse(render_html(doc)))
    assert len(rows) == 40
    assert len({r["id"] for r in rows}) == 40
    assert sum("unreachable" in (r["class"] or "") for r in rows) == 1


def test_hostile_strings_appear_literally_never_as_markup() -> None:
    page = render_html(cluster_doc(5))
    c = _parse(page)
    assert c.scripts == [SORT_SCRIPT]  # the sorter, nothing the report brought
    text = "".join(c.text)
    assert EVIL_NAME in text
    assert EVIL_MESSAGE in text
    assert "<script>" not in page
    assert html.escape(EVIL_MESSAGE, quote=True) in page


def test_self_contained_no_external_reference() -> None:
    doc = cluster_doc(60)
    doc["fleet"]["server"] = "apiserver.local"  # the one URL of the fixture, which is text
    page = render_html(doc)
    assert "http://" not in page and "https://" not in page
    for tag, attrs in _parse(page).tags:
        for key in ("src", "href", "xlink:href", "action", "data"):
            value = attrs.get(key)
            assert value is None or value.startswith("#"), (tag, key, value)
    assert (
        "url(" not in page
        and "@import" not in page
        and "//" not in re.sub(r"<pre[^>]*>.*?</pre>", "", page, flags=re.S)
    )


def test_a_url_in_user_text_stays_text() -> None:
    page = render_html(cluster_doc(5))  # server is https://10.0.0.1:6443
    assert "https://10.0.0.1:6443" in "".join(_parse(page).text)
    assert all(a.get("href", "#").startswith("#") for _, a in _parse(page).tags if "href" in a)


def test_chart_draws_both_thresholds_and_every_node_above_top_bars() -> None:
    n = TOP_BARS + 30
    page = render_html(cluster_doc(n))
    profile = re.search(r'<svg class="profile".*?</svg>', page, re.S)
    bars = re.search(r'<svg class="bars".*?</svg>', page, re.S)
    assert profile and bars
    charted = n - 1  # the unreachable node has no imagefs
    assert profile.group(0).count("<rect") == charted
    assert bars.group(0).count("<rect") == TOP_BARS
    assert 'class="gc"' in profile.group(0) and 'class="ev"' in profile.group(0)
    assert bars.group(0).count('class="gc"') == TOP_BARS
    assert bars.group(0).count('class="ev"') == TOP_BARS
    # most used first: the first bar's label is a node at the highest usage
    usages = [n["imagefs"]["usage_percent"] for n in cluster_doc(n)["nodes"] if n["imagefs"]]
    first = re.search(r"<title>[^<]*: (\d+)%", bars.group(0))
    assert first and int(first.group(1)) == max(usages)


def test_threshold_positions_follow_the_node_settings() -> None:
    # GC high 70%; eviction at 100 GiB available on 1000 GiB → fires above 90% used
    node = _node(3, thresholds=_thresholds(gc_high=70, evict="100Gi"))
    page = render_html(report_json(node, generated_at=WHEN))
    bars = re.search(r'<svg class="bars".*?</svg>', page, re.S)
    assert bars
    x0, plot_w = 260, 620  # the bar chart's geometry in _html_chart._bars_svg
    gc = re.search(r'class="gc" x1="([\d.]+)"', bars.group(0))
    ev = re.search(r'class="ev" x1="([\d.]+)"', bars.group(0))
    assert gc and float(gc.group(1)) == pytest.approx(x0 + plot_w * 0.70, abs=0.1)
    assert ev and float(ev.group(1)) == pytest.approx(x0 + plot_w * 0.90, abs=0.2)


def test_unknown_or_dropped_thresholds_draw_nothing() -> None:
    th = {"eviction_hard": Setting({"imagefs.available": "0%"}, "file")}
    page = render_html(report_json(_node(3, thresholds=th), generated_at=WHEN))
    assert 'class="gc"' not in page and 'class="ev"' not in page


def test_node_scope_header_table_pulls_and_no_fleet_sections() -> None:
    pull = PullRow("layer-sha256:ab", "sha256:ab", 3 * GIB, 5 * GIB, 0.0, 290.0, "img:1")
    node = _node(5, pulls=(pull,))
    page = render_html(report_json(node, generated_at=WHEN))
    c = _parse(page)
    text = "".join(c.text)
    assert "mlnode doctor: node gpu-0005" in text
    assert len(_node_rows(c)) == 1
    assert "3.0 GiB / 5.0 GiB" in text and "290 s" in text
    assert "5m0s" in text  # the pull deadline, Go-formatted
    assert 'id="images"' not in page and "API server" not in text


def test_row_cells_human_bytes_and_counts() -> None:
    doc = cluster_doc(8)
    row = re.search(r'<tr class="node-row[^"]*" id="node-gpu-0003">(.*?)</tr>', render_html(doc))
    assert row
    cells = [re.sub(r"<[^>]+>", "", x) for x in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]
    # gpu-0003: usage (3*37)%100 = 11%
    assert cells[0] == "gpu-0003" and cells[1] == "pool-0" and cells[2] == "Ready"
    assert cells[6] == "11%" and cells[7] == "1000.0 GiB" and cells[8] == "890.0 GiB"
    assert "registry.example/train:v3" in cells[9] and "14.0 GiB" in cells[9]
    assert cells[11] == "no" and cells[12] == "0E0W1I"


def test_findings_grouped_by_severity_with_fix_in_code() -> None:
    page = render_html(cluster_doc(10))
    err = page.index('id="findings-error"')
    warn = page.index('id="findings-warning"')
    info = page.index('id="findings-info"')
    assert err < page.index(">D201<") < warn < page.index(">D404<") < info < page.index(">D108<")
    assert (
        '<pre class="fix"><code>mlnode apply --image-pull-progress-deadline 15m</code></pre>'
        in page
    )


def test_odd_inputs_render_without_drawing_what_is_not_known() -> None:
    zero = ImageFs(0, 0, "/var/lib/containerd")  # the kubelet's InvalidDiskCapacity case
    nodes = (
        _node(1, imagefs=zero, pull_deadline=Setting(None, "containerd 1.6: no deadline")),
        _node(2, pull_deadline=Setting(0, "config.toml:12"), thresholds={}),
        _node(3, thresholds=_thresholds(evict="lots")),  # not a quantity: no eviction mark
        NodeReport("bare"),  # nothing read at all
    )
    page = render_html(report_json(ClusterReport(nodes), generated_at=WHEN))
    c = _parse(page)
    assert len(_node_rows(c)) == 4
    bars = re.search(r'<svg class="bars".*?</svg>', page, re.S)
    assert bars and bars.group(0).count("<rect") == 2  # gpu-0002 and gpu-0003
    assert bars.group(0).count('class="ev"') == 0 and bars.group(0).count('class="gc"') == 1
    text = "".join(c.text)
    assert "2 node(s) without an imagefs reading" in text
    assert "none" in text and "off (0)" in text


def test_empty_cluster_and_fleet_wide_groups() -> None:
    fleet = (Finding("D402", "images that dominate", "big", ""),)
    page = render_html(report_json(ClusterReport((), fleet), generated_at=WHEN))
    text = "".join(_parse(page).text)
    assert "No node reported its image filesystem." in text and "Nodes (0)" in text
    assert "1 finding(s) fleet-wide" in text


def test_summary_counts_in_header() -> None:
    doc = cluster_doc(12)
    text = "".join(_parse(render_html(doc)).text)
    s = doc["summary"]
    assert f"{s['error']}errors" in text and f"{s['nodes_unreachable']}unreachable" in text
    assert f"{s['nodes']}nodes" in text and f"{s['nodes_at_risk']}at risk" in text


# ---------------------------------------------------------------------------- Chromium


def _png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixel values of an 8-bit RGB(A) PNG (no interlace)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        ftype, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        _unfilter(ftype, line, prev, bpp)
        seen.update(bytes(line[x : x + bpp]) for x in range(0, stride, bpp))
        prev = line
    return width, height, seen


def _unfilter(ftype: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    """Undo one PNG scanline filter in place (RFC 2083 section 6)."""
    n = len(line)
    if ftype == 1:
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif ftype == 2:
        line[:] = bytes((a + b) & 255 for a, b in zip(line, prev, strict=True))
    elif ftype == 3:
        for i in range(n):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif ftype == 4:
        for i in range(n):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 255
    elif ftype != 0:
        raise AssertionError(f"bad PNG filter {ftype}")


def _artifacts_dir() -> Path:
    env = os.environ.get("MLNODE_ARTIFACTS_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "artifacts"
    out = base / "doctor"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _chromium(args: list[str], profile: Path, timeout_seconds: float = 120) -> bytes:
    exe = shutil.which("chromium")
    assert exe
    argv = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    proc = subprocess.Popen(
        argv + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: chromium's helpers go too
        proc.communicate()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


@pytest.fixture
def chromium() -> None:
    """Skips (visibly) without chromium; in CI as root it fails instead, as CI installs it."""
    if shutil.which("chromium") is None:
        unavailable("chromium is not installed (.ci/apt-packages.txt)")


@pytest.mark.usefixtures("chromium")
def test_chromium_renders_the_page_one_row_per_node() -> None:
    n = 40
    with tempfile.TemporaryDirectory(prefix="mlnode-html-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(cluster_doc(n)), encoding="utf-8")
        shot = Path(tmp) / "report.png"
        url = page.as_uri()
        _chromium(
            [f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars", url],
            Path(tmp) / "profile-shot",
        )
        data = shot.read_bytes()
        dom = _chromium(["--dump-dom", url], Path(tmp) / "profile-dom").decode()
    (_artifacts_dir() / "report-40-nodes.png").write_bytes(data)
    width, height, colours = _png_pixels(data)
    assert (width, height) == (1400, 2000)
    assert len(colours) > 20, f"screenshot looks blank: {len(colours)} distinct pixel values"
    c = _parse(dom)
    assert len(_node_rows(c)) == n
    assert len([t for t, a in c.tags if t == "rect"]) == n - 1  # one bar per charted node
    assert EVIL_NAME in "".join(c.text) and c.scripts == [SORT_SCRIPT]


def _row_names(dom: str) -> list[str]:
    return re.findall(r'<tr class="node-row[^"]*" id="[^"]*"><td><a href="#[^"]*">([^<]*)</a>', dom)


@pytest.mark.usefixtures("chromium")
def test_chromium_sorts_the_table_only_when_asked() -> None:
    # Without scripts a browser shows the HTML as written: the parser tests above check
    # that (one row per node, worst first). Chromium's --dump-dom needs scripts itself, so
    # here the check is that the sorter changes nothing until asked.
    doc = cluster_doc(30)
    with tempfile.TemporaryDirectory(prefix="mlnode-html-") as tmp:
        page = Path(tmp) / "report.html"
        static = render_html(doc)
        page.write_text(static, encoding="utf-8")
        url = page.as_uri()
        by_name = _chromium(["--dump-dom", url + "#sort-0"], Path(tmp) / "p1").decode()
        by_usage = _chromium(["--dump-dom", url + "#sort-6-desc"], Path(tmp) / "p2").decode()
        unasked = _chromium(["--dump-dom", url], Path(tmp) / "p3").decode()
    names = [html.unescape(x) for x in _row_names(by_name)]
    assert len(names) == 30 and names == sorted(names, key=lambda x: x.lower())
    usage = {n["name"]: n["imagefs"]["usage_percent"] if n["imagefs"] else -1 for n in doc["nodes"]}
    ordered = [usage[html.unescape(x)] for x in _row_names(by_usage)]
    assert ordered == sorted(ordered, reverse=True)
    assert _row_names(unasked) == _row_names(static) and len(_row_names(static)) == 30
    assert _row_names(by_name) != _row_names(static)  # the fixture is not already sorted
