"""A kubeconfig ``exec`` credential plugin (``client.authentication.k8s.io`` ExecCredential),
run by mlnode rather than by lightkube, and the transport that presents its token.

Why not lightkube's own ``ExecAuth`` (lightkube 0.22): it refuses the ``v1`` API version
(only ``v1alpha1``/``v1beta1``), which is what current plugins and kubeconfigs name
(``aws eks get-token``, ``gke-gcloud-auth-plugin``, ``kubelogin``); it runs the plugin once
per thread that finds no token yet (32 at once from the doctor's pool); and a plugin that
prints no ``status.token`` ends in a ``KeyError``. Here: one run at a time under a lock, the
token kept until its ``expirationTimestamp`` (or a 401), ``KUBERNETES_EXEC_INFO`` set as
kubectl sets it, and every failure one :class:`~mlnode.errors.InputError` line naming the
kubeconfig. Protocol: kubernetes.io/docs/reference/access-authn-authz/authentication
("client-go credential plugins"; ExecCredential input and output, relative ``command``
resolved against the kubeconfig's directory) and the ExecCredential API reference
(kubernetes.io/docs/reference/config-api/client-authentication.v1).

The token goes in through the transport (:class:`CredentialTransport`) because lightkube's
``Client`` takes a transport but no ``httpx.Auth``. A plugin that answers with a client
certificate instead of a token is refused with a message saying so (the TLS context is
built before the first request; see docs/kube.md).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx

from mlnode.errors import InputError

__all__ = ["EXEC_API_VERSIONS", "PLUGIN_TIMEOUT_SECONDS", "CredentialTransport", "ExecPlugin"]

EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)
#: How long the plugin may run (a plugin that waits on a browser login never returns here:
#: it gets no terminal, ``spec.interactive`` is false).
PLUGIN_TIMEOUT_SECONDS = 60.0
#: A token this close to its expiry is fetched anew before it is sent.
_EXPIRY_MARGIN_SECONDS = 10.0


class ExecPlugin:
    """One kubeconfig user's ``exec`` entry. :meth:`token` runs the plugin when there is no
    token, or it expired, or the caller saw it refused; thread-safe (one run at a time)."""

    def __init__(
        self,
        *,
        api_version: str,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        kubeconfig: Path | None = None,
        base_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        where = kubeconfig if kubeconfig is not None else "kubeconfig"
        if api_version not in EXEC_API_VERSIONS:
            known = ", ".join(EXEC_API_VERSIONS)
            raise InputError(f"exec apiVersion {api_version!r} is not one of {known}", path=where)
        self.api_version = api_version
        if os.sep in command and not Path(command).is_absolute() and kubeconfig is not None:
            command = str(kubeconfig.parent / command)  # as client-go: beside the kubeconfig
        self.argv = (command, *args)
        self._extra_env = dict(env or {})
        self._base_env = base_env
        self._where: Path | str = where
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: float | None = None
        #: how many times the plugin ran (tests read it)
        self.runs = 0

    def token(self, *, refused: str | None = None) -> str:
        """A token to send. ``refused``: the token the API server just answered 401 to (it
        is fetched anew unless another thread already did)."""
        with self._lock:
            fresh = self._token is not None and (
                self._expires_at is None
                or self._clock() < self._expires_at - _EXPIRY_MARGIN_SECONDS
            )
            if fresh and self._token != refused:
                assert self._token is not None
                return self._token
            self._token, self._expires_at = self._run()
            self.runs += 1
            return self._token

    def _run(self) -> tuple[str, float | None]:
        env = dict(os.environ if self._base_env is None else self._base_env)
        env.update(self._extra_env)
        info = {"apiVersion": self.api_version, "kind": "ExecCredential"}
        env["KUBERNETES_EXEC_INFO"] = json.dumps({**info, "spec": {"interactive": False}})
        name = self.argv[0]
        try:
            done = subprocess.run(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PLUGIN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._fail(f"did not finish in {PLUGIN_TIMEOUT_SECONDS:g} s")
        except OSError as e:
            self._fail(f"cannot run: {e.strerror or e}")
        if done.returncode != 0:
            said = _last_line(done.stderr) or _last_line(done.stdout) or "no output"
            self._fail(f"exited with {done.returncode}: {said}")
        return self._parse(done.stdout, name)

    def _parse(self, stdout: bytes, name: str) -> tuple[str, float | None]:
        try:
            doc = json.loads(stdout)
        except ValueError:
            self._fail("printed no ExecCredential JSON")
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            self._fail("printed JSON that is not an ExecCredential")
        if doc.get("apiVersion") != self.api_version:
            self._fail(
                f"answered apiVersion {doc.get('apiVersion')!r}, the kubeconfig asks for "
                f"{self.api_version!r}"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            self._fail("ExecCredential has no status")
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                self._fail("answered a client certificate; mlnode takes a token only")
            self._fail("ExecCredential status has no token")
        return token, _expiry(status.get("expirationTimestamp"), self._fail)

    def _fail(self, what: str) -> NoReturn:
        raise InputError(f"exec credential plugin {self.argv[0]}: {what}", path=self._where)


def _expiry(stamp: Any, fail: Callable[[str], NoReturn]) -> float | None:
    if stamp is None:
        return None
    if not isinstance(stamp, str):
        fail(f"expirationTimestamp {stamp!r} is not an RFC 3339 time")
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        fail(f"expirationTimestamp {stamp!r} is not an RFC 3339 time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " ".join(lines[-1].split())[:300] if lines else ""


class CredentialTransport(httpx.BaseTransport):
    """Sends every request with the plugin's bearer token; a 401 runs the plugin again and
    sends the request once more (client-go does the same)."""

    def __init__(self, inner: httpx.BaseTransport, plugin: ExecPlugin) -> None:
        self._inner = inner
        self._plugin = plugin

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = self._plugin.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = self._inner.handle_request(request)
        if response.status_code != 401:
            return response
        response.close()
        renewed = self._plugin.token(refused=token)
        request.headers["Authorization"] = f"Bearer {renewed}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
