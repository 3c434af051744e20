"""The JSON shapes :mod:`mlnode.testing.fake_kube_api` answers with, each beside its source.

Fixtures are data of the API's shape (written here from the upstream documents named
beside each; no upstream code is copied), plus the routing, a JSON merge patch (RFC 7386)
and the one Event rule of the API server's own validation the fake applies.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

#: the agent's service account, as the RBAC authorizer names it in a 403 message
SERVICE_ACCOUNT_USER = "system:serviceaccount:mlnode-system:mlnode-agent"

# Discovery. Source: kubernetes/kubernetes api/discovery/api.json (kind APIVersions,
# versions, serverAddressByClientCIDRs) and api/discovery/api__v1.json (kind
# APIResourceList; the entries below are its configmaps, events, nodes and nodes/status,
# verbs and short names as there).
_API: dict[str, Any] = {
    "kind": "APIVersions",
    "versions": ["v1"],
    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
}
_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_API_V1: dict[str, Any] = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "configmaps",
            "singularName": "configmap",
            "namespaced": True,
            "kind": "ConfigMap",
            "verbs": _ALL_VERBS,
            "shortNames": ["cm"],
            "storageVersionHash": "qFsyl6wFWjQ=",
        },
        {
            "name": "events",
            "singularName": "event",
            "namespaced": True,
            "kind": "Event",
            "verbs": _ALL_VERBS,
            "shortNames": ["ev"],
            "storageVersionHash": "r2yiGXH7wu8=",
        },
        {
            "name": "nodes",
            "singularName": "node",
            "namespaced": False,
            "kind": "Node",
            "verbs": _ALL_VERBS,
            "shortNames": ["no"],
            "storageVersionHash": "XwShjMxG9Fs=",
        },
        {
            "name": "nodes/status",
            "singularName": "",
            "namespaced": False,
            "kind": "Node",
            "verbs": ["get", "patch", "update"],
        },
    ],
}


def discovery(doc: str, server_url: str) -> dict[str, Any]:
    if doc == "api":
        out = copy.deepcopy(_API)
        out["serverAddressByClientCIDRs"][0]["serverAddress"] = server_url.split("://", 1)[-1]
        return out
    return copy.deepcopy(_API_V1)


_NS = r"(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
_NAME = r"(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    ("GET", re.compile(r"/api/v1/nodes"), "list", "nodes"),
    ("GET", re.compile(r"/api/v1/events"), "list", "events"),
    ("GET", re.compile(rf"/api/v1/namespaces/{_NS}/events"), "list", "events"),
    ("GET", re.compile(rf"/api/v1/nodes/{_NAME}/proxy(?P<rest>/.*)?"), "get", "nodes/proxy"),
    ("GET", re.compile(rf"/api/v1/nodes/{_NAME}"), "get", "nodes"),
    ("PATCH", re.compile(rf"/api/v1/nodes/{_NAME}"), "patch", "nodes"),
    ("POST", re.compile(rf"/api/v1/namespaces/{_NS}/events"), "create", "events"),
    ("GET", re.compile(rf"/api/v1/namespaces/{_NS}/events/{_NAME}"), "get", "events"),
    ("PATCH", re.compile(rf"/api/v1/namespaces/{_NS}/events/{_NAME}"), "patch", "events"),
    ("GET", re.compile(rf"/api/v1/namespaces/{_NS}/configmaps/{_NAME}"), "get", "configmaps"),
]


Route = tuple[str, str, str, str, str]  # verb, resource, namespace, name, rest of the path


def route(method: str, path: str) -> dict[str, str] | Route | None:
    """Discovery ``{"doc": ...}``, or (verb, resource, namespace, name, rest), or None
    (404). ``rest``: what follows ``/proxy`` (the kubelet's path)."""
    if "/proxy/" not in path:
        path = path.rstrip("/") or "/"
    if method == "GET" and path in ("/api", "/api/v1"):
        return {"doc": path.strip("/")}
    for want, pattern, verb, resource in _ROUTES:
        m = pattern.fullmatch(path)
        if m and method == want:
            groups = m.groupdict()
            return (
                verb,
                resource,
                groups.get("ns") or "",
                groups.get("name") or "",
                groups.get("rest") or "",
            )
    return None


# Objects. Node: the fields of kubernetes.io/docs/reference/kubernetes-api/
# cluster-resources/node-v1 (NodeStatus.nodeInfo's required keys, addresses, conditions)
# with the well-known labels of kubernetes.io/docs/reference/labels-annotations-taints
# (kubernetes.io/hostname, kubernetes.io/os, kubernetes.io/arch) and the two annotations
# a kubeadm node carries. ConfigMap: kubernetes.io/docs/concepts/configuration/configmap.


def node(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                **(annotations or {}),
            },
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.11"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "8", "memory": "32734420Ki", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32632020Ki", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "0b0c5d7e-1f3a-4c2e-9d55-7a1e2f3b4c5d",
                "containerRuntimeVersion": "containerd://1.6.20",
                "kernelVersion": "6.1.0-18-amd64",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.30.2",
                "machineID": "6f1e0c1d2b3a49e8a7c6d5e4f3a2b1c0",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": "4c4c4544-0042-3510-8052-b2c04f4e3232",
            },
        },
    }


