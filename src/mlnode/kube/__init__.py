"""Kubernetes API access for the agent (and the doctor): nodes, events, config maps.

:func:`connect` resolves the credentials (kubeconfig, in-cluster service account, or none)
into a :class:`KubeClient`, which implements :class:`mlnode.ports.ClusterApi` on
lightkube. See docs/kube.md for the calls made and the RBAC they need.
"""

from mlnode.kube._client import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, KubeClient, connect
from mlnode.kube._config import SERVICE_ACCOUNT_DIR, ResolvedConfig, load_kubeconfig
from mlnode.kube._events import (
    AGGREGATE_WINDOW_SECONDS,
    COMPONENT,
    EVENT_NAMESPACE,
    MESSAGE_LIMIT_CHARS,
    EventCorrelator,
)

__all__ = [
    "AGGREGATE_WINDOW_SECONDS",
    "COMPONENT",
    "CONNECT_TIMEOUT_SECONDS",
    "EVENT_NAMESPACE",
    "MESSAGE_LIMIT_CHARS",
    "READ_TIMEOUT_SECONDS",
    "SERVICE_ACCOUNT_DIR",
    "EventCorrelator",
    "KubeClient",
    "ResolvedConfig",
    "connect",
    "load_kubeconfig",
]
