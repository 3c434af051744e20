"""A test CA, certificates made with ``cryptography``, and a docker-registry serving TLS.

The CA and every certificate are made per test session in a temp dir; nothing is added to
the machine's trust store. containerd trusts the registry only through the ``ca`` key of
the registry's own ``hosts.toml`` (:meth:`TlsRegistry.trust`). The registry still listens
on a unix socket behind the testbed's lean forwarder (TLS passes through it untouched), so
its access log counts bytes as honestly as :class:`testbed.Registry`'s.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import testbed
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_VALID = datetime.timedelta(days=2)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlnode tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA (EC P-256) that issues leaf certificates."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    @staticmethod
    def create(common_name: str = "mlnode test CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return CertificateAuthority(cert, key)

    def issue(
        self,
        common_name: str,
        *,
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
        key: PrivateKey | None = None,
    ) -> tuple[x509.Certificate, PrivateKey]:
        """A leaf certificate for ``key`` (a new EC P-256 key if None) signed by this CA;
        ``server``/``client`` add the serverAuth/clientAuth usage, ``ip_addresses`` the IP
        SANs Go verifies."""
        leaf_key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if ip_addresses:
            sans = [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return builder.sign(self.key, hashes.SHA256()), leaf_key


@dataclass(frozen=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def write_server_files(
    directory: Path, ca: CertificateAuthority, *, ip: str = "127.0.0.1"
) -> TlsFiles:
    """``ca.pem``, ``server.pem`` (for ``ip``) and ``server-key.pem`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = ca.issue(f"registry {ip}", ip_addresses=(ip,), server=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_path.write_bytes(ca.pem)
    files.cert_path.write_bytes(cert_pem(cert))
    files.key_path.write_bytes(key_pem(key))
    files.key_path.chmod(0o600)
    return files


def write_client_files(directory: Path, ca: CertificateAuthority) -> tuple[Path, Path]:
    """A client certificate (clientAuth) signed by ``ca``: (``client.pem``, ``client-key.pem``)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = ca.issue("mlnode test client", client=True)
    pair = (directory / "client.pem", directory / "client-key.pem")
    pair[0].write_bytes(cert_pem(cert))
    pair[1].write_bytes(key_pem(key))
    pair[1].chmod(0o600)
    return pair


def write_hosts_toml(
    certs_d: Path,
    host: str,
    *,
    server_url: str,
    ca_path: Path | None = None,
    client_pair: tuple[Path, Path] | None = None,
    mirror_url: str | None = None,
) -> Path:
    """``certs_d/<host>/hosts.toml`` with ``server`` and one ``[host]`` tried first: the
    server itself, or ``mirror_url`` (plain, no CA) with the server as fallback. The
    server's ``ca`` and ``client`` key pair are written when given (at the top level when
    the server is only the fallback); ``skip_verify`` never is."""
    d = certs_d / host
    d.mkdir(parents=True, exist_ok=True)
    tls: list[str] = []
    if ca_path is not None:
        tls.append(f'ca = "{ca_path}"')
    if client_pair is not None:
        tls.append(f'client = [["{client_pair[0]}", "{client_pair[1]}"]]')
    lines = [f'server = "{server_url}"']
    if mirror_url is not None:
        lines += tls  # top level: the fallback server's TLS
    lines += ["", f'[host."{mirror_url or server_url}"]', '  capabilities = ["pull", "resolve"]']
    if mirror_url is None:
        lines += [f"  {line}" for line in tls]
    path = d / "hosts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class TlsRegistry(testbed.Registry):
    """:class:`testbed.Registry` with ``http.tls``: a server certificate for 127.0.0.1
    signed by :attr:`ca` (made here unless given). :attr:`url` is ``https://…``;
    :attr:`http` (pushes, probes) trusts only that CA. ``require_client_cert``: the
    registry also demands a client certificate signed by :attr:`ca` (``http.tls.clientcas``);
    :attr:`client_pair` is one (cert, key) it accepts, which :attr:`http` presents."""

    def __init__(
        self,
        workdir: Path,
        *,
        ca: CertificateAuthority | None = None,
        require_client_cert: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.ca = ca if ca is not None else CertificateAuthority.create()
        self.tls = write_server_files(workdir / "tls", self.ca)
        self.ca_path = self.tls.ca_path
        self.client_pair = (
            write_client_files(workdir / "tls", self.ca) if require_client_cert else None
        )
        self.url = f"https://{self.host}"
        self.http.close()
        self.http = httpx.Client(base_url=self.url, timeout=60, verify=self.ssl_context())

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pem

    def ssl_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext:
        """A client context that trusts only this registry's CA (and presents
        :attr:`client_pair` when there is one and ``with_client_cert``)."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if self.client_pair is not None and with_client_cert:
            context.load_cert_chain(str(self.client_pair[0]), str(self.client_pair[1]))
        return context

    def http_config_yaml(self) -> str:
        text = f"  tls:\n    certificate: {self.tls.cert_path}\n    key: {self.tls.key_path}\n"
        if self.client_pair is not None:
            text += f"    clientcas:\n      - {self.ca_path}\n"
        return text

    def trust(
        self,
        containerd: testbed.Containerd,
        *,
        with_ca: bool = True,
        with_client_cert: bool = True,
        mirror_url: str | None = None,
    ) -> Path:
        """Point containerd at this registry over https, trusting :attr:`ca_path` through
        hosts.toml ``ca`` and presenting :attr:`client_pair` as ``client`` when the
        registry wants one (``with_ca``/``with_client_cert`` False leave them out, so the
        handshake must fail); ``mirror_url``: that host first, ``server`` the fallback."""
        return write_hosts_toml(
            containerd.certs_d,
            self.host,
            server_url=self.url,
            ca_path=self.ca_path if with_ca else None,
            client_pair=self.client_pair if with_client_cert else None,
            mirror_url=mirror_url,
        )