def config_map(namespace: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def kubeconfig(cluster: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Source: kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig
    (clusters / contexts / users lists of named entries, current-context)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "mlnode-agent"}}],
        "users": [{"name": "mlnode-agent", "user": user}],
        "current-context": "fake",
    }


# Errors. Shape: kubernetes.io/docs/reference/kubernetes-api/common-definitions/status
# (kind Status, apiVersion v1, metadata {}, status Failure, message, reason, details, code);
# reasons and messages as k8s.io/apimachinery/pkg/api/errors builds them (NotFound
# `nodes "x" not found`, AlreadyExists, Forbidden `... is forbidden: User ... cannot ...`,
# Invalid `Event "x" is invalid: field: ...` with details.causes) and the HTTP codes of
# the API conventions (community/contributors/devel/sig-architecture/api-conventions.md).

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    doc: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        doc["details"] = details
    return code, doc


def status_for_code(code: int) -> tuple[int, dict[str, Any]]:
    reason = _REASONS.get(code, "")
    messages = {
        429: "Too many requests, please try again later.",
        503: "the server is currently unable to handle the request",
        500: "Internal error occurred: etcdserver: request timed out",
    }
    return status(code, reason, messages.get(code, f"fake failure {code}"))


def status_text(code: int) -> str:
    """Go's http.StatusText: what a plain error body says."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"status {code}"


def not_found(resource: str, name: str) -> tuple[int, dict[str, Any]]:
    return status(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def already_exists(resource: str, name: str) -> tuple[int, dict[str, Any]]:
    message = f'{resource} "{name}" already exists'
    return status(409, "AlreadyExists", message, {"name": name, "kind": resource})


def forbidden(
    verb: str, resource: str, namespace: str, name: str, *, user: str = SERVICE_ACCOUNT_USER
) -> tuple[int, dict[str, Any]]:
    """The RBAC refusal. A subresource (``nodes/proxy``) is named whole in the reason but
    the subject is the object (``nodes "n1" is forbidden: ... cannot get resource
    "nodes/proxy" ...``), as apiserver's forbidden() and the RBAC authorizer's reason
    build it (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go)."""
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    base = resource.split("/", 1)[0]
    subject = f'{base} "{name}"' if name else base
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource '
        f'"{resource}" in API group "" {scope}'
    )
    details: dict[str, Any] = {"kind": base}
    if name:
        details["name"] = name
    return status(403, "Forbidden", message, details)


def invalid(
    obj: dict[str, Any], kind: str, name: str, problems: list[tuple[str, str]]
) -> tuple[int, dict[str, Any]]:
    parts = [f"{field}: Invalid value: {message}" for field, message in problems]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    causes = [
        {"reason": "FieldValueInvalid", "message": f"Invalid value: {message}", "field": field}
        for field, message in problems
    ]
    kind = str(obj.get("kind") or kind)
    return status(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {joined}',
        {"name": name, "kind": kind, "causes": causes},
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def event_rules(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """pkg/apis/core/validation/events.go, legacy (core/v1) path: an Event without
    eventTime about a cluster-scoped object lives in namespace "" or "default"; one
    about a namespaced object lives in that object's namespace. (Over core/v1 the server
    checks nothing more: not even that ``type`` is Normal or Warning.)"""
    if obj.get("kind") != "Event" or obj.get("eventTime"):
        return []
    involved = obj.get("involvedObject") or {}
    involved_ns = involved.get("namespace") or ""
    event_ns = (obj.get("metadata") or {}).get("namespace") or ""
    if (not involved_ns and event_ns not in ("", "default")) or (
        involved_ns and involved_ns != event_ns
    ):
        return [("involvedObject.namespace", f'"{involved_ns}": does not match event.namespace')]
    return []
