"""Files a client of :class:`~mlnode.testing.fake_kube_api.FakeKubeApiServer` reads: a
kubeconfig (token, client certificate, or an ``exec`` credential plugin), the plugin itself
(a real shell script printing an ExecCredential), and a pod's service account files.

Shapes: kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig (the
kubeconfig), kubernetes.io/docs/reference/access-authn-authz/authentication "client-go
credential plugins" (the ``exec`` stanza: apiVersion, command, args, env,
interactiveMode; the ExecCredential a plugin prints: apiVersion, kind, status.token,
status.expirationTimestamp).
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from mlnode.testing import _kube_shapes as shapes

__all__ = ["EXEC_V1", "write_exec_plugin", "write_kubeconfig", "write_service_account"]

EXEC_V1 = "client.authentication.k8s.io/v1"
AuthKind = Literal["token", "cert", "exec"]


def write_exec_plugin(
    path: Path,
    *,
    token: str,
    api_version: str = EXEC_V1,
    fail: str | None = None,
    expiration: str | None = None,
) -> Path:
    """An executable ``/bin/sh`` plugin at ``path``. It appends one line to
    ``<path>.runs`` per run and prints the ExecCredential for ``token``; with ``fail``, it
    prints that to stderr and exits 1, as a plugin whose login expired does."""
    status: dict[str, Any] = {"token": token}
    if expiration is not None:
        status["expirationTimestamp"] = expiration
    credential = {"apiVersion": api_version, "kind": "ExecCredential", "status": status}
    runs = shlex.quote(f"{path}.runs")
    lines = ["#!/bin/sh", f'echo "$KUBERNETES_EXEC_INFO" >> {runs}']
    if fail is not None:
        lines += [f"echo {shlex.quote(fail)} >&2", "exit 1"]
    else:
        lines.append(f"printf '%s\\n' {shlex.quote(json.dumps(credential))}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def write_kubeconfig(
    path: Path,
    *,
    server_url: str,
    ca_pem: bytes,
    ca_path: Path,
    token: str | None,
    issue_client_cert: Callable[[], tuple[bytes, bytes]],
    auth: AuthKind = "token",
    inline: bool = False,
    exec_api_version: str = EXEC_V1,
    exec_fails: str | None = None,
) -> Path:
    """See :meth:`FakeKubeApiServer.kubeconfig`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster: dict[str, Any] = {"server": server_url}
    user: dict[str, Any] = {}
    if inline:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    else:
        cluster["certificate-authority"] = str(ca_path)
    if auth in ("token", "exec") and token is None:
        raise ValueError("this server accepts no token")
    if auth == "token":
        user["token"] = token
    elif auth == "exec":
        assert token is not None
        write_exec_plugin(
            path.parent / "exec-plugin.sh",
            token=token,
            api_version=exec_api_version,
            fail=exec_fails,
        )
        user["exec"] = {
            "apiVersion": exec_api_version,
            "command": "./exec-plugin.sh",  # relative: resolved beside the kubeconfig
            "args": ["token", "--cluster", "fake"],
            "env": [{"name": "MLNODE_TEST_PLUGIN", "value": "1"}],
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }
    else:
        cert, key = issue_client_cert()
        if inline:
            user["client-certificate-data"] = _b64(cert)
            user["client-key-data"] = _b64(key)
        else:
            (path.parent / "client.crt").write_bytes(cert)
            (path.parent / "client.key").write_bytes(key)
            user["client-certificate"] = "client.crt"  # relative to the kubeconfig
            user["client-key"] = "client.key"
    doc = shapes.kubeconfig(cluster, user)
    path.write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML
    return path


def write_service_account(
    root: Path, *, token: str | None, ca_pem: bytes, port: int, namespace: str
) -> dict[str, str]:
    """See :meth:`FakeKubeApiServer.service_account`."""
    account = root / "var/run/secrets/kubernetes.io/serviceaccount"
    account.mkdir(parents=True, exist_ok=True)
    (account / "token").write_text(token or "")
    (account / "ca.crt").write_bytes(ca_pem)
    (account / "namespace").write_text(namespace)
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
