"""``mlnode progress`` with the node mirror: containerd's ingests (a fake listing) joined
with the mirror's blobs (served over real HTTP by a server in the test), human and JSON,
and a mirror that does not answer."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mirror_status_server import (
    DIGEST_A,
    DIGEST_B,
    StatusServer,
    blob,
    closed_port_url,
    status,
    status_server,
)
from typer.testing import CliRunner

import mlnode.cli.progress as progress_cli
from mlnode.cli.app import app
from mlnode.ops.mirror_status import MirrorStatus, MirrorUnreachable, parse_status
from mlnode.ops.progress import Download, MirrorView, join_mirror, locate_mirror, sample_to_json
from mlnode.runtime.containerd import IngestStatus

runner = CliRunner()
MiB = 1024 * 1024
DIGEST_C = "sha256:" + "c" * 64


def _ingest(digest: str, offset: int, total: int) -> IngestStatus:
    return IngestStatus(f"layer-{digest}", offset, total, None, None)


@dataclass
class _FakeContainerd:
    statuses: list[IngestStatus]

    def __enter__(self) -> _FakeContainerd:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def list_statuses(self, filters: Sequence[str] = ()) -> list[IngestStatus]:
        return list(self.statuses)


@dataclass(frozen=True)
class _Endpoint:
    socket_path: Path = Path("/nonexistent/containerd.sock")


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> list[IngestStatus]:
    """containerd, faked at the CLI's seam: two ingests, A (also at the mirror) and C."""
    statuses = [_ingest(DIGEST_A, 3 * MiB, 8 * MiB), _ingest(DIGEST_C, 1 * MiB, 2 * MiB)]
    monkeypatch.setattr(progress_cli, "discover_runtime", lambda _e=None: _Endpoint())
    monkeypatch.setattr(progress_cli, "ContainerdClient", lambda *a, **k: _FakeContainerd(statuses))
    return statuses


@pytest.fixture
def mirror() -> Iterator[StatusServer]:
    with status_server() as s:
        s.serve(status(blob(DIGEST_A), blob(DIGEST_B, image=None, state="verifying")))
        yield s


def _progress(*args: str) -> Any:
    # wide enough that rich does not fold the cells the tests look for
    return runner.invoke(app, ["progress", "--interval", "0.01", *args], env={"COLUMNS": "400"})


def test_json_joins_containerd_and_mirror_by_digest(
    node: list[IngestStatus], mirror: StatusServer
) -> None:
    r = _progress("--mirror", mirror.url, "-o", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "mlnode.progress/v1"
    assert doc["mirror"] == {
        "url": mirror.url,
        "reachable": True,
        "error": None,
        "pid": 4242,
        "cache_disk_bytes": 1024,
        "cache_max_bytes": 1 << 30,
    }
    rows = {row["digest"]: row for row in doc["downloads"]}
    assert [row["digest"] for row in doc["downloads"]] == [DIGEST_A, DIGEST_C, DIGEST_B]
    both = rows[DIGEST_A]  # one row, both numbers
    assert both["source"] == "both"
    assert both["ref"] == f"layer-{DIGEST_A}" and both["offset_bytes"] == 3 * MiB
    assert both["mirror"]["upstream_bytes"] == 6 * MiB
    assert both["mirror"]["served_bytes"] == 4 * MiB
    assert both["mirror"]["image"] == "127.0.0.1:5000/team/trainer:v1"
    assert rows[DIGEST_C]["source"] == "containerd" and rows[DIGEST_C]["mirror"] is None
    only = rows[DIGEST_B]  # a pull the mirror serves that containerd does not list (yet)
    assert only["source"] == "mirror" and only["ref"] is None and only["offset_bytes"] is None
    assert only["total_bytes"] == 8 * MiB and only["mirror"]["state"] == "verifying"


def test_human_table_shows_the_mirror_columns(
    node: list[IngestStatus], mirror: StatusServer
) -> None:
    r = _progress("--mirror", mirror.url)
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())  # the table may wrap cells
    assert f"mirror {mirror.url}" in out
    assert "127.0.0.1:5000/team/trainer:v1" in out
    assert "fetching 6.0 MiB/8.0 MiB upstream, 4.0 MiB served" in out
    assert "127.0.0.1:5000/team/trainer" in out and "verifying" in out
    assert "unreachable" not in out


