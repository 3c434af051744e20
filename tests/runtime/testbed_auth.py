"""Registries that demand credentials: Basic (htpasswd) and bearer tokens (a token server).

- :class:`BasicAuthRegistry`: docker-registry's ``auth.htpasswd``. distribution 2.8 reads
  bcrypt hashes only (registry/auth/htpasswd); they are made with the ``bcrypt`` package
  (a dev dependency) at cost 4, the lowest Go's bcrypt accepts, because the registry checks
  the hash on every request.
- :class:`TokenServer` + :class:`TokenRegistry`: docker-registry's ``auth.token`` (realm,
  service, issuer, rootcertbundle) with the realm on another loopback port (another host,
  as in containerd#10996). The server issues RS256 JWTs whose header carries the signing
  certificate as ``x5c`` (distribution 2.8 registry/auth/token/token.go verifies that chain
  against ``rootcertbundle``, then ``iss`` against issuer and ``aud`` against service),
  with an ``access`` claim of ``{type, name, actions}``. It answers both ways containerd
  1.6 asks: ``POST`` (OAuth2 password grant, what it tries first when it has a secret) and
  ``GET`` with Basic credentials (its fallback, and what anonymous clients use). Every
  request is recorded (:attr:`TokenServer.requests`) so a test can say who asked.

The kubelet hands credentials to CRI PullImage as ``AuthConfig{username, password}`` with
no ``server_address`` (kubernetes pkg/credentialprovider/keyring.go): :meth:`cri_auth`.

What containerd 1.6.20 does with them, directly against these registries (no mirror;
test_testbed_registries.py asserts it):
- Basic, anonymous: ``pulling from host H failed with status code [manifests T]: 401
  Unauthorized`` (the tag HEAD/GET is tried without credentials first; every request 401).
- Basic, kubelet-shaped credentials: sent after the 401 challenge; the pull succeeds.
- Token, anonymous: an anonymous GET to the realm, a token with no access, then ``pull
  access denied, repository does not exist or may require authorization: server message:
  insufficient_scope: authorization failed``.
- Token, kubelet-shaped credentials: two ``POST``s to the realm (OAuth2 password grant,
  ``client_id=containerd-client``, scope ``repository:<name>:pull``, User-Agent
  ``containerd/1.6.20~ds1``), no GET; the pull succeeds.
- Token, wrong password: ``failed to authorize: failed to fetch oauth token: unexpected
  status: 401 Unauthorized`` (the POST's 401 sends it to the GET fallback, also 401).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import testbed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from testbed_tls import CertificateAuthority, cert_pem

from mlnode.runtime.cri import RegistryAuth

TEST_USERNAME = "mlnode-puller"


def htpasswd_line(username: str, password: str) -> str:
    import bcrypt  # here, not at the top: conftest imports this module for every runtime test

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{username}:{hashed}"


def kubelet_auth(username: str, password: str) -> RegistryAuth:
    """Credentials as the kubelet sends them in CRI PullImage: no ``server_address``."""
    return RegistryAuth(username=username, password=password)


# ---------------------------------------------------------------------------------------------
# Basic


class BasicAuthRegistry(testbed.Registry):
    """:class:`testbed.Registry` behind ``auth.htpasswd`` with one user; :attr:`http`
    (pushes) sends that user's Basic credentials."""

    def __init__(
        self, workdir: Path, *, username: str = TEST_USERNAME, password: str | None = None
    ) -> None:
        super().__init__(workdir)
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.htpasswd = workdir / "htpasswd"
        workdir.mkdir(parents=True, exist_ok=True)
        self.htpasswd.write_text(htpasswd_line(self.username, self.password) + "\n")
        self.http.close()
        self.http = httpx.Client(base_url=self.url, timeout=60, auth=(self.username, self.password))

    def extra_config_yaml(self) -> str:
        return f"auth:\n  htpasswd:\n    realm: mlnode-test-basic\n    path: {self.htpasswd}\n"

    def cri_auth(self) -> RegistryAuth:
        return kubelet_auth(self.username, self.password)


# ---------------------------------------------------------------------------------------------
# Bearer tokens


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    method: str  # "GET" (Basic or anonymous) or "POST" (OAuth2 password grant)
    username: str | None  # None: anonymous
    scopes: tuple[str, ...]
    service: str
    user_agent: str
    status: int  # 200 issued, 401 bad credentials
    granted: tuple[str, ...]  # "repository:<name>:<actions>" actually put in the token


_SCOPE_RE = re.compile(r"^repository:([^:]+):([a-z*,]+)$")


