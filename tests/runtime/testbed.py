"""A real registry and containerd on loopback for tests, plus OCI image and proxy helpers.

Nothing here touches the machine's own runtime: every path (root, state, sockets, config,
certs.d, CNI) lives in a directory the caller owns, processes are stopped by pid, and the
registry is reached on 127.0.0.1 on a free port. See docs/runtime.md and runtime-testbed.md.

Byte accounting: the registry's access log counts a body byte as served once its handler
has written it into the kernel. On TCP loopback Linux autotunes that send buffer up to
``tcp_wmem`` max (4 MiB), so a cut connection or a killed client "loses" megabytes that
never reached anyone. The registry therefore listens on a unix socket (whose send buffer is
``net.core.wmem_default``, ~208 KiB, never autotuned) and 127.0.0.1:<port> is a forwarder to
it with small, bounded buffers; a :class:`ThrottleProxy` built by :meth:`Registry.proxy`
connects to the unix socket directly. At a cut only a few hundred KiB per connection are
between the registry's handler and the client, so the access log is an honest count of what
a client asked for.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlnode.runtime.cri import ContainerConfig, CriClient, PodSandboxConfig

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

REQUIRED_BINARIES = ("containerd", "runc", "docker-registry")

LEAN_SEND_BUFFER_BYTES = 64 * 1024
"""``SO_SNDBUF`` the forwarder and lean proxies set on their client-side sockets (the kernel
doubles it for bookkeeping; setting it turns off autotuning for that socket)."""

LEAN_CHUNK_BYTES = 16 * 1024
"""What lean proxies read from the registry at a time (in hand at a cut). The forwarder
reads 64 KiB: ~700 MB/s through it instead of ~550 (Python's per-call cost)."""

_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with its NUL


def missing_prerequisites() -> str | None:
    """Why the real-runtime tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "runtime tests need root (containerd with its own root dir, overlayfs)"
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if missing:
        return f"runtime tests need {', '.join(missing)} (apt: see .ci/apt-packages.txt)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stop_process(proc: subprocess.Popen[bytes], *, term_timeout_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the timeout; only ever this process id."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=term_timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_until_healthy(
    argv: Sequence[str],
    *,
    log: Path,
    health_url: str,
    what: str,
    logs: Callable[[], str],
    timeout_seconds: float,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log``, and wait until
    ``health_url`` answers 200; it exiting first, or the timeout, raise with its logs."""
    import httpx

    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {logs()}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up: {logs()}")


def _wait_until(predicate: Callable[[], bool], *, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready within {timeout_seconds}s")


# ---------------------------------------------------------------------------------------------
# OCI images built in Python


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class OciImage:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes = field(repr=False)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def image_id(self) -> str:
        """What containerd's CRI reports as the image id: the config digest."""
        return self.config.digest

    @property
    def compressed_size(self) -> int:
        """Manifest + config + layers: what containerd's CRI reports as ``size``."""
        return len(self.manifest) + self.config.size + sum(b.size for b in self.layers)


def _layer(size: int, rnd: random.Random, index: int) -> tuple[bytes, bytes]:
    """A gzip'd tar holding one file of ``size`` random bytes; returns (blob, diff_id data)."""
    payload = rnd.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/layer{index}.bin")
        info.size = size
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=1, mtime=0), raw


def build_image(
    layer_sizes: Sequence[int], *, seed: int = 0, extra_file: bytes | None = None
) -> OciImage:
    """An OCI image with one random file per layer; same sizes + seed → same digests.

    ``extra_file`` adds a last small layer with an executable ``/bin/sh`` of those bytes
    (e.g. a busybox-static binary for a sandbox image).
    """
    rnd = random.Random(seed)
    blobs: list[Blob] = []
    diff_ids: list[str] = []
    for i, size in enumerate(layer_sizes):
        blob, raw = _layer(size, rnd, i)
        blobs.append(Blob(OCI_LAYER_GZIP, blob))
        diff_ids.append(sha256_digest(raw))
    if extra_file is not None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("bin/sh", "pause"):
                info = tarfile.TarInfo(name)
                info.size = len(extra_file)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(extra_file))
        raw = buf.getvalue()
        blobs.append(Blob(OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=1, mtime=0)))
        diff_ids.append(sha256_digest(raw))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "sleep 3600"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "comment": f"mlnode test seed {seed}"}],
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in blobs],
    }
    return OciImage(config_blob, tuple(blobs), json.dumps(manifest, sort_keys=True).encode())


BUSYBOX = Path("/bin/busybox")
"""Debian's ``busybox-static``: one static binary, so an image of it runs anywhere."""


