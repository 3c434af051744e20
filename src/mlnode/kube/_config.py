"""Where the agent's Kubernetes credentials come from: a kubeconfig file or the pod's
service account, resolved once into a lightkube ``SingleConfig``.

Order (:func:`resolve`): an explicit kubeconfig path; else the in-cluster service account
(``KUBERNETES_SERVICE_HOST``/``_PORT`` and ``<root>/var/run/secrets/kubernetes.io/
serviceaccount``); else, only when the caller asks, ``$KUBECONFIG`` (its first entry) or
``~/.kube/config``; else None: no API, and the agent works without one.

Every file problem is one :class:`~mlnode.errors.InputError` line naming the file (and the
line, for YAML). The environment is a parameter, never read here from ``os.environ``.
"""

from __future__ import annotations

import binascii
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError

from mlnode.errors import InputError
from mlnode.formats.yamlfile import read_yaml_file

__all__ = ["SERVICE_ACCOUNT_DIR", "ResolvedConfig", "load_kubeconfig", "resolve"]

#: Where the kubelet mounts the pod's service account token, CA and namespace.
SERVICE_ACCOUNT_DIR = Path("var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ResolvedConfig:
    """The connection settings, and where they came from (for messages and status)."""

    config: SingleConfig
    #: ``kubeconfig /path (context x)`` or ``in-cluster service account``
    source: str
    #: the kubeconfig file (None in-cluster): where an exec plugin's relative command is
    path: Path | None = None

    @property
    def server(self) -> str:
        return str(self.config.cluster.server).rstrip("/")

    @property
    def auth_kind(self) -> str:
        """``token``, ``cert``, ``exec``, ``basic`` or ``none``: what the client presents."""
        user = self.config.user
        if user is None:
            return "none"
        if user.token is not None or user.token_file is not None:
            return "token"
        if user.client_cert is not None or user.client_cert_data is not None:
            return "cert"
        if user.exec is not None:
            return "exec"
        if user.username is not None:
            return "basic"
        return "none"


def resolve(
    *,
    kubeconfig: Path | None,
    in_cluster_root: Path,
    env: Mapping[str, str],
    discover_home: bool,
    context: str | None = None,
) -> ResolvedConfig | None:
    """The settings to use, in the order of the module docstring; None: no API."""
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig, context=context)
    in_cluster = _in_cluster(in_cluster_root, env)
    if in_cluster is not None:
        return in_cluster
    if not discover_home:
        return None
    listed = [p for p in env.get("KUBECONFIG", "").split(":") if p]
    if listed:  # asked for by name: a missing file is an error, not "no API"
        return load_kubeconfig(Path(listed[0]).expanduser(), context=context)
    home = env.get("HOME")
    if home:
        default = Path(home) / ".kube" / "config"
        if default.is_file():
            return load_kubeconfig(default, context=context)
    return None


def load_kubeconfig(path: Path, *, context: str | None = None) -> ResolvedConfig:
    """Read and check a kubeconfig file: YAML, the context, its cluster and user, and the
    certificate files it names (loaded now, so a bad one is an error here, not later)."""
    doc = read_yaml_file(path, typ="safe")
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list):
        raise InputError("not a kubeconfig (no clusters list)", path=path)
    try:
        kc = KubeConfig.from_dict(doc, fname=path.absolute())
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise InputError(f"not a kubeconfig: {_one_line(_describe(e))}", path=path) from None
    name = context or kc.current_context
    if not name:
        raise InputError("no current-context, and no context asked for", path=path)
    ctx = kc.contexts.get(name)
    if ctx is None:
        raise InputError(f"context {name!r} is not among the contexts", path=path)
    if ctx.cluster not in kc.clusters:
        raise InputError(
            f"context {name!r} names cluster {ctx.cluster!r}: no such cluster", path=path
        )
    if ctx.user and ctx.user not in kc.users:
        raise InputError(f"context {name!r} names user {ctx.user!r}: no such user", path=path)
    single = kc.get(name)
    assert single is not None  # a context name was given
    if single.user is None:  # lightkube asserts a user; an empty one presents nothing
        single = single._replace(user=User())
    where = f"kubeconfig {path} (context {single.context_name})"
    return ResolvedConfig(_checked(single, path), where, path.absolute())


def _in_cluster(root: Path, env: Mapping[str, str]) -> ResolvedConfig | None:
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    account = root / SERVICE_ACCOUNT_DIR
    token = account / "token"
    if not host or not port or not token.exists():
        # not in a pod, or a pod without a mounted token (automountServiceAccountToken: false)
        return None
    ca = account / "ca.crt"
    if not ca.is_file():
        raise InputError("the service account has a token but no ca.crt", path=ca)
    try:
        token.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {getattr(e, 'strerror', None) or e}", path=token) from None
    namespace_file = account / "namespace"
    namespace = None
    if namespace_file.is_file():
        namespace = namespace_file.read_text(encoding="utf-8").strip() or None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    kc = KubeConfig.from_one(
        cluster=Cluster(server=f"https://{host}:{port}", certificate_auth=str(ca)),
        # token_file: re-read on a 401, as the kubelet rotates the projected token
        user=User(token_file=str(token)),
        namespace=namespace,
    )
    single = kc.get()
    assert single is not None
    return ResolvedConfig(_checked(single, ca), "in-cluster service account")


def _checked(single: SingleConfig, path: Path) -> SingleConfig:
    """Load the CA and client certificate now: a missing or broken file is an InputError
    naming ``path`` (the kubeconfig, or the in-cluster CA)."""
    user = single.user if single.user is not None else User()
    if (user.client_cert or user.client_cert_data) and not (
        user.client_key or user.client_key_data
    ):
        raise InputError("client-certificate without client-key", path=path)
    named = [("certificate-authority", single.cluster.certificate_auth)]
    if not user.client_cert_data:  # lightkube prefers the *-data keys for the client pair
        named.append(("client-certificate", user.client_cert))
    if not user.client_key_data:
        named.append(("client-key", user.client_key))
    for key, value in named:
        if value and not Path(single.abs_file(value)).is_file():
            raise InputError(f"{key} {single.abs_file(value)}: no such file", path=path)
    try:
        verify_cluster(single.cluster, user, single.abs_file, trust_env=False)
    except (OSError, ssl.SSLError, binascii.Error, ConfigError, ValueError) as e:
        problem = _one_line(_describe(e))
        raise InputError(f"cannot load certificates: {problem}", path=path) from None
    server = str(single.cluster.server)
    if not server.startswith(("https://", "http://")):
        raise InputError(f"cluster server {server!r} is not an http(s) URL", path=path)
    return single


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"missing key {e.args[0]!r}"
    if isinstance(e, ssl.SSLError):
        return str(e.reason or e)
    return str(e) or type(e).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())
