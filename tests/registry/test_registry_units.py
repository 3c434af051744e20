"""Pure parts of the registry client: references, hosts.toml, auth headers, docker config,
manifests; and the client's auth and mirror fallback over httpx.MockTransport."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mlnode.errors import (
    DigestMismatch,
    ImageNotFound,
    InputError,
    RegistryConnectionLost,
    RegistryError,
    RegistryStalled,
    RegistryUnavailable,
    Retryable,
    UsageError,
)
from mlnode.registry.auth import (
    Credentials,
    credentials_for,
    load_docker_config,
    parse_www_authenticate,
)
from mlnode.registry.client import RegistryClient
from mlnode.registry.hosts import RegistryHost, host_directories, hosts_for, parse_hosts_toml
from mlnode.registry.manifest import (
    ImageIndex,
    ImageManifest,
    Platform,
    parse_manifest,
    select_platform,
)
from mlnode.registry.reference import Reference, parse_reference

# -- references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"),
        ("nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io/nvidia/pytorch:24.05-py3"),
        ("ghcr.io/org/img@sha256:" + "a" * 64, "ghcr.io/org/img@sha256:" + "a" * 64),
        ("ghcr.io/org/img:v1@sha256:" + "b" * 64, "ghcr.io/org/img:v1@sha256:" + "b" * 64),
    ],
)
def test_reference_normalisation(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_reference_parts() -> None:
    ref = parse_reference("busybox")
    assert ref == Reference("docker.io", "library/busybox", "latest", None)
    assert ref.object == "latest" and ref.name == "docker.io/library/busybox"
    pinned = parse_reference("a.io/x@sha256:" + "c" * 64)
    assert pinned.tag is None and pinned.object == "sha256:" + "c" * 64


@pytest.mark.parametrize(
    "text", ["", "Busybox", "a.io/Upper/x", "busybox:", "busybox@sha256:xyz", "a.io//x", "x:tag!"]
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


# -- hosts.toml -------------------------------------------------------------------------------

HOSTS = """
server = "https://registry-1.docker.io"

[host."https://mirror-b.internal"]
  capabilities = ["pull", "resolve"]
  ca = "mirror.crt"

