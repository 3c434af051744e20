"""The mirror in front of registries that want TLS or credentials, with containerd 1.6.20
pulling by CRI PullImage with an AuthConfig shaped as the kubelet sends it (no
server_address): the upstream's 401 challenge reaches containerd, containerd's
Authorization reaches the upstream, and a cached private blob is never handed to a caller
the upstream refuses."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import testbed
import testbed_auth
import testbed_tls
from testbed_auth import parse_challenge
from testbed_mirror import MirrorProcess

from mlnode.errors import MlnodeError
from mlnode.runtime.cri import CriClient

pytestmark = pytest.mark.runtime

MiB = 1024 * 1024


def _remove(cri: CriClient, ref: str) -> None:
    with contextlib.suppress(Exception):
        cri.remove_image(ref)


@contextlib.contextmanager
def _mirror(tmp_path: Path, *args: str, config: str | None = None) -> Iterator[MirrorProcess]:
    extra: tuple[str, ...] = ("--access-log",)
    if config is not None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        path = tmp_path / "mirror.yaml"
        path.write_text(config)
        extra = (*extra, "--config", str(path))
    m = MirrorProcess(tmp_path / "cache", list(args), extra=extra).start()
    try:
        yield m
    finally:
        m.stop()


def _blob_url(m: MirrorProcess, host: str, repo: str, digest: str) -> str:
    return f"{m.url}/v2/{repo}/blobs/{digest}?ns={host}"


def test_tls_upstream_with_its_own_ca(
    tmp_path: Path,
    cri: CriClient,
    containerd: testbed.Containerd,
    tls_registry: testbed_tls.TlsRegistry,
) -> None:
    image = testbed.build_image([2 * MiB], seed=120)
    ref = tls_registry.push(image, "mirror/tls", "v1")
    config = (
        "upstreams:\n"
        f"  - registry: {tls_registry.host}\n"
        f"    endpoint: {tls_registry.url}\n"
        f"    ca_file: {tls_registry.ca_path}\n"
    )
    with _mirror(tmp_path, config=config) as m:
        tls_registry.trust(containerd, mirror_url=m.url)
        try:
            cri.pull_image(ref)
            b = m.blob(image.layers[0].digest)
            assert b is not None and b["state"] == "complete", m.status()
        finally:
            tls_registry.trust(containerd)
            _remove(cri, ref)


def test_tls_upstream_without_the_ca_is_a_502_not_a_fetch(
    tmp_path: Path, tls_registry: testbed_tls.TlsRegistry
) -> None:
    image = testbed.build_image([1 * MiB], seed=121)
    tls_registry.push(image, "mirror/tls-noca", "v1")
    with _mirror(tmp_path, f"{tls_registry.host}={tls_registry.url}") as m:
        r = httpx.get(_blob_url(m, tls_registry.host, "mirror/tls-noca", image.layers[0].digest))
        assert r.status_code == 502
        assert "CERTIFICATE_VERIFY_FAILED" in r.text or "certificate" in r.text.lower()


def test_mtls_upstream_with_a_client_certificate(
    tmp_path: Path, mtls_registry: testbed_tls.TlsRegistry
) -> None:
    image = testbed.build_image([1 * MiB], seed=122)
    mtls_registry.push(image, "mirror/mtls", "v1")
    assert mtls_registry.client_pair is not None
    cert, key = mtls_registry.client_pair
    base = (
        "upstreams:\n"
        f"  - registry: {mtls_registry.host}\n"
        f"    endpoint: {mtls_registry.url}\n"
        f"    ca_file: {mtls_registry.ca_path}\n"
    )
    layer = image.layers[0]
    with _mirror(tmp_path / "without", config=base) as m:
        r = httpx.get(_blob_url(m, mtls_registry.host, "mirror/mtls", layer.digest))
        assert r.status_code == 502
    with _mirror(
        tmp_path / "with", config=base + f"    client_cert: {cert}\n    client_key: {key}\n"
    ) as m:
        r = httpx.get(_blob_url(m, mtls_registry.host, "mirror/mtls", layer.digest))
        assert r.status_code == 200 and r.content == layer.data


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_private_upstream_through_the_mirror(
    kind: str,
    tmp_path: Path,
    cri: CriClient,
    containerd: testbed.Containerd,
    basic_registry: testbed_auth.BasicAuthRegistry,
    token_registry: testbed_auth.TokenRegistry,
) -> None:
    """containerd 1.6.20 asks the mirror anonymously, gets the upstream's 401 and
    challenge, answers it with the kubelet's credentials (Basic: to the mirror; token: from
    the realm, then Bearer to the mirror) and the mirror forwards them upstream. After
    that, the cached blob goes to nobody the upstream refuses."""
    reg: testbed_auth.BasicAuthRegistry | testbed_auth.TokenRegistry = (
        basic_registry if kind == "basic" else token_registry
    )
    image = testbed.build_image([3 * MiB], seed=130 if kind == "basic" else 131)
    repo = f"private/{kind}"
    ref = reg.push(image, repo, "v1")
    layer = image.layers[0]
    with _mirror(tmp_path, f"{reg.host}={reg.url}") as m:
        containerd.trust_registry(reg.host, mirror_url=m.url)
        try:
            with pytest.raises(MlnodeError):
                cri.pull_image(ref)  # no credentials: refused, through the mirror
            token_mark = token_registry.tokens.mark()
            before = len(_access(m))
            cri.pull_image(ref, auth=reg.cri_auth())
            seen = _access(m)[before:]
            print(f"containerd 1.6.20 -> mirror ({kind}):", *seen, sep="\n  ")
            scheme = "basic" if kind == "basic" else "bearer"
            manifests = [x for x in seen if "/manifests/" in x]
            assert "auth=none" in manifests[0] and manifests[0].endswith("-> 401"), seen
            assert any(f"auth={scheme}" in x and x.endswith("-> 200") for x in manifests), seen
            blobs = [x for x in seen if "/blobs/" in x]
            assert blobs and all(f"auth={scheme}" in x for x in blobs), seen
            b = m.blob(layer.digest)
            assert b is not None and b["state"] == "complete", m.status()
            if kind == "token":
                asked = token_registry.tokens.requests_since(token_mark)
                assert asked and all("containerd" in r.user_agent for r in asked)

            # the blob is cached now; who gets it?
            url = _blob_url(m, reg.host, repo, layer.digest)
            anonymous = httpx.get(url)
            assert anonymous.status_code == 401
            assert anonymous.content != layer.data
            realm, params = parse_challenge(anonymous.headers["WWW-Authenticate"])
            assert realm.lower() == ("basic" if kind == "basic" else "bearer")
            if kind == "basic":
                wrong = httpx.get(url, auth=(reg.username, "not-the-password"))
                assert wrong.status_code == 401
                right = httpx.get(url, auth=(reg.username, reg.password))
            else:
                wrong_token = httpx.get(
                    params["realm"],
                    params={"service": params["service"], "scope": f"repository:{repo}:pull"},
                ).json()["token"]  # an anonymous token: no access to a private repository
                wrong = httpx.get(url, headers={"Authorization": f"Bearer {wrong_token}"})
                assert wrong.status_code == 401
                good = httpx.get(
                    params["realm"],
                    params={"service": params["service"], "scope": f"repository:{repo}:pull"},
                    auth=(reg.username, reg.password),
                ).json()["token"]
                right = httpx.get(url, headers={"Authorization": f"Bearer {good}"})
            assert wrong.content != layer.data
            assert right.status_code == 200 and right.content == layer.data
        finally:
            containerd.trust_registry(reg.host)
            _remove(cri, ref)


def _access(m: MirrorProcess) -> list[str]:
    """The mirror's access log lines (``--access-log``): method path ns auth range status."""
    out = []
    for line in m.log.read_text(errors="replace").splitlines():
        if '"mlnode.mirror.access"' in line:
            out.append(json.loads(line)["msg"])
    return out
