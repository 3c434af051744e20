"""Fixtures for mlnode.kube's tests: a FakeKubeApiServer over real HTTPS on 127.0.0.1, a
node on it, and KubeClients connected with a token and with a client certificate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlnode.kube import KubeClient, connect
from mlnode.testing.fake_kube_api import FakeKubeApiServer

NODE = "gpu-node-1"


@pytest.fixture
def api() -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as server:
        server.add_node(NODE, labels={"nvidia.com/gpu.present": "true"})
        yield server


def _connected(api: FakeKubeApiServer, path: Path, auth: str) -> KubeClient:
    client = connect(kubeconfig=api.kubeconfig(path, auth=auth))  # type: ignore[arg-type]
    assert client is not None
    return client


@pytest.fixture
def client(api: FakeKubeApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    with _connected(api, tmp_path / "token" / "kubeconfig", "token") as c:
        yield c


@pytest.fixture
def cert_client(api: FakeKubeApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    with _connected(api, tmp_path / "cert" / "kubeconfig", "cert") as c:
        yield c


@pytest.fixture
def raw(api: FakeKubeApiServer) -> Iterator[httpx.Client]:
    """Plain HTTPS to the fake, with its token: requests the real client would never send."""
    context = ssl.create_default_context(cadata=api.ca_pem.decode())
    headers = {"Authorization": f"Bearer {api.token}"}
    with httpx.Client(base_url=api.url, verify=context, headers=headers, timeout=10) as c:
        yield c
