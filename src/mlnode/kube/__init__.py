"""Kubernetes API access for the agent and the doctor: nodes, events, config maps, the
kubelet's documents through the node proxy.

:func:`connect` resolves the credentials (kubeconfig with a token, a client certificate or
an exec plugin; in-cluster service account; or none) into a :class:`KubeClient`, which
implements :class:`mlnode.ports.ClusterApi` (the agent) and
:class:`mlnode.ports.ClusterReader` (``mlnode doctor --cluster``) on lightkube. See
docs/kube.md for the calls made and the RBAC they need.
"""

from mlnode.kube._client import (
    CONNECT_TIMEOUT_SECONDS,
    LIST_PAGE_SIZE,
    POOL_CONNECTIONS,
    READ_TIMEOUT_SECONDS,
    KubeClient,
    connect,
)
from mlnode.kube._config import SERVICE_ACCOUNT_DIR, ResolvedConfig, load_kubeconfig
from mlnode.kube._events import (
    AGGREGATE_WINDOW_SECONDS,
    COMPONENT,
    EVENT_NAMESPACE,
    MESSAGE_LIMIT_CHARS,
    EventCorrelator,
)
from mlnode.kube._exec import EXEC_API_VERSIONS, ExecPlugin

__all__ = [
    "AGGREGATE_WINDOW_SECONDS",
    "COMPONENT",
    "CONNECT_TIMEOUT_SECONDS",
    "EVENT_NAMESPACE",
    "EXEC_API_VERSIONS",
    "LIST_PAGE_SIZE",
    "MESSAGE_LIMIT_CHARS",
    "POOL_CONNECTIONS",
    "READ_TIMEOUT_SECONDS",
    "SERVICE_ACCOUNT_DIR",
    "EventCorrelator",
    "ExecPlugin",
    "KubeClient",
    "ResolvedConfig",
    "connect",
    "load_kubeconfig",
]