class TokenServer:
    """A token server on ``127.0.0.1:<port>`` (``/token``) for one user.

    Policy: a request with this user's credentials gets every ``pull``/``push`` it asks for;
    an anonymous one gets ``pull`` on :attr:`public_repositories` only (a token with no
    access otherwise, as Docker Hub does for a private repository); wrong credentials get
    401. Tokens live ``token_ttl_seconds``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        username: str = TEST_USERNAME,
        password: str | None = None,
        service: str = "mlnode-test-registry",
        issuer: str = "mlnode-test-token-issuer",
        public_repositories: Iterable[str] = (),
        token_ttl_seconds: int = 300,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.service = service
        self.issuer = issuer
        self.public_repositories = set(public_repositories)
        self.token_ttl_seconds = token_ttl_seconds
        ca = CertificateAuthority.create("mlnode test token CA")
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert, _ = ca.issue("mlnode test token signer", key=self._signing_key)
        self._x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
        self.root_cert_bundle = workdir / "token-ca.pem"
        self.root_cert_bundle.write_bytes(cert_pem(ca.cert))
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.realm = f"http://{self.host}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="token-server"
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        return len(self.requests)

    def requests_since(self, mark: int) -> list[TokenRequest]:
        return self.requests[mark:]

    def issue(self, subject: str, granted: Iterable[str]) -> str:
        """A signed JWT for ``granted`` scopes (``repository:<name>:<a,b>``)."""
        access = []
        for scope in granted:
            m = _SCOPE_RE.match(scope)
            if m:
                actions = m.group(2).split(",")
                access.append({"type": "repository", "name": m.group(1), "actions": actions})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.token_ttl_seconds,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        ).encode()
        signature = self._signing_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"

    def grant(self, username: str | None, scopes: Iterable[str]) -> tuple[str, ...]:
        """What the policy allows of ``scopes`` (see the class docstring)."""
        out: list[str] = []
        for scope in scopes:
            m = _SCOPE_RE.match(scope)
            if not m:
                continue
            name, wanted = m.group(1), set(m.group(2).split(","))
            if username is not None:
                allowed = wanted & {"pull", "push"}
            else:
                allowed = wanted & {"pull"} if name in self.public_repositories else set()
            if allowed:
                out.append(f"repository:{name}:{','.join(sorted(allowed))}")
        return tuple(out)

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test reads TokenServer.requests instead

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = tuple(s for v in query.get("scope", []) for s in v.split(" ") if s)
            service = query.get("service", [""])[0]
            credentials = _basic(self.headers.get("Authorization", ""))
            self._answer("GET", url.path, credentials, scopes, service, oauth=False)

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scopes = tuple(s for v in form.get("scope", []) for s in v.split(" ") if s)
            service = form.get("service", [""])[0]
            credentials: tuple[str, str] | None = None
            if form.get("grant_type", [""])[0] == "password":
                credentials = (form.get("username", [""])[0], form.get("password", [""])[0])
            self._answer("POST", url.path, credentials, scopes, service, oauth=True)

        def _answer(
            self,
            method: str,
            path: str,
            credentials: tuple[str, str] | None,
            scopes: tuple[str, ...],
            service: str,
            *,
            oauth: bool,
        ) -> None:
            if path != "/token":
                self._send(404, {"error": "not found"})
                return
            username = credentials[0] if credentials else None
            ok = credentials is None or credentials == (server.username, server.password)
            granted = server.grant(username, scopes) if ok else ()
            server.record(
                TokenRequest(
                    method=method,
                    username=username,
                    scopes=scopes,
                    service=service,
                    user_agent=self.headers.get("User-Agent", ""),
                    status=200 if ok else 401,
                    granted=granted,
                )
            )
            if not ok:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                return
            token = server.issue(username or "", granted)
            body: dict[str, object] = {
                "access_token": token,
                "expires_in": server.token_ttl_seconds,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if not oauth:
                body["token"] = token
            self._send(200, body)

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return ("", "")  # present but unreadable: bad credentials, not anonymous
    return (user, password)


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_RE.findall(rest))


class BearerChallengeAuth(httpx.Auth):
    """httpx auth that answers a registry's Bearer challenge: fetch a token from the
    challenge's realm with Basic credentials (GET), retry with it, and reuse it for the
    same repository until the registry asks again (e.g. push after pull)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = _repository_of(request.url.path)
        if key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme != "bearer" or "realm" not in params:
            return
        query = {k: params[k] for k in ("service", "scope") if k in params}
        r = httpx.get(
            params["realm"], params=query, auth=(self.username, self.password), timeout=30
        )
        r.raise_for_status()
        token = r.json().get("token") or r.json()["access_token"]
        self._tokens[key] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _repository_of(path: str) -> str:
    """``/v2/a/b/blobs/uploads/…`` → ``a/b`` (the token's key); ``/v2/`` → ``""``."""
    m = re.match(r"^/v2/(.+?)/(?:blobs|manifests|tags)/", path)
    return m.group(1) if m else ""


class TokenRegistry(testbed.Registry):
    """:class:`testbed.Registry` behind ``auth.token`` with :attr:`tokens` (a
    :class:`TokenServer` on another port) as its realm; :attr:`http` (pushes) answers the
    challenges with the token server's user."""

    def __init__(self, workdir: Path, tokens: TokenServer) -> None:
        super().__init__(workdir)
        self.tokens = tokens
        self.username = tokens.username
        self.password = tokens.password
        self.http.close()
        self.http = httpx.Client(
            base_url=self.url, timeout=60, auth=BearerChallengeAuth(self.username, self.password)
        )

    def extra_config_yaml(self) -> str:
        t = self.tokens
        return (
            "auth:\n  token:\n"
            f"    realm: {t.realm}\n    service: {t.service}\n    issuer: {t.issuer}\n"
            f"    rootcertbundle: {t.root_cert_bundle}\n"
        )

    def cri_auth(self) -> RegistryAuth:
        return kubelet_auth(self.username, self.password)