[host."http://mirror-a.internal:5000/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  [host."http://mirror-a.internal:5000/prefix".header]
    x-token = ["a", "b"]

[host."https://odd.internal/v2/upstream"]
  override_path = true
"""


def test_hosts_toml_file_order_then_server(tmp_path: Path) -> None:
    hosts = parse_hosts_toml(HOSTS, namespace="docker.io", path=tmp_path / "hosts.toml")
    assert [h.base_url for h in hosts] == [
        "https://mirror-b.internal",
        "http://mirror-a.internal:5000",
        "https://odd.internal",
        "https://registry-1.docker.io",
    ]
    b, a, odd, server = hosts
    assert b.capabilities == {"pull", "resolve"} and b.ca_files == (tmp_path / "mirror.crt",)
    assert a.capabilities == {"pull"} and a.skip_verify and a.path == "/prefix/v2"
    assert a.headers == {"x-token": ("a", "b")}
    assert odd.path == "/v2/upstream" and odd.capabilities == {"pull", "resolve", "push"}
    assert server.path == "/v2" and not server.is_mirror
    assert a.url("/lib/x/blobs/sha256:1") == (
        "http://mirror-a.internal:5000/prefix/v2/lib/x/blobs/sha256:1?ns=docker.io"
    )


def test_hosts_toml_without_server_falls_back_to_the_namespace(tmp_path: Path) -> None:
    text = '[host."http://127.0.0.1:9999"]\n  capabilities = ["pull", "resolve"]\n'
    hosts = parse_hosts_toml(text, namespace="127.0.0.1:5000", path=tmp_path / "h.toml")
    assert [h.base_url for h in hosts] == ["http://127.0.0.1:9999", "http://127.0.0.1:5000"]
    quay = parse_hosts_toml("", namespace="quay.io", path=tmp_path / "h.toml")
    assert [h.base_url for h in quay] == ["https://quay.io"]


def test_hosts_dir_lookup_order(tmp_path: Path) -> None:
    assert host_directories(tmp_path, "reg.io:5000") == [
        tmp_path / "reg.io_5000_",
        tmp_path / "reg.io:5000",
        tmp_path / "_default",
    ]
    assert hosts_for("docker.io", None) == [
        RegistryHost("https", "registry-1.docker.io", namespace="docker.io")
    ]
    assert hosts_for("localhost:5000", tmp_path)[0].scheme == "http"
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text('server = "https://cache.internal"\n')
    assert [h.base_url for h in hosts_for("quay.io", tmp_path)] == ["https://cache.internal"]
    (tmp_path / "quay.io").mkdir()
    (tmp_path / "quay.io" / "hosts.toml").write_text("server = 1\n")
    with pytest.raises(InputError, match="server"):
        hosts_for("quay.io", tmp_path)


# -- auth -------------------------------------------------------------------------------------


def test_www_authenticate_bearer() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    assert c.scheme == "bearer" and c.realm == "https://auth.docker.io/token"
    assert c.params["service"] == "registry.docker.io"
    assert c.params["scope"] == "repository:library/busybox:pull"


def test_www_authenticate_several_and_quoting() -> None:
    got = parse_www_authenticate(
        'Basic realm="x, y", Bearer realm="https://a/t",scope="repository:a:pull,push",'
        'error="insufficient_scope", Negotiate abc=='
    )
    assert [c.scheme for c in got] == ["basic", "bearer", "negotiate"]
    assert got[0].realm == "x, y"
    assert got[1].params["scope"] == "repository:a:pull,push"
    assert got[1].params["error"] == "insufficient_scope"
    assert parse_www_authenticate('Bearer realm="a\\"b"')[0].realm == 'a"b'
    assert parse_www_authenticate("") == []


def test_docker_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {
                        "auth": base64.b64encode(b"hubuser:hub:pass").decode()
                    },
                    "reg.example:5000": {"username": "u", "password": "p"},
                    "https://ghcr.io": {"identitytoken": "refresh"},
                    "empty.io": {},
                },
                "credsStore": "desktop",
            }
        )
    )
    creds = load_docker_config(cfg)
    assert credentials_for("docker.io", creds) == Credentials("hubuser", "hub:pass")
    assert credentials_for("reg.example:5000", creds) == Credentials("u", "p")
    assert credentials_for("ghcr.io", creds) == Credentials("", "", "refresh")
    assert credentials_for("empty.io", creds) is None
    assert "hub:pass" not in repr(creds)
    assert load_docker_config(tmp_path / "missing.json") == {}
    cfg.write_text('{"auths": {"x.io": {"auth": "bm9jb2xvbg=="}}}')
    with pytest.raises(InputError, match="user:password"):
        load_docker_config(cfg)


# -- manifests ---------------------------------------------------------------------------------


def _manifest_bytes() -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "c", "digest": "sha256:" + "1" * 64, "size": 10},
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": "sha256:" + "2" * 64,
                    "size": 100,
                },
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + "3" * 64,
                    "size": 50,
                },
            ],
        }
    ).encode()


def test_parse_docker_manifest() -> None:
    m = parse_manifest(_manifest_bytes(), media_type="", digest="sha256:x", url="u")
    assert isinstance(m, ImageManifest)
    assert m.blobs_size == 160 and [layer.compressed for layer in m.layers] == [True, False]


def test_index_platform_choice() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "digest": "sha256:a",
                    "size": 1,
                    "platform": {"os": "unknown", "architecture": "unknown"},
                },
                {
                    "digest": "sha256:b",
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
                {
                    "digest": "sha256:c",
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
    ).encode()
    idx = parse_manifest(raw, media_type="", digest="sha256:i", url="u")
    assert isinstance(idx, ImageIndex)
    assert select_platform(idx, Platform("linux", "amd64")).digest == "sha256:c"
    assert select_platform(idx, Platform("linux", "arm64")).digest == "sha256:b"
    with pytest.raises(RegistryError, match="offers: linux/amd64, linux/arm64/v8"):
        select_platform(idx, Platform("linux", "s390x"))
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")


def test_schema1_is_refused() -> None:
    with pytest.raises(RegistryError, match="schema 1"):
        parse_manifest(b'{"schemaVersion": 1}', media_type="", digest="d", url="u")


# -- the client over a mock transport -----------------------------------------------------------


def test_client_token_auth_and_mirror_fallback(tmp_path: Path) -> None:
    body = _manifest_bytes()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    (tmp_path / "reg.io").mkdir()
    (tmp_path / "reg.io" / "hosts.toml").write_text(
        'server = "https://reg.io"\n'
        '[host."https://down.mirror"]\n  capabilities = ["pull", "resolve"]\n'
    )
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        if request.url.host == "down.mirror":
            raise httpx.ConnectError("refused", request=request)
        if request.url.host == "auth.reg.io":
            assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
            assert request.url.params["scope"] == "repository:team/app:pull"
            return httpx.Response(200, json={"token": "T"})
        if request.headers.get("Authorization") != "Bearer T":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://auth.reg.io/token",'
                    'service="reg.io",scope="repository:team/app:pull"'
                },
            )
        if request.url.path.endswith("/manifests/1"):
            return httpx.Response(
                200,
                content=body,
                headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
            )
        if "/blobs/" in request.url.path:
            assert request.headers["Range"] == "bytes=3-"
            return httpx.Response(
                206, content=b"3456789", headers={"Content-Range": "bytes 3-9/10"}
            )
        return httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "nope"}]}
        )

    client = RegistryClient(
        hosts_dir=tmp_path,
        credentials={"reg.io": Credentials("u", "p")},
        transport=httpx.MockTransport(handler),
    )
    ref = parse_reference("reg.io/team/app:1")
    target = client.pull_target(ref, Platform("linux", "amd64"))
    assert target.manifest.digest == digest and target.index is None
    assert seen[0].startswith("GET https://down.mirror/v2/team/app/manifests/1?ns=reg.io")
    with client.open_blob(ref, "sha256:" + "2" * 64, start=3) as blob:
        assert b"".join(blob.iter_bytes()) == b"3456789"
    with pytest.raises(ImageNotFound, match="MANIFEST_UNKNOWN: nope"):
        client.fetch_manifest(ref, "2")
    client.close()


def test_client_digest_mismatch_and_range_ignored() -> None:
    body = _manifest_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return httpx.Response(
                200, content=body, headers={"Docker-Content-Digest": "sha256:" + "0" * 64}
            )
        return httpx.Response(200, content=b"0123456789")  # ignores Range

    client = RegistryClient(hosts_dir=None, credentials={}, transport=httpx.MockTransport(handler))
    ref = parse_reference("reg.io/app:1")
    with pytest.raises(DigestMismatch, match="expected sha256:0000"):
        client.fetch_manifest(ref)
    with client.open_blob(ref, "sha256:" + "2" * 64, start=4, end=6) as blob:
        assert b"".join(blob.iter_bytes()) == b"456"


# -- retryable vs permanent, as types ----------------------------------------------------------


def test_blob_failures_are_typed_by_whether_a_retry_may_help() -> None:
    """5xx/429 and broken or silent connections are Retryable (stall and drop told apart by
    type); a 404 or 403 is permanent; no httpx exception leaves the client."""
    answers: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def raise_(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            raise exc("boom", request=request)

        return handler

    answers["1"] = lambda r: httpx.Response(503)
    answers["2"] = lambda r: httpx.Response(429)
    answers["3"] = lambda r: httpx.Response(404)
    answers["4"] = lambda r: httpx.Response(403)
    answers["5"] = raise_(httpx.ReadTimeout)
    answers["6"] = raise_(httpx.ConnectError)
    answers["7"] = raise_(httpx.ConnectTimeout)

    def handler(request: httpx.Request) -> httpx.Response:
        return answers[request.url.path[-1]](request)

    client = RegistryClient(hosts_dir=None, credentials={}, transport=httpx.MockTransport(handler))
    ref = parse_reference("reg.io/app:1")

    def failure(n: str) -> RegistryError:
        with pytest.raises(RegistryError) as e, client.open_blob(ref, "sha256:" + n * 64):
            pass
        return e.value

    assert type(failure("1")) is RegistryUnavailable and failure("1").status == 503
    assert type(failure("2")) is RegistryUnavailable
    assert type(failure("3")) is RegistryError and not isinstance(failure("3"), Retryable)
    assert not isinstance(failure("4"), Retryable)
    stalled = failure("5")
    assert type(stalled) is RegistryStalled and isinstance(stalled, Retryable)
    assert stalled.detail == "ReadTimeout: boom" and stalled.url and "/blobs/" in stalled.url
    assert type(failure("6")) is RegistryConnectionLost
    assert type(failure("7")) is RegistryConnectionLost
    client.close()


def test_a_body_that_breaks_mid_stream_is_a_lost_connection() -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"0123"
            raise httpx.RemoteProtocolError("peer closed connection")

    client = RegistryClient(
        hosts_dir=None,
        credentials={},
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Broken())),
    )
    got = b""
    with (
        pytest.raises(RegistryConnectionLost, match="RemoteProtocolError: peer closed"),
        client.open_blob(parse_reference("reg.io/app:1"), "sha256:" + "1" * 64) as blob,
    ):
        for piece in blob.iter_bytes():
            got += piece
    assert got == b"0123", "every byte that arrived was handed on"
    client.close()