def busybox_binary() -> bytes | None:
    """The static busybox binary, or None if ``busybox-static`` is not installed."""
    try:
        return BUSYBOX.read_bytes()
    except OSError:
        return None


def build_busybox_image(
    busybox: bytes,
    data_layer_sizes: Sequence[int] = (),
    *,
    seed: int = 0,
    config_padding_bytes: int = 0,
) -> OciImage:
    """A runnable image: a first layer with ``/bin/busybox`` (and ``/bin/sh``,
    ``/bin/sleep`` linked to it, ``PATH=/bin``), then one random file per data layer.

    Its default process sleeps "forever" (``sleep 2147483647``), so it also serves as a
    pod sandbox (pause) image. Every image built from the same binary shares the first
    layer. ``config_padding_bytes`` makes the config blob that much bigger (a label), so
    a throttled download of it lasts a while.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        bin_dir = tarfile.TarInfo("bin")
        bin_dir.type, bin_dir.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(bin_dir)
        binary = tarfile.TarInfo("bin/busybox")
        binary.size, binary.mode = len(busybox), 0o755
        tar.addfile(binary, io.BytesIO(busybox))
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
    raw = buf.getvalue()
    blobs = [Blob(OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=1, mtime=0))]
    diff_ids = [sha256_digest(raw)]
    rnd = random.Random(seed)
    for i, size in enumerate(data_layer_sizes):
        blob, layer_raw = _layer(size, rnd, i)
        blobs.append(Blob(OCI_LAYER_GZIP, blob))
        diff_ids.append(sha256_digest(layer_raw))
    labels = {"mlnode.test/padding": "x" * config_padding_bytes} if config_padding_bytes else {}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/sleep"],
            "Cmd": ["2147483647"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "comment": f"mlnode busybox seed {seed}"}],
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in blobs],
    }
    return OciImage(config_blob, tuple(blobs), json.dumps(manifest, sort_keys=True).encode())


@dataclass(frozen=True)
class PushedImage:
    """An image and the reference it was pushed under."""

    ref: str
    image: OciImage


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class AccessRecord:
    method: str
    path: str
    status: int
    bytes: int


_ACCESS_RE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')


def parse_access_log(path: Path) -> list[AccessRecord]:
    """The registry's access log (combined format) as records, oldest first."""
    out: list[AccessRecord] = []
    for line in path.read_text(errors="replace").splitlines():
        m = _ACCESS_RE.match(line)
        if m:
            size = 0 if m.group(4) == "-" else int(m.group(4))
            out.append(AccessRecord(m.group(1), m.group(2), int(m.group(3)), size))
    return out


