"""ops.mirror_status: the mirror's status read over real HTTP from a server in the test,
checked field by field; discovery and wiring from hosts.toml trees in tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mirror_status_server import (
    DIGEST_A,
    DIGEST_B,
    StatusServer,
    blob,
    closed_port_url,
    status,
    status_server,
)

from mlnode.ops.mirror_status import (
    DEFAULT_MIRROR_URL,
    MirrorStatus,
    MirrorStatusError,
    MirrorStatusInvalid,
    MirrorUnreachable,
    discover_mirror,
    fetch_status,
    mirror_base_url,
    parse_status,
    wired_mirror,
)


@pytest.fixture
def server() -> Iterator[StatusServer]:
    with status_server() as s:
        yield s


def test_a_status_document_becomes_frozen_dataclasses(server: StatusServer) -> None:
    older = blob(DIGEST_A, started_monotonic=1.0, state="complete", eta_seconds=None)
    newer = blob(DIGEST_A, started_monotonic=9.0, upstream_bytes=7, image=None)
    server.serve(status(older, newer, blob(DIGEST_B, rate_bytes_per_second=3)))
    st = fetch_status(server.url)
    assert server.requests == ["/mlnode/v1/status"]
    assert st.url == server.url and st.pid == 4242 and st.listen == "127.0.0.1:6055"
    assert st.cache.max_bytes == 1 << 30 and st.upstreams == ("127.0.0.1:5000", "docker.io")
    assert len(st.blobs) == 3
    # the newest entry of a digest wins
    a = st.blob(DIGEST_A)
    assert a is not None and a.upstream_bytes == 7 and a.image is None
    b = st.blob(DIGEST_B)
    assert b is not None and b.rate_bytes_per_second == 3.0 and b.served_bytes == 4 << 20
    assert st.blob("sha256:" + "c" * 64) is None
    with pytest.raises(AttributeError):
        st.pid = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda d: d.update(schema="mlnode.mirror.status/v2"), "schema is"),
        (lambda d: d.pop("pid"), "pid is missing"),
        (lambda d: d.update(pid=True), "pid is not an integer"),
        (lambda d: d.update(upstreams="docker.io"), "upstreams is not a list"),
        (lambda d: d.update(upstreams=[1]), "upstreams is not a list of strings"),
        (lambda d: d["cache"].update(disk_bytes=-1), "cache.disk_bytes is not an integer"),
        (lambda d: d.update(cache=[]), "cache. is not an object"),
        (lambda d: d.update(blobs={}), "blobs is not a list"),
        (lambda d: d["blobs"].append(7), "blobs[1]. is not an object"),
        (lambda d: d["blobs"][0].update(state="sleeping"), "blobs[0].state is 'sleeping'"),
        (lambda d: d["blobs"][0].update(served_bytes="4"), "blobs[0].served_bytes is not"),
        (lambda d: d["blobs"][0].update(eta_seconds="soon"), "blobs[0].eta_seconds is not"),
        (lambda d: d["blobs"][0].update(image=3), "blobs[0].image is not a string or null"),
        (lambda d: d["blobs"][0].update(digest="md5:00"), "blobs[0].digest 'md5:00'"),
        (lambda d: d["blobs"][0].pop("upstream_bytes"), "blobs[0].upstream_bytes is missing"),
    ],
)
def test_a_document_off_the_schema_is_refused_naming_the_field(
    server: StatusServer, mutate: Any, names: str
) -> None:
    doc = status(blob())
    mutate(doc)
    server.serve(doc)
    with pytest.raises(MirrorStatusInvalid) as err:
        fetch_status(server.url)
    message = str(err.value)
    assert message.startswith(f"{server.url}/mlnode/v1/status: not a mlnode.mirror.status/v1")
    assert names in message
    assert err.value.exit_code == 4


@pytest.mark.parametrize("body", [b"", b"{", b"<html>oops</html>", b"\xff\xfe"])
def test_malformed_json_is_refused_naming_the_endpoint(server: StatusServer, body: bytes) -> None:
    server.body = body
    with pytest.raises(MirrorStatusInvalid, match=r"/mlnode/v1/status: not JSON"):
        fetch_status(server.url)


def test_a_non_object_document_is_refused(server: StatusServer) -> None:
    server.serve([status()])
    with pytest.raises(MirrorStatusInvalid, match="the document is not an object"):
        fetch_status(server.url)


def test_an_error_status_and_a_closed_port_are_unreachable(server: StatusServer) -> None:
    server.code = 503
    with pytest.raises(MirrorUnreachable, match="answered HTTP 503"):
        fetch_status(server.url)
    url = closed_port_url()
    with pytest.raises(MirrorUnreachable) as err:
        fetch_status(url)
    assert str(err.value).startswith(f"{url}/mlnode/v1/status: unreachable: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("http://127.0.0.1:6055", "http://127.0.0.1:6055"),
        ("127.0.0.1:6055", "http://127.0.0.1:6055"),
        ("http://[::1]:6055/", "http://[::1]:6055"),
    ],
)
def test_mirror_url_forms(text: str, url: str) -> None:
    assert mirror_base_url(text) == url


@pytest.mark.parametrize("text", ["ftp://x:1", "http://", "http://h:1/v2", "http://h:1?x=1"])
def test_mirror_url_refused(text: str) -> None:
    with pytest.raises(ValueError, match="mirror URL"):
        mirror_base_url(text)


def _hosts(root: Path, directory: str, text: str) -> None:
    (root / directory).mkdir(parents=True)
    (root / directory / "hosts.toml").write_text(text)


def _mirror_first(url: str, server: str = "https://registry.example") -> str:
    return f'server = "{server}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'


def test_discovery_takes_the_loopback_first_host_that_answers(
    server: StatusServer, tmp_path: Path
) -> None:
    _hosts(tmp_path, "a.example", 'server = "https://a.example"\n')  # no mirror
    _hosts(tmp_path, "b.example", "not [ toml")  # lint's business, passed over here
    _hosts(tmp_path, "c.example", _mirror_first(closed_port_url()))  # wired, mirror down
    _hosts(tmp_path, "d.example", _mirror_first(server.url))
    _hosts(tmp_path, "e.example", _mirror_first("http://10.1.2.3:6055"))  # not loopback
    found = discover_mirror(tmp_path)
    assert found is not None and found.url == server.url


def test_discovery_falls_back_to_the_default_address_then_none(tmp_path: Path) -> None:
    asked: list[str] = []

    def read_only_default(url: str) -> MirrorStatus:
        asked.append(url)
        if url == DEFAULT_MIRROR_URL:
            return parse_status(status(), url=url)
        raise MirrorUnreachable("refused", url=url)

    _hosts(tmp_path, "a.example", _mirror_first("http://127.0.0.1:1"))
    found = discover_mirror(tmp_path, read=read_only_default)
    assert found is not None and found.url == DEFAULT_MIRROR_URL
    assert asked == ["http://127.0.0.1:1", DEFAULT_MIRROR_URL]

    def nothing(url: str) -> MirrorStatus:
        raise MirrorUnreachable("refused", url=url)

    assert discover_mirror(None, read=nothing) is None
    assert discover_mirror(tmp_path / "absent", read=nothing) is None


def test_wired_means_the_registrys_first_host_is_a_mirror_that_answers(
    server: StatusServer, tmp_path: Path
) -> None:
    _hosts(tmp_path, "127.0.0.1:5000", _mirror_first(server.url, "http://127.0.0.1:5000"))
    st, why = wired_mirror("127.0.0.1:5000", tmp_path)
    assert st is not None and st.url == server.url and server.url in why

    quay_first = f'[host."https://quay.io"]\n\n[host."{server.url}"]\n'
    _hosts(tmp_path, "quay.io", quay_first)
    st, why = wired_mirror("quay.io", tmp_path)  # mirror second: containerd asks quay first
    assert st is None and "https://quay.io, not an http loopback mirror" in why

    _hosts(tmp_path, "ghcr.io", _mirror_first(closed_port_url()))
    st, why = wired_mirror("ghcr.io", tmp_path)
    assert st is None and "unreachable" in why

    st, why = wired_mirror("nvcr.io", tmp_path)  # no hosts.toml: the registry itself
    assert st is None and "https://nvcr.io" in why
    st, why = wired_mirror("nvcr.io", None)
    assert st is None and "config_path" in why


def test_errors_belong_to_the_tree() -> None:
    from mlnode.errors import RegistryError, Retryable

    assert issubclass(MirrorStatusError, RegistryError)
    assert issubclass(MirrorUnreachable, Retryable)
    assert not issubclass(MirrorStatusInvalid, Retryable)
