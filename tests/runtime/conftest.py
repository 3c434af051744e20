"""Session fixtures: a real docker-registry and containerd on loopback (root only).

Fixtures: ``registry`` (:class:`testbed.Registry`: listening on a unix socket, reached on
127.0.0.1:<port> through a lean forwarder), ``containerd`` (:class:`testbed.Containerd`,
trusting the registry over plain HTTP), ``cri`` / ``ctrd`` (fresh clients per test),
``proxy`` (a :class:`testbed.ThrottleProxy` put in front of the registry as its mirror for
one test), ``small_image`` (a pushed 2-layer ~3 MB image), ``unique_repo`` (a repo name
no other test uses), ``busybox`` / ``sandbox_image`` (a runnable busybox image pushed as
the sandbox image) and ``pods`` (:class:`testbed.Pods`: run a pod from an image, removed
after the test). Issue 9 adds ``tls_registry``, ``mtls_registry``, ``basic_registry``,
``token_registry`` (testbed_tls, testbed_auth) and ``small_disk`` (testbed_disk). Without
root or the binaries every test that needs them is skipped with the reason (shown by ``-ra``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testbed  # tests/runtime is on sys.path (rootdir-relative, no __init__.py)
import testbed_auth
import testbed_disk
import testbed_tls
from prereq import unavailable

from mlnode.runtime.containerd import ContainerdClient
from mlnode.runtime.cri import CriClient


@pytest.fixture(scope="session")
def runtime_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="session")
def registry(runtime_workdir: Path) -> Iterator[testbed.Registry]:
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    reg = testbed.Registry(runtime_workdir / "registry")
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def containerd(registry: testbed.Registry, runtime_workdir: Path) -> Iterator[testbed.Containerd]:
    with testbed.running_containerd(
        runtime_workdir / "containerd",
        trust=[registry.host],
        sandbox_image=f"{registry.host}/mlnode/pause:test",
    ) as ctr:
        yield ctr


@pytest.fixture
def cri(containerd: testbed.Containerd) -> Iterator[CriClient]:
    with CriClient(containerd.socket) as client:
        yield client


@pytest.fixture
def ctrd(containerd: testbed.Containerd) -> Iterator[ContainerdClient]:
    with ContainerdClient(containerd.socket, namespace="k8s.io") as client:
        yield client


@pytest.fixture
def proxy(
    registry: testbed.Registry, containerd: testbed.Containerd
) -> Iterator[testbed.ThrottleProxy]:
    """The registry behind a shaping proxy, set as containerd's mirror for this test only
    (the proxy connects to the registry's unix socket directly)."""
    p = registry.proxy()
    containerd.trust_registry(registry.host, mirror_url=p.url)
    try:
        yield p
    finally:
        containerd.trust_registry(registry.host)
        p.stop()


_counter = itertools.count()


@pytest.fixture
def unique_repo(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_repo("big")`` → ``mlnode/<test name>-big-<n>``: no two tests share images."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]

    def make(suffix: str = "img") -> str:
        return f"mlnode/{test.strip('-')}-{suffix}-{next(_counter)}"

    return make


@pytest.fixture(scope="session")
def small_image(registry: testbed.Registry) -> testbed.PushedImage:
    image = testbed.build_image([2 * 1024 * 1024, 1024 * 1024], seed=1)
    return testbed.PushedImage(registry.push(image, "mlnode/small", "1"), image)


@pytest.fixture(scope="session")
def busybox() -> bytes:
    """The ``busybox-static`` binary (skips without it: .ci/apt-packages.txt)."""
    binary = testbed.busybox_binary()
    if binary is None:
        unavailable(f"needs {testbed.BUSYBOX} (apt: busybox-static)")
    return binary


@pytest.fixture(scope="session")
def sandbox_image(registry: testbed.Registry, busybox: bytes) -> testbed.PushedImage:
    """A runnable busybox image pushed as ``mlnode/pause:test``: the ``sandbox_image`` of
    the ``containerd`` fixture, which containerd pulls (via certs.d) on RunPodSandbox."""
    image = testbed.build_busybox_image(busybox)
    return testbed.PushedImage(registry.push(image, "mlnode/pause", "test"), image)


@pytest.fixture
def pods(cri: CriClient, sandbox_image: testbed.PushedImage) -> Iterator[testbed.Pods]:
    """Run pods (sandbox + a ``sleep 3600`` container) on ``containerd``; removed after."""
    with testbed.Pods(cri) as p:
        yield p


# -- issue 9: TLS and credential registries, small disks (testbed_tls/_auth/_disk) ------------


@pytest.fixture(scope="session")
def tls_registry(runtime_workdir: Path) -> Iterator[testbed_tls.TlsRegistry]:
    """A registry serving https with a CA made for this session (``ca_path``, ``ca_pem``);
    ``tls_registry.trust(containerd)`` writes its hosts.toml with ``ca = …``."""
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    reg = testbed_tls.TlsRegistry(runtime_workdir / "tls-registry")
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def mtls_registry(runtime_workdir: Path) -> Iterator[testbed_tls.TlsRegistry]:
    """Like ``tls_registry``, and it demands a client certificate (``client_pair``) signed
    by its CA; ``mtls_registry.trust(containerd)`` writes ``ca`` and ``client``."""
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    reg = testbed_tls.TlsRegistry(runtime_workdir / "mtls-registry", require_client_cert=True)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def basic_registry(runtime_workdir: Path) -> Iterator[testbed_auth.BasicAuthRegistry]:
    """A registry demanding Basic credentials (``username``, ``password``, ``cri_auth()``);
    pushes are authenticated. Plain http: trust it with ``containerd.trust_registry``."""
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    if importlib.util.find_spec("bcrypt") is None:
        unavailable("a Basic-auth registry needs the bcrypt package (pip install -e '.[dev]')")
    reg = testbed_auth.BasicAuthRegistry(runtime_workdir / "basic-registry")
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def token_registry(runtime_workdir: Path) -> Iterator[testbed_auth.TokenRegistry]:
    """A registry demanding bearer tokens from ``token_registry.tokens`` (a
    :class:`testbed_auth.TokenServer` on another loopback port that records every request);
    credentials ``username``/``password``/``cri_auth()``; pushes are authenticated."""
    reason = testbed.missing_prerequisites()
    if reason:
        unavailable(reason)
    tokens = testbed_auth.TokenServer(runtime_workdir / "token-server")
    reg = testbed_auth.TokenRegistry(runtime_workdir / "token-registry", tokens)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()
        tokens.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(size_mib)`` → the mount path of a fresh loop-mounted ext4 filesystem;
    every one is unmounted and its loop device detached after the test, even on failure.
    Start a containerd rooted on it with ``testbed_disk.containerd_on`` (inside the test)."""
    reason = testbed.missing_prerequisites() or testbed_disk.missing_disk_prerequisites()
    if reason:
        unavailable(reason)
    counter = itertools.count()
    with contextlib.ExitStack() as stack:

        def make(size_mib: int) -> Path:
            workdir = tmp_path / f"small-disk-{next(counter)}"
            return stack.enter_context(testbed_disk.small_disk(workdir, size_mib))

        yield make
