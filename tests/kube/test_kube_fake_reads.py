"""FakeKubeApiServer's doctor-side answers through raw HTTPS: list pages shaped as the API
server's (NodeList/EventList, limit/continue, remainingItemCount, resourceVersion, items
without kind), a continue token that does not decode, add_event's schema check, the node
proxy's answers, the RBAC 403s, and the bounded request record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mlnode.testing._kubelet_shapes import configz_document
from mlnode.testing.fake_kube_api import FakeKubeApiServer


def _event(ns: str, name: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Pulling",
        "message": 'Pulling image "x"',
        "type": "Normal",
        "source": {"component": "kubelet", "host": "gpu-1"},
        "count": 1,
    }
    event.update(changes)
    return event


def test_node_list_pages(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    for name in ("b", "c", "a"):
        api.add_node(name)
    first = raw.get("/api/v1/nodes", params={"limit": 2}).json()
    assert (first["kind"], first["apiVersion"]) == ("NodeList", "v1")
    assert [n["metadata"]["name"] for n in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 2  # c and the fixture's gpu-node-1
    assert "kind" not in first["items"][0] and "apiVersion" not in first["items"][0]
    rv = first["metadata"]["resourceVersion"]
    params = {"limit": 2, "continue": first["metadata"]["continue"]}
    second = raw.get("/api/v1/nodes", params=params).json()
    assert [n["metadata"]["name"] for n in second["items"]] == ["c", "gpu-node-1"]
    assert second["metadata"]["resourceVersion"] == rv
    assert "continue" not in second["metadata"] and "remainingItemCount" not in second["metadata"]
    everything = raw.get("/api/v1/nodes").json()
    assert len(everything["items"]) == 4 and "continue" not in everything["metadata"]


def test_a_bad_continue_token_is_400(raw: httpx.Client) -> None:
    answer = raw.get("/api/v1/nodes", params={"limit": 1, "continue": "bm90LWpzb24"})
    assert answer.status_code == 400
    doc = answer.json()
    assert doc["reason"] == "BadRequest" and doc["message"].startswith("continue key is not valid")


def test_event_lists_all_and_per_namespace(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    api.add_event("ml", _event("ml", "p.1"))
    api.add_event("batch", _event("batch", "p.2"))
    everything = raw.get("/api/v1/events").json()
    assert everything["kind"] == "EventList"
    assert [e["metadata"]["namespace"] for e in everything["items"]] == ["batch", "ml"]
    ml = raw.get("/api/v1/namespaces/ml/events").json()
    assert [e["metadata"]["name"] for e in ml["items"]] == ["p.1"]
    stored = api.events("ml")[0]
    assert stored["metadata"]["uid"] and stored["metadata"]["resourceVersion"]


def test_add_event_is_checked_strictly(api: FakeKubeApiServer) -> None:
    with pytest.raises(ValueError, match="Additional properties are not allowed"):
        api.add_event("ml", _event("ml", "p.1", involvedObjects={}))
    with pytest.raises(ValueError, match=r"does not match event\.namespace"):
        api.add_event("ml", _event("ml", "p.1", involvedObject={"kind": "Pod", "namespace": "x"}))
    with pytest.raises(ValueError, match=r"metadata\.namespace"):
        api.add_event("ml", _event("other", "p.1"))
    assert api.events("ml") == []


def test_add_node_with_status_is_checked_strictly(api: FakeKubeApiServer) -> None:
    node = api.add_node("gpu-2", kubelet_version="v1.31.0", images=[(["a:1"], 10)])
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"
    bad = dict(node, spec={"podCIDRs": "not-a-list"})
    with pytest.raises(ValueError, match="is invalid"):
        api.add_node("gpu-3", obj=bad)


def test_node_proxy_answers(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    node = "gpu-node-1"
    unreachable = raw.get(f"/api/v1/nodes/{node}/proxy/configz")
    assert unreachable.status_code == 503
    assert unreachable.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "error trying to reach service: dial tcp 10.0.0.11:10250: connect: "
        "connection refused",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    api.set_kubelet(node, configz=configz_document())
    ok = raw.get(f"/api/v1/nodes/{node}/proxy/configz")
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json"
    assert ok.json() == configz_document()
    missing = raw.get(f"/api/v1/nodes/{node}/proxy/stats/summary")
    assert (missing.status_code, missing.text) == (404, "404 page not found\n")
    assert missing.headers["Content-Type"].startswith("text/plain")
    api.unset_kubelet(node)
    assert raw.get(f"/api/v1/nodes/{node}/proxy/configz").status_code == 503


def test_rbac_messages(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    api.use_roles([{"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}])
    assert raw.get("/api/v1/nodes/gpu-node-1").status_code == 200
    listed = raw.get("/api/v1/nodes").json()
    assert listed["message"] == (
        'nodes is forbidden: User "system:serviceaccount:mlnode-system:mlnode-agent" cannot '
        'list resource "nodes" in API group "" at the cluster scope'
    )
    assert listed["details"] == {"kind": "nodes"}
    proxied = raw.get("/api/v1/nodes/gpu-node-1/proxy/configz").json()
    assert proxied["code"] == 403 and proxied["details"] == {"kind": "nodes", "name": "gpu-node-1"}
    events = raw.get("/api/v1/namespaces/ml/events").json()
    assert events["message"].endswith(
        'cannot list resource "events" in API group "" in the namespace "ml"'
    )
    assert raw.get("/api").status_code == 200  # discovery stays open
    api.use_roles([{"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}])
    assert raw.get("/api/v1/nodes").status_code == 200


def test_the_request_record_is_bounded() -> None:
    with FakeKubeApiServer(requests_kept=3) as api:
        context = httpx.create_ssl_context(verify=False)
        headers = {"Authorization": f"Bearer {api.token}"}
        with httpx.Client(base_url=api.url, verify=context, headers=headers) as c:
            for _ in range(5):
                c.get("/api/v1/nodes")
        assert api.request_count == 5 and len(api.requests) == 3
        assert api.connection_count == 1  # kept alive
        api.forget_requests()
        assert api.requests == [] and api.request_count == 5
