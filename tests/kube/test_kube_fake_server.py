"""FakeKubeApiServer itself, through raw HTTPS requests the real client would never send:
its schema check refuses what the official OpenAPI schema refuses (shown by requests that
fail it, next to the same request made valid), its errors are real Status objects, its
discovery answers are shaped as the API server's, and its faults do what they say."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from conftest import NODE

from mlnode.testing.fake_kube_api import DEFAULT_SCHEMA_VERSION, FakeKubeApiServer

EVENTS = "/api/v1/namespaces/default/events"


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{NODE}.17e0a1b2c3d4e5f6", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        "reason": "MlnodeAgentStarted",
        "message": "up",
        "type": "Normal",
        "source": {"component": "mlnode-agent", "host": NODE},
        "firstTimestamp": "2026-12-01T10:00:00Z",
        "lastTimestamp": "2026-12-01T10:00:00Z",
        "count": 1,
    }
    event.update(changes)
    return event


def _assert_status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code
    assert response.headers["Content-Type"] == "application/json"
    doc: dict[str, Any] = response.json()
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1"
    assert doc["status"] == "Failure"
    assert (doc["code"], doc["reason"]) == (code, reason)
    assert doc["message"]
    return doc


def test_a_valid_event_is_created(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    r = raw.post(EVENTS, json=_event())
    assert r.status_code == 201
    created = r.json()
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    assert len(api.events()) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": 7}, "type"),  # a bad Event type: not a string
        ({"count": "two"}, "count"),
        ({"involvedObjects": {"kind": "Node"}}, "<object>"),  # unknown field (strict)
        ({"source": {"component": "mlnode-agent", "hostname": NODE}}, "source"),
        ({"firstTimestamp": 1733000000}, "firstTimestamp"),
    ],
    ids=["type-int", "count-string", "unknown-field", "unknown-nested-field", "time-int"],
)
def test_schema_invalid_event_is_422(
    api: FakeKubeApiServer, raw: httpx.Client, changes: dict[str, Any], field: str
) -> None:
    r = raw.post(EVENTS, json=_event(**changes))
    doc = _assert_status(r, 422, "Invalid")
    assert doc["message"].startswith(f'Event "{NODE}.17e0a1b2c3d4e5f6" is invalid: {field}')
    (cause,) = doc["details"]["causes"]
    assert cause["reason"] == "FieldValueInvalid" and cause["field"] == field
    assert api.events() == []  # nothing stored


def test_the_schema_check_is_kubernetes_validate_strict() -> None:
    """What the server refuses is what kubernetes-validate strict refuses: the same
    unknown field passes the non-strict schema."""
    bad = _event(involvedObjects={"kind": "Node"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, DEFAULT_SCHEMA_VERSION, strict=True)
    kubernetes_validate.validate(bad, DEFAULT_SCHEMA_VERSION, strict=False)


def test_core_v1_accepts_any_type_string(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    """As the real API server: over core/v1 type is not checked to be Normal or Warning
    (pkg/apis/core/validation/events.go checks that for events.k8s.io/v1 only)."""
    assert raw.post(EVENTS, json=_event(type="Bogus")).status_code == 201


def test_node_event_outside_default_is_422(raw: httpx.Client) -> None:
    event = _event()
    event["metadata"]["namespace"] = "mlnode-system"
    r = raw.post("/api/v1/namespaces/mlnode-system/events", json=event)
    doc = _assert_status(r, 422, "Invalid")
    assert "involvedObject.namespace" in doc["message"]


def test_namespace_mismatch_is_400(raw: httpx.Client) -> None:
    event = _event()
    event["metadata"]["namespace"] = "kube-system"
    _assert_status(raw.post(EVENTS, json=event), 400, "BadRequest")


def test_duplicate_name_is_409(raw: httpx.Client) -> None:
    assert raw.post(EVENTS, json=_event()).status_code == 201
    doc = _assert_status(raw.post(EVENTS, json=_event()), 409, "AlreadyExists")
    assert doc["details"] == {"name": f"{NODE}.17e0a1b2c3d4e5f6", "kind": "events"}


def test_a_patch_whose_result_fails_the_schema_is_422(
    api: FakeKubeApiServer, raw: httpx.Client
) -> None:
    name = raw.post(EVENTS, json=_event()).json()["metadata"]["name"]
    headers = {"Content-Type": "application/merge-patch+json"}
    r = raw.patch(f"{EVENTS}/{name}", json={"count": "three"}, headers=headers)
    _assert_status(r, 422, "Invalid")
    assert api.events()[0]["count"] == 1  # unchanged
    r = raw.patch(f"/api/v1/nodes/{NODE}", json={"metadata": {"labelz": {}}}, headers=headers)
    _assert_status(r, 422, "Invalid")
    r = raw.patch(f"{EVENTS}/{name}", json={"count": 3}, headers=headers)
    assert r.status_code == 200 and r.json()["count"] == 3


def test_json_patch_is_415(raw: httpx.Client) -> None:
    headers = {"Content-Type": "application/json-patch+json"}
    r = raw.patch(f"/api/v1/nodes/{NODE}", content=b"[]", headers=headers)
    _assert_status(r, 415, "UnsupportedMediaType")


def test_the_node_fixture_passes_the_strict_schema(api: FakeKubeApiServer) -> None:
    node = api.node(NODE)
    assert node is not None
    assert kubernetes_validate.validate(node, DEFAULT_SCHEMA_VERSION, strict=True)


def test_not_found_and_unknown_paths(raw: httpx.Client) -> None:
    doc = _assert_status(raw.get("/api/v1/nodes/absent"), 404, "NotFound")
    assert doc["message"] == 'nodes "absent" not found'
    assert doc["details"] == {"name": "absent", "kind": "nodes"}
    _assert_status(raw.get("/api/v1/pods"), 404, "NotFound")


def test_discovery(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    versions = raw.get("/api").json()
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    assert versions["serverAddressByClientCIDRs"][0]["serverAddress"] == f"127.0.0.1:{api.port}"
    resources = raw.get("/api/v1").json()
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in resources["resources"]}
    assert not by_name["nodes"]["namespaced"] and by_name["events"]["namespaced"]
    assert {"get", "patch", "watch"} <= set(by_name["nodes"]["verbs"])
    assert by_name["configmaps"]["kind"] == "ConfigMap"


def test_no_credentials_is_401(api: FakeKubeApiServer) -> None:
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    with httpx.Client(base_url=api.url, verify=context) as anonymous:
        doc = _assert_status(anonymous.get(f"/api/v1/nodes/{NODE}"), 401, "Unauthorized")
        assert doc["message"] == "Unauthorized"
        bad = {"Authorization": "Bearer nope"}
        _assert_status(anonymous.get("/api", headers=bad), 401, "Unauthorized")
    assert [r.auth for r in api.requests] == [None, None]


def test_client_certificate_from_another_ca_fails_the_handshake(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    """The divergence the module docstring names: a real API server answers 401."""
    with FakeKubeApiServer() as other:
        other.kubeconfig(tmp_path / "kubeconfig", auth="cert")
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    context.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
    with (
        httpx.Client(base_url=api.url, verify=context) as client,
        pytest.raises(httpx.TransportError),
    ):
        client.get("/api")
    assert api.requests == []
    for _ in range(200):  # the server thread records the failure after the client saw it
        if api.handshake_failures:
            break
        time.sleep(0.025)
    assert api.handshake_failures


def test_fail_with_times_then_recovers(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    api.fail_with(503, times=2)
    _assert_status(raw.get("/api"), 503, "ServiceUnavailable")
    r = raw.get("/api")
    assert r.status_code == 503
    assert raw.get("/api").status_code == 200
    api.fail_with(429)
    assert raw.get("/api").headers["Retry-After"] == "1"
    assert raw.get("/api").status_code == 429
    api.fail_with(None)
    assert raw.get("/api").status_code == 200


def test_down_refuses_and_up_serves_on_the_same_port(
    api: FakeKubeApiServer, raw: httpx.Client
) -> None:
    port = api.port
    assert raw.get("/api").status_code == 200  # a keep-alive connection now open
    api.down()
    with pytest.raises(httpx.TransportError):
        raw.get("/api")
    api.up()
    assert api.port == port
    assert raw.get("/api").status_code == 200


def test_requests_are_recorded(api: FakeKubeApiServer, raw: httpx.Client) -> None:
    raw.post(EVENTS, json=_event(), params={"fieldManager": "x"})
    (req,) = api.requests
    assert (req.method, req.path, req.query, req.auth, req.status) == (
        "POST",
        EVENTS,
        "fieldManager=x",
        "token",
        201,
    )
    assert req.body == _event()


def test_an_unknown_schema_version_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="no schema"):
        FakeKubeApiServer(schema_version="9.99")
    older = FakeKubeApiServer(schema_version="1.30")
    assert older.schema_version == "1.30"
    older.stop()