class Registry:
    """The Debian ``docker-registry`` (distribution 2.8) serving from a temp dir.

    It listens on the unix socket :attr:`socket_path`; ``127.0.0.1:<port>`` (:attr:`host`,
    :attr:`url`, :attr:`http`) is an always-on lean forwarder to it, so containerd, pushes
    and HTTP clients see an ordinary loopback registry. :meth:`proxy` gives a shaping
    :class:`ThrottleProxy` that connects to the unix socket directly. With
    ``unix_socket=False`` the registry listens on TCP itself, as before (its access log then
    also counts what the kernel's autotuned send buffer held when a connection broke).
    """

    def __init__(self, workdir: Path, *, unix_socket: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.access_log = workdir / "access.log"
        self.app_log = workdir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.forwarder: ThrottleProxy | None = None
        self._socket_dir: Path | None = None
        self.socket_path: Path | None = None
        if unix_socket:
            self.socket_path = workdir / "registry.sock"
            if len(os.fsencode(self.socket_path)) > _SUN_PATH_MAX:
                self._socket_dir = Path(tempfile.mkdtemp(prefix="mlnode-registry-"))
                self.socket_path = self._socket_dir / "registry.sock"
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def start(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        if self.socket_path is not None:
            listen = f"http:\n  net: unix\n  addr: {self.socket_path}\n"
        else:
            listen = f"http:\n  addr: {self.host}\n"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.workdir / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"{listen}{self.http_config_yaml()}{self.extra_config_yaml()}"
        )
        with self.access_log.open("ab") as out, self.app_log.open("ab") as err:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self.socket_path is not None:
            self.forwarder = ThrottleProxy(
                upstream_unix=self.socket_path,
                listen_port=self.port,
                client_send_buffer_bytes=LEAN_SEND_BUFFER_BYTES,
                name="registry-forwarder",
            )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}")
            try:
                # 401: up, and demanding credentials (testbed_auth's registries)
                return self.http.get("/v2/").status_code in (200, 401)
            except httpx.HTTPError:
                return False

        _wait_until(up, timeout_seconds=15, what="docker-registry")

    def http_config_yaml(self) -> str:
        """More keys of the config's ``http:`` mapping (indented two spaces), e.g. ``tls``;
        subclasses (testbed_tls, testbed_auth) override it."""
        return ""

    def extra_config_yaml(self) -> str:
        """More top-level config sections, e.g. ``auth``; subclasses override it."""
        return ""

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None:
            stop_process(self.proc)
        if self.forwarder is not None:
            self.forwarder.stop()
            self.forwarder = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def proxy(
        self, *, lean: bool = False, rate_bytes_per_second: float | None = None
    ) -> ThrottleProxy:
        """A :class:`ThrottleProxy` in front of this registry: on its unix socket if it has
        one, else on its TCP port. ``lean``: small reads from the registry and a small send
        buffer towards the client (a 64 KiB receive buffer towards a TCP registry), so a
        cut, stall or killed client leaves as few served-but-undelivered bytes as possible."""
        send_buffer = LEAN_SEND_BUFFER_BYTES if lean else None
        chunk = LEAN_CHUNK_BYTES if lean else 65536
        if self.socket_path is not None:
            return ThrottleProxy(
                upstream_unix=self.socket_path,
                rate_bytes_per_second=rate_bytes_per_second,
                client_send_buffer_bytes=send_buffer,
                chunk_bytes=chunk,
            )
        return ThrottleProxy(
            "127.0.0.1",
            self.port,
            rate_bytes_per_second=rate_bytes_per_second,
            upstream_buffer_bytes=64 * 1024 if lean else None,
            client_send_buffer_bytes=send_buffer,
            chunk_bytes=chunk,
        )

    def access_records(self) -> list[AccessRecord]:
        return parse_access_log(self.access_log)

    def mark(self) -> int:
        """Position in the access log; pass to :meth:`records_since` to see one step's requests."""
        return len(self.access_records())

    def records_since(self, mark: int) -> list[AccessRecord]:
        return self.access_records()[mark:]

    def push_blob(self, repo: str, blob: Blob, *, chunk_bytes: int | None = None) -> None:
        if self.http.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200:
            return
        r = self.http.post(f"/v2/{repo}/blobs/uploads/")
        r.raise_for_status()
        location = r.headers["Location"]
        if chunk_bytes:
            for start in range(0, blob.size, chunk_bytes):
                chunk = blob.data[start : start + chunk_bytes]
                r = self.http.patch(
                    location,
                    content=chunk,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(chunk) - 1}",
                    },
                )
                r.raise_for_status()
                location = r.headers["Location"]
            body = b""
        else:
            body = blob.data
        sep = "&" if "?" in location else "?"
        r = self.http.put(
            f"{location}{sep}digest={blob.digest}",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        r.raise_for_status()

    def push(self, image: OciImage, repo: str, tag: str, *, chunk_bytes: int | None = None) -> str:
        """Push ``image`` as ``repo:tag``; returns the reference ``host/repo:tag``."""
        for blob in (*image.layers, image.config):
            self.push_blob(repo, blob, chunk_bytes=chunk_bytes)
        r = self.http.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        r.raise_for_status()
        return f"{self.host}/{repo}:{tag}"


# ---------------------------------------------------------------------------------------------
# containerd


class Containerd:
    """A Debian containerd 1.6 with its own root, state, socket and config (version 2)."""

    def __init__(self, workdir: Path, *, sandbox_image: str = "registry.invalid/pause:3.9") -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.state = workdir / "state"
        self.socket = workdir / "containerd.sock"
        self.certs_d = workdir / "certs.d"
        self.config = workdir / "config.toml"
        self.log = workdir / "containerd.log"
        self.sandbox_image = sandbox_image
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def write_config(self) -> None:
        for d in (
            self.root,
            self.state,
            self.certs_d,
            self.workdir / "opt",
            self.workdir / "cni-conf",
            self.workdir / "cni-bin",
        ):
            d.mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        self.config.write_text(f"""\
version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.workdir / "opt"}"

[{cri}]
  sandbox_image = "{self.sandbox_image}"
  disable_apparmor = true
  disable_cgroup = true
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true

[{cri}.containerd]
  snapshotter = "overlayfs"

[{cri}.registry]
  config_path = "{self.certs_d}"

[{cri}.cni]
  conf_dir = "{self.workdir / "cni-conf"}"
  bin_dir = "{self.workdir / "cni-bin"}"
""")

    def trust_registry(self, host: str, *, mirror_url: str | None = None) -> None:
        """Write ``certs.d/<host>/hosts.toml`` for plain-HTTP ``host``; with ``mirror_url``
        pulls go through that mirror (e.g. a :class:`ThrottleProxy`). containerd re-reads
        this file on every pull, so tests may switch it at any time."""
        d = self.certs_d / host
        d.mkdir(parents=True, exist_ok=True)
        via = mirror_url or f"http://{host}"
        (d / "hosts.toml").write_text(
            f'server = "http://{host}"\n\n'
            f'[host."{via}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            "  skip_verify = true\n"
        )

    def start(self, *, timeout_seconds: float = 30.0) -> None:
        if not self.config.exists():
            self.write_config()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_ready(timeout_seconds=timeout_seconds)

    def wait_ready(self, *, timeout_seconds: float = 30.0) -> None:
        from mlnode.errors import MlnodeError
        from mlnode.runtime.cri import CriClient

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}; see {self.log}")
            if not self.socket.exists():
                return False
            try:
                with CriClient(self.socket, connect_timeout_seconds=1) as cri:
                    cri.version()
                    cri.list_images()
                return True
            except MlnodeError:
                return False

        _wait_until(ready, timeout_seconds=timeout_seconds, what="containerd")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if sig is signal.SIGKILL:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        else:
            stop_process(self.proc)
        self.proc = None

    def restart(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop with ``sig`` (SIGKILL: like a crash) and start again on the same root."""
        self.stop(sig)
        self.start()


@contextlib.contextmanager
def running_containerd(
    workdir: Path,
    *,
    trust: Sequence[str] = (),
    sandbox_image: str = "registry.invalid/pause:3.9",
    root: Path | None = None,
) -> Iterator[Containerd]:
    """A started :class:`Containerd` (its config written, ``trust`` registries trusted, its
    root directory elsewhere when ``root`` is given), stopped by pid at exit."""
    ctr = Containerd(workdir, sandbox_image=sandbox_image)
    if root is not None:
        ctr.root = root
    ctr.write_config()
    for host in trust:
        ctr.trust_registry(host)
    try:
        ctr.start()
        yield ctr
    finally:
        ctr.stop()


# ---------------------------------------------------------------------------------------------
# A loopback TCP proxy with throttle, stall and cut


class ThrottleProxy:
    """Forwards 127.0.0.1:<port> to an upstream; shapes the upstream → client direction.

    The upstream is ``upstream_host``:``upstream_port`` (TCP) or ``upstream_unix`` (a unix
    stream socket, e.g. :attr:`Registry.socket_path`).

    - ``rate_bytes_per_second``: None (unlimited) or a byte rate, changeable at any time;
    - :meth:`stall`: hold every byte for N seconds (or until :meth:`resume`);
    - :meth:`cut`: close every live connection at once (mid-body for a download).

    Upstream bytes are read only as fast as they can be handed on: one read of at most
    ``chunk_bytes`` is in hand per connection, and the next read waits until it is in the
    client socket. ``client_send_buffer_bytes`` sets ``SO_SNDBUF`` on the client-side
    sockets (which also stops Linux autotuning it up to ``tcp_wmem`` max), so a slow
    client makes the proxy, and so the upstream, wait instead of filling megabytes of
    kernel buffer. ``upstream_buffer_bytes`` caps the kernel receive buffer towards a TCP
    upstream (a unix socket has none: its sender's send buffer is the only queue). Without
    these, an upstream can park megabytes in socket buffers ahead of a throttled client
    (bytes it counts as served, which a cut or stall then loses); None leaves Linux's
    autotuning. ``listen_port`` 0 picks a free port.
    """

    def __init__(
        self,
        upstream_host: str | None = None,
        upstream_port: int | None = None,
        *,
        upstream_unix: str | os.PathLike[str] | None = None,
        rate_bytes_per_second: float | None = None,
        upstream_buffer_bytes: int | None = None,
        client_send_buffer_bytes: int | None = None,
        chunk_bytes: int = 65536,
        listen_port: int = 0,
        name: str = "throttle-proxy",
    ) -> None:
        self.upstream: tuple[str, int] | str
        if upstream_unix is not None and upstream_host is None and upstream_port is None:
            self.upstream = os.fspath(upstream_unix)
        elif upstream_unix is None and upstream_host is not None and upstream_port is not None:
            self.upstream = (upstream_host, upstream_port)
        else:
            raise ValueError("give either upstream_host and upstream_port, or upstream_unix")
        self.rate_bytes_per_second = rate_bytes_per_second
        self.upstream_buffer_bytes = upstream_buffer_bytes
        self.client_send_buffer_bytes = client_send_buffer_bytes
        self.chunk_bytes = chunk_bytes
        self.bytes_to_client = 0
        self.connections_total = 0
        self._stall_until = 0.0
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._name = name
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=name)
        self._thread.start()

    # controls

    def stall(self, seconds: float = 3600.0) -> None:
        self._stall_until = time.monotonic() + seconds

    def resume(self) -> None:
        self._stall_until = 0.0

    def cut(self) -> int:
        """Close all live connections; returns how many sockets were closed."""
        with self._lock:
            socks = list(self._live)
            self._live.clear()
        for s in socks:
            _close_quietly(s)
        return len(socks)

    def stop(self) -> None:
        self._stopping.set()
        _close_quietly(self._listener)
        self.cut()
        self._thread.join(timeout=5)

    def live_connections(self) -> int:
        with self._lock:
            return len(self._live) // 2

    # internals

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if isinstance(self.upstream, str):
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                if self.client_send_buffer_bytes:
                    client.setsockopt(
                        socket.SOL_SOCKET, socket.SO_SNDBUF, self.client_send_buffer_bytes
                    )
                if self.upstream_buffer_bytes and upstream.family == socket.AF_INET:
                    upstream.setsockopt(
                        socket.SOL_SOCKET, socket.SO_RCVBUF, self.upstream_buffer_bytes
                    )
                upstream.settimeout(10)
                upstream.connect(self.upstream)
                upstream.settimeout(None)
            except OSError:
                upstream.close()
                client.close()
                continue
            with self._lock:
                self._live.update((client, upstream))
                self.connections_total += 1
            for src, dst, shaped in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(src, dst, shaped), daemon=True, name=self._name
                ).start()

    def _alive(self, s: socket.socket) -> bool:
        with self._lock:
            return s in self._live

    def _pump(self, src: socket.socket, dst: socket.socket, shaped: bool) -> None:
        try:
            while True:
                rate = self.rate_bytes_per_second if shaped else None
                chunk = self.chunk_bytes if shaped else 65536
                want = chunk if not rate else max(1024, min(chunk, int(rate / 20)))
                data = src.recv(want)
                if not data:
                    break
                if shaped:
                    while time.monotonic() < self._stall_until and self._alive(dst):
                        time.sleep(0.02)
                    if not self._alive(dst):
                        break
                dst.sendall(data)
                if shaped:
                    with self._lock:
                        self.bytes_to_client += len(data)
                    if rate:
                        time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            with self._lock:
                gone = [s for s in (src, dst) if s in self._live]
                self._live.difference_update(gone)
            for s in (src, dst):
                _close_quietly(s)


def _close_quietly(s: socket.socket) -> None:
    """Shut down (which wakes a thread blocked in recv on it), then close."""
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


# ---------------------------------------------------------------------------------------------
# Pods: a sandbox and a container, through CRI as the kubelet does it


@dataclass(frozen=True)
class Pod:
    sandbox_id: str
    container_id: str
    sandbox: PodSandboxConfig
    image: str


class Pods:
    """Runs host-network pods (no CNI needed) of one ``sleep 3600`` container each, and
    removes every sandbox it made on :meth:`close`. The runtime needs the three container
    settings of :meth:`Containerd.write_config` and a runnable sandbox image (e.g.
    :func:`build_busybox_image` pushed under the configured ``sandbox_image``)."""

    def __init__(self, cri: CriClient) -> None:
        self.cri = cri
        self._sandboxes: list[str] = []
        self._names = itertools.count()

    def run(
        self,
        image: str,
        *,
        start: bool = True,
        command: Sequence[str] = ("sleep", "3600"),
    ) -> Pod:
        """A sandbox and one container from ``image`` (an id, tag or digest reference),
        started unless ``start`` is False (then it stays CREATED)."""
        n = next(self._names)
        sandbox = PodSandboxConfig(
            name=f"mlnode-test-{n}",
            namespace="mlnode-test",
            uid=f"mlnode-test-{os.getpid()}-{n}-{time.monotonic_ns()}",
            host_network=True,
        )
        sandbox_id = self.cri.run_pod_sandbox(sandbox)
        self._sandboxes.append(sandbox_id)
        container_id = self.cri.create_container(
            sandbox_id, ContainerConfig(name="main", image=image, command=tuple(command)), sandbox
        )
        if start:
            self.cri.start_container(container_id)
        return Pod(sandbox_id, container_id, sandbox, image)

    def close(self) -> None:
        """Stop and remove every sandbox this made (which removes its containers)."""
        while self._sandboxes:
            sandbox_id = self._sandboxes.pop()
            self.cri.stop_pod_sandbox(sandbox_id)
            self.cri.remove_pod_sandbox(sandbox_id)

    def __enter__(self) -> Pods:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
