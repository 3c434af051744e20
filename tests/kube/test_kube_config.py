"""Where KubeClient's credentials come from: kubeconfig (token, client certificate, inline
data), the in-cluster service account under a temp root, $KUBECONFIG / ~/.kube/config on
request, or nothing; every unusable file is one InputError line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import NODE

from mlnode.errors import InputError
from mlnode.kube import SERVICE_ACCOUNT_DIR, connect
from mlnode.testing.fake_kube_api import FakeKubeApiServer


@pytest.mark.parametrize("inline", [False, True], ids=["files", "inline-data"])
@pytest.mark.parametrize("auth", ["token", "cert"])
def test_kubeconfig_token_and_client_cert(
    api: FakeKubeApiServer, tmp_path: Path, auth: str, inline: bool
) -> None:
    kc = api.kubeconfig(tmp_path / "kubeconfig", auth=auth, inline=inline)  # type: ignore[arg-type]
    client = connect(kubeconfig=kc, env={})
    assert client is not None
    with client:
        assert client.auth_kind == auth
        assert client.node_labels(NODE)["nvidia.com/gpu.present"] == "true"
    assert [(r.path, r.auth, r.status) for r in api.requests] == [
        (f"/api/v1/nodes/{NODE}", auth, 200)
    ]


def test_in_cluster_from_a_temp_root(api: FakeKubeApiServer, tmp_path: Path) -> None:
    env = api.service_account(tmp_path)
    client = connect(kubeconfig=None, in_cluster_root=tmp_path, env=env)
    assert client is not None
    with client:
        assert client.source == "in-cluster service account"
        assert client.server == api.url
        client.node_labels(NODE)
    assert api.requests[-1].auth == "token"


def test_in_cluster_token_is_reread_after_rotation(api: FakeKubeApiServer, tmp_path: Path) -> None:
    """The kubelet rotates the projected token: the client reads the file again on a 401."""
    env = api.service_account(tmp_path)
    client = connect(in_cluster_root=tmp_path, env=env)
    assert client is not None
    with client:
        client.node_labels(NODE)
        api.token = "rotated-token"
        (tmp_path / SERVICE_ACCOUNT_DIR / "token").write_text("rotated-token")
        client.node_labels(NODE)
    assert [r.status for r in api.requests] == [200, 401, 200]


def test_in_cluster_needs_the_environment_and_the_token(
    api: FakeKubeApiServer, tmp_path: Path
) -> None:
    env = api.service_account(tmp_path)
    assert connect(in_cluster_root=tmp_path, env={}) is None  # not in a pod
    (tmp_path / SERVICE_ACCOUNT_DIR / "token").unlink()  # automountServiceAccountToken: false
    assert connect(in_cluster_root=tmp_path, env=env) is None


def test_in_cluster_token_without_ca_is_an_error(api: FakeKubeApiServer, tmp_path: Path) -> None:
    env = api.service_account(tmp_path)
    ca = tmp_path / SERVICE_ACCOUNT_DIR / "ca.crt"
    ca.unlink()
    with pytest.raises(InputError) as e:
        connect(in_cluster_root=tmp_path, env=env)
    assert str(e.value).startswith(f"{ca}: ")


def test_nothing_configured_is_no_api(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text("not: [a kubeconfig")
    # without discover_home, ~/.kube/config is not even read
    assert connect(in_cluster_root=tmp_path, env={"HOME": str(home)}) is None
    assert connect(in_cluster_root=tmp_path, env={}, discover_home=True) is None


def test_discover_home_reads_kubeconfig_then_home(api: FakeKubeApiServer, tmp_path: Path) -> None:
    listed = api.kubeconfig(tmp_path / "listed" / "config")
    home = tmp_path / "home"
    api.kubeconfig(home / ".kube" / "config", auth="cert")
    env = {"HOME": str(home), "KUBECONFIG": f"{listed}:/nonexistent"}
    c1 = connect(in_cluster_root=tmp_path, env=env, discover_home=True)
    c2 = connect(in_cluster_root=tmp_path, env={"HOME": str(home)}, discover_home=True)
    assert c1 is not None and c2 is not None
    assert (c1.auth_kind, c2.auth_kind) == ("token", "cert")
    assert str(listed) in c1.source
    c1.close()
    c2.close()


def test_a_kubeconfig_named_in_the_environment_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="cannot read"):
        connect(in_cluster_root=tmp_path, env={"KUBECONFIG": str(missing)}, discover_home=True)


def _one_line_error(path: Path) -> str:
    with pytest.raises(InputError) as e:
        connect(kubeconfig=path, env={})
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    return text


def test_malformed_kubeconfig_is_one_line_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters:\n- name: x\n  cluster: {server: [\n")
    text = _one_line_error(path)
    assert text.startswith(f"{path}:5: not YAML:") or text.startswith(f"{path}:4: not YAML:")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "no clusters list"),
        ("- a list\n", "no clusters list"),
        ("clusters: []\ncontexts: []\n", "no current-context"),
        (
            "clusters: []\ncontexts: [{name: a, context: {cluster: gone}}]\ncurrent-context: a\n",
            "names cluster 'gone': no such cluster",
        ),
        ("clusters: [{cluster: {}}]\ncontexts: []\n", "missing key 'name'"),
        ("clusters: []\ncontexts: []\ncurrent-context: elsewhere\n", "'elsewhere' is not among"),
        (
            "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
            "contexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a\n",
            "names user 'u': no such user",
        ),
        ("\x00", "NUL"),
    ],
)
def test_unusable_kubeconfig_names_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    assert expected in _one_line_error(path)


def test_missing_kubeconfig_file(tmp_path: Path) -> None:
    assert "cannot read" in _one_line_error(tmp_path / "absent")


def _edit_user(path: Path, **user: str) -> None:
    doc = json.loads(path.read_text())
    doc["users"][0]["user"] = user
    path.write_text(json.dumps(doc))


def test_a_missing_certificate_file_is_named(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="cert")
    (tmp_path / "client.key").unlink()
    text = _one_line_error(path)
    assert "client.key: no such file" in text


def test_broken_certificate_data(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig")
    _edit_user(path, **{"client-certificate-data": "bm90IGEgY2VydA==", "client-key-data": "eA=="})
    assert "cannot load certificates" in _one_line_error(path)


def test_certificate_without_key(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", auth="cert")
    _edit_user(path, **{"client-certificate": "client.crt"})
    assert "client-certificate without client-key" in _one_line_error(path)


def test_server_must_be_a_url(api: FakeKubeApiServer, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig")
    doc = json.loads(path.read_text())
    doc["clusters"][0]["cluster"]["server"] = "127.0.0.1:6443"
    path.write_text(json.dumps(doc))
    assert "not an http(s) URL" in _one_line_error(path)


def test_kubeconfig_without_user_presents_nothing(api: FakeKubeApiServer, tmp_path: Path) -> None:
    """A context without a user is allowed (kubectl's too): the API answers 401."""
    path = api.kubeconfig(tmp_path / "kubeconfig")
    doc = json.loads(path.read_text())
    del doc["contexts"][0]["context"]["user"]
    path.write_text(json.dumps(doc))
    client = connect(kubeconfig=path, env={})
    assert client is not None and client.auth_kind == "none"
    client.close()


def test_in_cluster_ipv6_service_host(api: FakeKubeApiServer, tmp_path: Path) -> None:
    api.service_account(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    client = connect(in_cluster_root=tmp_path, env=env)
    assert client is not None
    assert client.server == "https://[fd00::1]:443"
    client.close()