def test_an_unreachable_mirror_is_one_line_and_containerd_still_shows(
    node: list[IngestStatus],
) -> None:
    url = closed_port_url()
    r = _progress("--mirror", url)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stdout.splitlines() if "unreachable" in ln]
    assert len(lines) == 1 and f"mirror unreachable: {url}/mlnode/v1/status" in lines[0]
    assert f"layer-{DIGEST_A}"[:20] in r.stdout.replace("\n", "")
    j = _progress("--mirror", url, "-o", "json")
    doc = json.loads(j.stdout)
    assert doc["mirror"]["reachable"] is False and "unreachable" in doc["mirror"]["error"]
    assert [row["source"] for row in doc["downloads"]] == ["containerd", "containerd"]


def test_a_malformed_mirror_answer_is_reported_like_an_unreachable_one(
    node: list[IngestStatus], mirror: StatusServer
) -> None:
    mirror.body = b"{"
    r = _progress("--mirror", mirror.url, "-o", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["mirror"]["reachable"] is False and "not JSON" in doc["mirror"]["error"]


def test_a_bad_mirror_url_is_exit_2_one_line(node: list[IngestStatus]) -> None:
    r = _progress("--mirror", "ftp://x")
    assert r.exit_code == 2
    assert r.stderr.strip().startswith("mlnode: error: --mirror: not a mirror URL")
    assert r.stdout == ""


def test_without_mirror_option_none_found_says_nothing(
    node: list[IngestStatus], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_cli, "_find_mirror", lambda explicit, socket: None)
    r = _progress("-o", "json")
    doc = json.loads(r.stdout)
    assert doc["mirror"] is None
    assert [row["source"] for row in doc["downloads"]] == ["containerd", "containerd"]
    human = _progress()
    assert "mirror" not in human.stdout and f"layer-{DIGEST_A}" in human.stdout


def test_locate_mirror_prefers_the_option_and_asks_containerd_only_to_discover() -> None:
    asked: list[str] = []

    def config_path() -> Path | None:
        asked.append("config_path")
        return None

    def down(url: str) -> MirrorStatus:
        raise MirrorUnreachable("refused", url=url)

    assert locate_mirror("http://127.0.0.1:1", config_path, read=down) == "http://127.0.0.1:1"
    assert asked == []
    assert locate_mirror(None, config_path, read=down) is None
    assert asked == ["config_path"]


def test_join_keeps_every_ingest_and_adds_what_only_the_mirror_has() -> None:
    st = parse_status(
        status(
            blob(DIGEST_B, started_monotonic=5.0),
            blob(DIGEST_A, started_monotonic=1.0, upstream_bytes=1),
            blob(DIGEST_A, started_monotonic=2.0, upstream_bytes=2),
        ),
        url="http://m",
    )
    downloads = [
        Download(_ingest(DIGEST_A, 1, 8), None),
        Download(IngestStatus("weird-ref", 0, 0, None, None), None),
    ]
    rows = join_mirror(downloads, st.blobs)
    assert [(r.source, r.digest) for r in rows] == [
        ("both", DIGEST_A),
        ("containerd", None),
        ("mirror", DIGEST_B),
    ]
    assert rows[0].mirror is not None and rows[0].mirror.upstream_bytes == 2
    doc = sample_to_json(
        downloads,
        namespace="k8s.io",
        interval_seconds=1.0,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        mirror=MirrorView("http://m", st),
    )
    assert len(doc["downloads"]) == 3
