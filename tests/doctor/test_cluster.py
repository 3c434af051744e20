"""`mlnode doctor --cluster` against the fake API server (real HTTPS, real-API-shaped JSON:
Nodes from _kubelet_shapes, Events from _kube_events, configz and stats/summary through the
node proxy). Issue 11, acceptance 2: a 12 GB pull on containerd 1.7.13 that failed
`context canceled` after a 5-minute stall is the runtime's progress timeout, with the
setting and the value to change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlnode.cli.app import app
from mlnode.testing._kube_events import ERRORS, node_event, pull_story
from mlnode.testing._kubelet_shapes import configz_document, stats_summary
from mlnode.testing.fake_kube_api import FakeKubeApiServer

GB = 10**9
GIB = 1 << 30
IMAGE = "registry.example.com/ml/llm-train:v3"
T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
runner = CliRunner()


def _node(
    api: FakeKubeApiServer,
    name: str,
    *,
    pool: str = "a100",
    high: int = 85,
    runtime: str = "containerd://1.7.13",
    kubelet: str = "v1.30.2",
    available: int = 300 * GIB,
    images: list[tuple[list[str], int]] | None = None,
    answers: bool = True,
) -> None:
    api.add_node(
        name,
        labels={"nodepool": pool, "kubernetes.io/hostname": name},
        kubelet_version=kubelet,
        runtime_version=runtime,
        images=images
        or [
            ([f"{IMAGE}", "registry.example.com/ml/llm-train@sha256:" + "a" * 64], 12 * GB),
            (["registry.k8s.io/pause:3.9"], 321_000),
        ],
    )
    if answers:
        api.set_kubelet(
            name,
            configz=configz_document(kubelet, {"imageGCHighThresholdPercent": high}),
            summary=stats_summary(name, imagefs=(1000 * GIB, available, 400 * GIB)),
        )


def _stalled_pull(api: FakeKubeApiServer, node: str) -> None:
    text = ERRORS["containerd-progress-timeout"][0].format(image=IMAGE)
    # containerd checks every 10 s: the cancel lands between 5m0s and 5m10s of silence,
    # here after 2 minutes of bytes and the 5-minute stall of one layer
    for obj in pull_story(
        node=node,
        namespace="training",
        pod=f"llm-{node}",
        container="train",
        image=IMAGE,
        error=text,
        t0=T0,
        fail_after_seconds=7 * 60 + 6,
    ):
        api.add_event("training", obj)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer(workdir=tmp_path) as server:
        yield server


def _doctor(api: FakeKubeApiServer, tmp_path: Path, *extra: str, auth: str = "token") -> Any:
    kubeconfig = api.kubeconfig(tmp_path / f"kubeconfig-{auth}", auth=auth)  # type: ignore[arg-type]
    return runner.invoke(
        app,
        ["doctor", "--cluster", "--kubeconfig", str(kubeconfig), "--node-timeout", "2s", *extra],
    )


def test_a_stalled_12gb_pull_is_the_runtimes_progress_timeout(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    _node(api, "gpu-1")
    _node(api, "gpu-2")
    _stalled_pull(api, "gpu-1")
    r = _doctor(api, tmp_path, "-o", "json")
    assert r.exit_code == 1, r.output  # an error finding
    doc = json.loads(r.stdout)
    gpu1 = next(n for n in doc["nodes"] if n["name"] == "gpu-1")
    timeouts = [f for f in gpu1["findings"] if f["code"] == "D201"]
    assert len(timeouts) == 1, gpu1["findings"]
    f = timeouts[0]
    assert f["severity"] == "error" and f["node"] == "gpu-1"
    assert IMAGE in f["title"]
    assert "5m0s" in f["cause"] and "1.7.10" in f["cause"]
    assert 'image_pull_progress_timeout = "15m0s"' in f["fix"]
    assert '[plugins."io.containerd.grpc.v1.cri"]' in f["fix"]
    assert "mlnode apply --image-pull-progress-deadline 15m" in f["fix"]
    assert any("context canceled" in e for e in f["evidence"])
    assert gpu1["pull_deadline_seconds"]["value"] == 300.0
    gpu2 = next(n for n in doc["nodes"] if n["name"] == "gpu-2")
    assert not [f for f in gpu2["findings"] if f["code"].startswith("D2")]


def test_the_same_error_on_containerd_1_6_is_not_a_timeout(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    _node(api, "gpu-1", runtime="containerd://1.6.20")
    _stalled_pull(api, "gpu-1")
    doc = json.loads(_doctor(api, tmp_path, "-o", "json").stdout)
    codes = {f["code"] for f in doc["nodes"][0]["findings"]}
    assert "D201" not in codes and "D211" in codes


def test_nodes_of_a_pool_that_disagree_and_a_node_that_does_not_answer(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    _node(api, "gpu-1")
    _node(api, "gpu-2")
    _node(api, "gpu-3", high=70)
    _node(api, "gpu-4", answers=False)
    _node(api, "gpu-5", available=20 * GIB)  # 12 GB compressed = 36 GB on disk
    api.add_event(
        "default",
        node_event(
            "gpu-5",
            "FreeDiskSpaceFailed",
            "Failed to garbage collect required amount of images."
            " Attempted to free 13099650252 bytes, but only found"
            " 373595136 bytes eligible to free.",
            T0,
        ),
    )
    r = _doctor(api, tmp_path, "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["summary"]["nodes"] == 5
    assert doc["summary"]["nodes_unreachable"] == 1
    assert doc["summary"]["nodes_at_risk"] == 1
    fleet = {f["code"]: f for f in doc["fleet"]["findings"]}
    assert "70: 1 node(s) — gpu-3" in fleet["D403"]["evidence"]
    assert fleet["D401"]["evidence"][0].startswith("gpu-5 ")
    gpu4 = next(n for n in doc["nodes"] if n["name"] == "gpu-4")
    assert gpu4["reachable"] is False
    assert [f["code"] for f in gpu4["findings"]] == ["D404"]
    assert "error trying to reach service" in gpu4["findings"][0]["title"]
    dominant = doc["fleet"]["dominant_images"]
    assert dominant[0] == {"ref": IMAGE, "size_bytes": 36 * GB, "nodes": 5, "total_bytes": 180 * GB}
    assert [d["ref"] for d in dominant[1:]] == ["registry.k8s.io/pause:3.9"]
    assert gpu4["ephemeral_allocatable_bytes"] == 214_643_507_200 * 9 // 10
    gpu5 = next(n for n in doc["nodes"] if n["name"] == "gpu-5")
    assert {"D103", "D105", "D107"} <= {f["code"] for f in gpu5["findings"]}


def test_table_and_html_have_one_row_per_node(api: FakeKubeApiServer, tmp_path: Path) -> None:
    for i in range(3):
        _node(api, f"gpu-{i}")
    table = _doctor(api, tmp_path)
    assert table.exit_code == 0, table.output
    assert sum(1 for line in table.stdout.splitlines() if line.startswith("gpu-")) == 3
    page = _doctor(api, tmp_path, "-o", "html")
    assert page.stdout.count('class="node-row"') == 3


@pytest.mark.parametrize("auth", ["token", "cert", "exec"])
def test_every_kind_of_kubeconfig_credential(
    api: FakeKubeApiServer, tmp_path: Path, auth: str
) -> None:
    _node(api, "gpu-1")
    r = _doctor(api, tmp_path, "-o", "json", auth=auth)
    assert r.exit_code == 0, r.output
    # an exec plugin hands over a bearer token: the server sees a token it only knows
    # through the plugin
    seen = "cert" if auth == "cert" else "token"
    assert {req.auth for req in api.requests if req.path.startswith("/api/v1/nodes")} == {seen}


def test_an_api_server_that_does_not_answer_is_one_line_exit_8(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    api.down()
    r = runner.invoke(app, ["doctor", "--cluster", "--kubeconfig", str(kubeconfig)])
    assert r.exit_code == 8
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnode: error: ")


def test_rbac_without_nodes_proxy_reports_every_node_instead_of_failing(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    _node(api, "gpu-1")
    api.forbid("get", "nodes/proxy")
    r = _doctor(api, tmp_path, "-o", "json")
    doc = json.loads(r.stdout)
    f = doc["nodes"][0]["findings"]
    assert [x["code"] for x in f] == ["D404"]
    assert 'cannot get resource "nodes/proxy"' in f[0]["title"]


def test_events_that_cannot_be_listed_are_one_fleet_finding(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    _node(api, "gpu-1")
    _stalled_pull(api, "gpu-1")
    api.forbid("list", "events")
    r = _doctor(api, tmp_path, "-o", "json")
    doc = json.loads(r.stdout)
    (f,) = [f for f in doc["fleet"]["findings"] if f["code"] == "D404"]
    assert 'cannot list resource "events"' in f["title"]
    assert "list events" in f["fix"]
    assert doc["nodes"][0]["imagefs"] is not None  # the nodes are still read
    assert not [x for x in doc["nodes"][0]["findings"] if x["code"] == "D201"]


def test_the_table_shows_a_finding_many_nodes_share_once(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    for i in range(1, 6):
        _node(api, f"gpu-{i}")
    for i in range(1, 5):
        _stalled_pull(api, f"gpu-{i}")
    r = _doctor(api, tmp_path)
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert "error D201 on 4 nodes: gpu-1, gpu-2, gpu-3, gpu-4" in lines
    assert sum(1 for line in lines if "D201" in line) == 1
    assert any(line.startswith("    e.g. gpu-1: pull of ") for line in lines)
    # one node alone keeps its own lines
    _stalled_pull(api, "gpu-5")
    api.forbid("get", "nodes/proxy")
    alone = _doctor(api, tmp_path).stdout.splitlines()
    assert "warning D404 on 5 nodes: gpu-1, gpu-2, gpu-3, gpu-4, gpu-5" in alone


def test_a_label_selector_narrows_the_nodes(api: FakeKubeApiServer, tmp_path: Path) -> None:
    _node(api, "gpu-1", pool="a100")
    _node(api, "gpu-2", pool="h100")
    _node(api, "gpu-3", pool="h100", answers=False)
    r = _doctor(api, tmp_path, "-o", "json", "-l", "nodepool=h100,kubernetes.io/hostname!=gpu-3")
    assert [n["name"] for n in json.loads(r.stdout)["nodes"]] == ["gpu-2"]
    # only the selected node's kubelet is asked
    asked = {req.path for req in api.requests if "/proxy/" in req.path}
    assert asked == {"/api/v1/nodes/gpu-2/proxy/configz", "/api/v1/nodes/gpu-2/proxy/stats/summary"}
    bad = _doctor(api, tmp_path, "--selector", "pool in (a,b)")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("mlnode: error: --selector: not a label requirement: 'pool in (a")
    alone = runner.invoke(app, ["doctor", "--root", str(tmp_path), "-l", "a=b"])
    assert alone.exit_code == 2 and "--selector: only with --cluster" in alone.stderr


def test_the_fake_api_refuses_an_event_name_it_holds(api: FakeKubeApiServer) -> None:
    (obj, *_) = pull_story(
        node="gpu-1",
        namespace="ml",
        pod="p",
        container="c",
        image=IMAGE,
        error="x",
        t0=T0,
        fail_after_seconds=1,
    )
    api.add_event("ml", obj)
    with pytest.raises(ValueError, match="already exists"):
        api.add_event("ml", obj)  # the API server answers 409 AlreadyExists
