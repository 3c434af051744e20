"""KubeClient as the doctor's ClusterReader, against FakeKubeApiServer over HTTPS: lists
followed through their pages, the node proxy's documents and failures (kubelet
unreachable, slow, forbidden, answering an error), and 32 threads on one pool."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

import mlnode.kube._client as kube_client
from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube import LIST_PAGE_SIZE, POOL_CONNECTIONS, KubeClient, connect, load_kubeconfig
from mlnode.testing._kubelet_shapes import configz_document, stats_summary
from mlnode.testing.fake_kube_api import FakeKubeApiServer

GIB = 1024**3


def _event(namespace: str, name: str, node: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": namespace},
        "reason": "Failed",
        "message": 'Failed to pull image "x": rpc error: code = Canceled desc = context canceled',
        "type": "Warning",
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": "2026-12-01T10:00:00Z",
        "lastTimestamp": "2026-12-01T10:05:00Z",
        "count": 1,
    }


@pytest.fixture
def cluster() -> Iterator[FakeKubeApiServer]:
    api = FakeKubeApiServer().start()
    yield api
    api.stop()


@pytest.fixture
def reader(cluster: FakeKubeApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    client = connect(kubeconfig=cluster.kubeconfig(tmp_path / "kubeconfig"))
    assert client is not None
    yield client
    client.close()


def test_list_nodes_follows_every_page(cluster: FakeKubeApiServer, reader: KubeClient) -> None:
    count = 2 * LIST_PAGE_SIZE + 3
    for i in range(count):  # node_object's Nodes are validated in test_kubelet_shapes
        cluster.add_node(f"n{i:04d}", validate=False, kubelet_version="v1.30.2")
    nodes = reader.list_nodes()
    assert [n["metadata"]["name"] for n in nodes] == [f"n{i:04d}" for i in range(count)]
    first = nodes[0]
    assert type(first) is dict  # the API's JSON, not a lightkube model
    assert first["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.2"
    assert (first["kind"], first["apiVersion"]) == ("Node", "v1")  # items lack them; filled
    pages = [r for r in cluster.requests if r.path == "/api/v1/nodes"]
    assert len(pages) == 3
    queries = [parse_qs(r.query) for r in pages]
    assert all(q["limit"] == [str(LIST_PAGE_SIZE)] for q in queries)
    assert "continue" not in queries[0] and all("continue" in q for q in queries[1:])


def test_list_events_reads_every_namespace(
    cluster: FakeKubeApiServer, reader: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_client, "LIST_PAGE_SIZE", 2)
    for i, ns in enumerate(["default", "ml-team", "ml-team", "batch", "kube-system"]):
        cluster.add_event(ns, _event(ns, f"p.{i:x}", "gpu-1"))
    events = reader.list_events()
    assert sorted((e["metadata"]["namespace"], e["metadata"]["name"]) for e in events) == [
        ("batch", "p.3"),
        ("default", "p.0"),
        ("kube-system", "p.4"),
        ("ml-team", "p.1"),
        ("ml-team", "p.2"),
    ]
    assert all(e["kind"] == "Event" for e in events)
    pages = [r for r in cluster.requests if r.path == "/api/v1/events"]
    assert len(pages) == 3  # 2 + 2 + 1


def test_node_proxy_returns_the_kubelet_documents(
    cluster: FakeKubeApiServer, reader: KubeClient
) -> None:
    cluster.add_node("gpu-1", kubelet_version="v1.31.4")
    configz = configz_document("v1.31.4", {"imageGCHighThresholdPercent": 90})
    summary = stats_summary("gpu-1", imagefs=(500 * GIB, 20 * GIB, 400 * GIB))
    cluster.set_kubelet("gpu-1", configz=configz, summary=summary)
    assert reader.node_proxy("gpu-1", "configz", timeout_seconds=5) == configz
    got = reader.node_proxy("gpu-1", "stats/summary", timeout_seconds=5)
    assert got["node"]["runtime"]["imageFs"]["availableBytes"] == 20 * GIB
    paths = [r.path for r in cluster.requests]
    assert paths == ["/api/v1/nodes/gpu-1/proxy/configz", "/api/v1/nodes/gpu-1/proxy/stats/summary"]


def test_an_unreachable_kubelet_is_the_api_servers_503(
    cluster: FakeKubeApiServer, reader: KubeClient
) -> None:
    cluster.add_node("gpu-1", addresses=[("InternalIP", "10.1.2.3"), ("Hostname", "gpu-1")])
    with pytest.raises(KubeUnavailable) as e:
        reader.node_proxy("gpu-1", "configz", timeout_seconds=5)
    assert e.value.status == 503
    assert str(e.value).endswith(
        "error trying to reach service: dial tcp 10.1.2.3:10250: connect: connection refused "
        "(HTTP 503 ServiceUnavailable)"
    )


def test_the_per_call_timeout_is_the_callers(
    cluster: FakeKubeApiServer, reader: KubeClient
) -> None:
    """A kubelet 1 s slow: a 0.2 s budget gives up, a 5 s one waits (the client's own
    read timeout, 10 s, would let both through)."""
    cluster.add_node("slow")
    cluster.set_kubelet("slow", configz=configz_document(), delay_seconds=1.0)
    with pytest.raises(KubeUnavailable) as e:
        reader.node_proxy("slow", "configz", timeout_seconds=0.2)
    assert "no answer in time" in str(e.value)
    assert "kubeletconfig" in reader.node_proxy("slow", "configz", timeout_seconds=5)


def test_forbidden_node_proxy_is_the_rbac_message(
    cluster: FakeKubeApiServer, reader: KubeClient
) -> None:
    cluster.add_node("n1")
    cluster.set_kubelet("n1", configz=configz_document())
    cluster.forbid("get", "nodes/proxy")
    with pytest.raises(KubeError) as e:
        reader.node_proxy("n1", "configz", timeout_seconds=5)
    assert e.value.status == 403 and not isinstance(e.value, KubeUnavailable)
    assert str(e.value).endswith(
        'nodes "n1" is forbidden: User "system:serviceaccount:mlnode-system:mlnode-agent" '
        'cannot get resource "nodes/proxy" in API group "" at the cluster scope '
        "(HTTP 403 Forbidden)"
    )
    assert len(reader.list_nodes()) == 1  # only the proxy is refused


def test_kubelet_errors_and_unknown_nodes(cluster: FakeKubeApiServer, reader: KubeClient) -> None:
    cluster.add_node("n1")
    cluster.set_kubelet("n1", configz=configz_document())
    with pytest.raises(KubeError) as e:
        reader.node_proxy("n1", "stats/summary", timeout_seconds=5)
    assert e.value.status == 404 and "404 page not found" in str(e.value)
    with pytest.raises(KubeError) as e:
        reader.node_proxy("absent", "configz", timeout_seconds=5)
    assert e.value.status == 404 and 'nodes "absent" not found' in str(e.value)
    cluster.set_kubelet("n1", status=500)
    with pytest.raises(KubeUnavailable) as e:
        reader.node_proxy("n1", "configz", timeout_seconds=5)
    assert e.value.status == 500 and "Internal Server Error" in str(e.value)


@pytest.mark.parametrize(
    ("body", "what"),
    [(b"<html>hi</html>", "unusable answer: not JSON"), (b"[1, 2]", "JSON list, not an object")],
)
def test_a_proxy_answer_that_is_not_an_object_is_unusable(
    tmp_path: Path, body: bytes, what: str
) -> None:
    with FakeKubeApiServer(workdir=tmp_path) as api:  # only for a valid kubeconfig
        resolved = load_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    response = httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    client = KubeClient(resolved, transport=httpx.MockTransport(lambda r: response))
    with client, pytest.raises(KubeError) as e:
        client.node_proxy("n1", "configz", timeout_seconds=5)
    assert not isinstance(e.value, KubeUnavailable) and what in str(e.value)


def test_a_list_answer_that_is_not_a_list_is_unusable(tmp_path: Path) -> None:
    with FakeKubeApiServer(workdir=tmp_path) as api:
        resolved = load_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    response = httpx.Response(200, json={"kind": "Status"})
    client = KubeClient(resolved, transport=httpx.MockTransport(lambda r: response))
    with client, pytest.raises(KubeError, match="unusable answer: not a list"):
        client.list_nodes()


def test_32_threads_share_one_kept_alive_pool(
    cluster: FakeKubeApiServer, reader: KubeClient
) -> None:
    """200 nodes x 2 documents from 32 threads: every answer right, over kept-alive
    connections (400 requests, at most the pool's size of connections)."""
    names = [f"n{i:03d}" for i in range(200)]
    configz = configz_document()
    for name in names:
        cluster.add_node(name, validate=False, kubelet_version="v1.30.2")
        summary = stats_summary(name, imagefs=(100 * GIB, 50 * GIB, 40 * GIB))
        cluster.set_kubelet(name, configz=configz, summary=summary)

    def one(name: str) -> str:
        assert reader.node_proxy(name, "configz", timeout_seconds=10) == configz
        got = reader.node_proxy(name, "stats/summary", timeout_seconds=10)
        return str(got["node"]["nodeName"])

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        assert list(pool.map(one, names)) == names
    assert cluster.request_count == 400
    assert 1 <= cluster.connection_count <= POOL_CONNECTIONS


def test_the_pool_holds_32_requests_at_once(cluster: FakeKubeApiServer, reader: KubeClient) -> None:
    """32 kubelets that hold their answers until released: all 32 requests reach the
    server together (a pool of fewer connections would hold the rest back)."""
    names = [f"slow-{i:02d}" for i in range(32)]
    for name in names:
        cluster.add_node(name, validate=False, kubelet_version="v1.30.2")
        cluster.set_kubelet(name, configz=configz_document(), delay_seconds=120)
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        futures = [
            pool.submit(reader.node_proxy, name, "configz", timeout_seconds=150) for name in names
        ]
        try:
            for _ in range(600):  # until all 32 are in (or give up after ~60 s)
                if cluster.in_flight == 32:
                    break
                time.sleep(0.1)
            assert cluster.in_flight == 32
        finally:
            cluster.release_delayed(again=False)  # the rest, too, at once
        assert all("kubeletconfig" in f.result() for f in futures)


@pytest.mark.parametrize("how", ["token", "cert", "exec", "in-cluster"])
def test_every_credential_reaches_the_node_proxy(
    cluster: FakeKubeApiServer, tmp_path: Path, how: str
) -> None:
    """The proxy's plain httpx client presents what lightkube's would (and exec's token)."""
    cluster.add_node("n1")
    cluster.set_kubelet("n1", configz=configz_document())
    if how == "in-cluster":
        env = cluster.service_account(tmp_path / "pod")
        client = connect(in_cluster_root=tmp_path / "pod", env=env)
    else:
        client = connect(kubeconfig=cluster.kubeconfig(tmp_path / "kc", auth=how))  # type: ignore[arg-type]
    assert client is not None
    with client:
        assert "kubeletconfig" in client.node_proxy("n1", "configz", timeout_seconds=5)
        assert len(client.list_nodes()) == 1
    want = "cert" if how == "cert" else "token"
    assert [(r.auth, r.status) for r in cluster.requests] == [(want, 200), (want, 200)]
