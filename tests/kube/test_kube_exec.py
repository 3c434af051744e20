"""Kubeconfig ``exec`` credential plugins: a real /bin/sh plugin beside the kubeconfig
prints an ExecCredential with the fake server's token; the token reaches the server, the
plugin runs once for 32 threads, and every failure is one InputError line."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlnode.errors import InputError
from mlnode.kube import KubeClient, connect
from mlnode.testing._kube_files import write_exec_plugin
from mlnode.testing.fake_kube_api import FakeKubeApiServer


@pytest.fixture
def api() -> Iterator[FakeKubeApiServer]:
    server = FakeKubeApiServer().start()
    server.add_node("gpu-1")
    yield server
    server.stop()


def _client(path: Path) -> KubeClient:
    client = connect(kubeconfig=path)
    assert client is not None
    return client


def _runs(kubeconfig: Path) -> list[dict[str, object]]:
    lines = (kubeconfig.parent / "exec-plugin.sh.runs").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    "api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_the_plugins_token_reaches_the_server(
    api: FakeKubeApiServer, tmp_path: Path, api_version: str
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="exec", exec_api_version=api_version)
    with _client(path) as client:
        assert client.auth_kind == "exec"
        assert [n["metadata"]["name"] for n in client.list_nodes()] == ["gpu-1"]
        assert client.node_labels("gpu-1")["kubernetes.io/hostname"] == "gpu-1"
    assert [r.auth for r in api.requests] == ["token", "token"]  # the server's token
    (info,) = _runs(path)  # one run for both calls
    assert info == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


def test_one_plugin_run_for_32_threads(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="exec")
    with _client(path) as client, concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: len(client.list_nodes()), range(64)))
    assert results == [1] * 64
    assert len(_runs(path)) == 1
    assert {r.auth for r in api.requests} == {"token"}


def test_a_failing_plugin_is_one_input_error_line(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(
        tmp_path / "kubeconfig", auth="exec", exec_fails="error: the SSO session expired"
    )
    with _client(path) as client, pytest.raises(InputError) as e:
        client.list_nodes()
    line = f"mlnode: error: {e.value}"  # as the CLI prints an MlnodeError
    assert "\n" not in line
    assert line == (
        f"mlnode: error: {path.absolute()}: exec credential plugin "
        f"{path.parent}/exec-plugin.sh: exited with 1: error: the SSO session expired"
    )
    assert api.requests == []  # nothing was sent without a credential


def test_a_refused_token_runs_the_plugin_again_once(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="exec")
    write_exec_plugin(tmp_path / "exec-plugin.sh", token="stale-token")
    with _client(path) as client:
        with pytest.raises(Exception) as e:
            client.list_nodes()
        assert getattr(e.value, "status", None) == 401
        assert len(_runs(path)) == 2  # the first token, then once more after the 401
        write_exec_plugin(tmp_path / "exec-plugin.sh", token=str(api.token))
        assert len(client.list_nodes()) == 1  # renewed on the next 401
    assert [r.status for r in api.requests] == [401, 401, 401, 200]


@pytest.mark.parametrize(
    ("script", "what"),
    [
        ("echo not-json", "printed no ExecCredential JSON"),
        ('echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", '
         '"status": {}}\'', "ExecCredential status has no token"),
        ('echo \'{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": '
         '"ExecCredential", "status": {"token": "t"}}\'', "answered apiVersion"),
        ('echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", '
         '"status": {"clientCertificateData": "x", "clientKeyData": "y"}}\'',
         "answered a client certificate"),
    ],
)  # fmt: skip
def test_odd_plugin_output_is_an_input_error(
    api: FakeKubeApiServer, tmp_path: Path, script: str, what: str
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="exec")
    plugin = tmp_path / "exec-plugin.sh"
    plugin.write_text(f"#!/bin/sh\n{script}\n")
    with _client(path) as client, pytest.raises(InputError, match=what):
        client.list_events()


def test_a_missing_plugin_and_an_unknown_api_version(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="exec")
    (tmp_path / "exec-plugin.sh").unlink()
    with _client(path) as client, pytest.raises(InputError, match="cannot run: No such file"):
        client.list_nodes()
    text = path.read_text().replace("client.authentication.k8s.io/v1", "example.com/v9")
    path.write_text(text)
    with pytest.raises(InputError, match=r"exec apiVersion 'example\.com/v9' is not one of"):
        connect(kubeconfig=path)
