"""Answers no API server gives but a proxy or a broken load balancer in front of one
can (HTML error pages, bodies that are not the JSON they claim): KubeClient still raises
only KubeError / KubeUnavailable, split by status code, so the agent's `except
MlnodeError` holds. Served by an httpx MockTransport under the real lightkube client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlnode.errors import KubeError, KubeUnavailable
from mlnode.kube import KubeClient, load_kubeconfig
from mlnode.testing.fake_kube_api import FakeKubeApiServer


def _client(tmp_path: Path, response: httpx.Response) -> KubeClient:
    with FakeKubeApiServer(workdir=tmp_path) as api:  # only for a valid kubeconfig
        resolved = load_kubeconfig(api.kubeconfig(tmp_path / "kubeconfig"))
    return KubeClient(resolved, transport=httpx.MockTransport(lambda request: response))


@pytest.mark.parametrize(
    ("response", "unavailable", "status", "text"),
    [
        (
            httpx.Response(502, headers={"Content-Type": "text/html"}, text="<h1>Bad Gateway</h1>"),
            True,
            502,
            "<h1>Bad Gateway</h1> (HTTP 502 Bad Gateway)",
        ),
        (
            httpx.Response(503, headers={"Content-Type": "application/json"}, text="{broken"),
            True,
            503,
            "{broken (HTTP 503 Service Unavailable)",
        ),
        (
            httpx.Response(400, headers={"Content-Type": "text/plain"}, text="bad\nrequest"),
            False,
            400,
            "bad request (HTTP 400 Bad Request)",
        ),
        (
            httpx.Response(200, headers={"Content-Type": "application/json"}, text="not json"),
            False,
            None,
            "unusable answer",
        ),
    ],
    ids=["html-502", "broken-json-503", "text-400", "non-json-200"],
)
def test_odd_answers_are_kube_errors(
    tmp_path: Path,
    response: httpx.Response,
    unavailable: bool,
    status: int | None,
    text: str,
) -> None:
    with _client(tmp_path, response) as client, pytest.raises(KubeError) as e:
        client.node_labels("n")
    assert isinstance(e.value, KubeUnavailable) is unavailable
    assert e.value.status == status
    assert text in str(e.value)
    assert "\n" not in str(e.value)
