"""What :mod:`mlnode.testing.fake_kube_api` needs for ``mlnode doctor --cluster``'s reads:
list pages (``limit``/``continue``), the kubelets behind the node proxy, RBAC from a
ClusterRole, and strict schema validation with the validator built once per kind.

Sources, beside each part: the API concepts page (kubernetes.io/docs/reference/using-api/
api-concepts, "Retrieving large results sets in chunks"), k8s.io/apiserver
pkg/storage/continue.go (the token's fields), k8s.io/apimachinery pkg/util/proxy/
transport.go (the proxy's answer when the backend cannot be dialled), and
kubernetes.io/docs/reference/access-authn-authz/rbac (rules: apiGroups, resources with
``/subresource``, verbs, ``*``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
from kubernetes_validate.utils import schema_contents  # type: ignore[import-untyped]
from referencing import Registry, Resource

from mlnode.testing import _kube_shapes as shapes
from mlnode.testing._kube_http import Answer

__all__ = [
    "Kubelet",
    "SchemaCache",
    "allowed",
    "granted_by",
    "internal_ip",
    "list_page",
    "proxy_answer",
]


# ── schema validation, the validator built once per kind ────────────────────────────────


class SchemaCache:
    """``kubernetes_validate.validate(obj, version, strict=True)``, as the same schemas
    (its ``v<version>-local-strict`` files), but one validator per (apiVersion, kind):
    kubernetes-validate builds a new one per call (30 ms a Node; 7 ms so)."""

    def __init__(self, version: str) -> None:
        # as kubernetes-validate: the newest schema not newer than the version asked for
        wanted = kubernetes_validate.utils.major_minor(version.lstrip("v"))
        shipped = [
            v
            for v in kubernetes_validate.utils.all_versions()
            if kubernetes_validate.utils.major_minor(v) <= wanted
        ]
        if not shipped:
            raise ValueError(f"kubernetes-validate has no schema {version}")
        self.version = shipped[-1]
        self._validators: dict[tuple[str, str], Any] = {}

    def problems(self, obj: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(field, message) the API server would refuse the object for; empty if none."""
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if not isinstance(kind, str) or not isinstance(api_version, str):
            return [("kind", "an object needs kind and apiVersion")]
        try:
            validator = self._validator(api_version, kind)
        except (kubernetes_validate.utils.VersionNotSupportedError, FileNotFoundError) as e:
            return [("kind", f"no schema for {api_version} {kind}: {type(e).__name__}")]
        error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
        if error is None:
            return []
        where = ".".join(str(p) for p in error.absolute_path) or "<object>"
        return [(where, str(error.message))]

    def _validator(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        found = self._validators.get(key)
        if found is not None:
            return found
        group = api_version.split("/")[0].split(".")[0] + "-" if "/" in api_version else ""
        name = f"{kind.lower()}-{group}{api_version.rsplit('/', 1)[-1]}.json"
        base = f"kubernetes-json-schema/v{self.version}-local-strict"
        schema = schema_contents(f"{base}/{name}", self.version)
        defs = schema_contents(f"{base}/_definitions.json", self.version)
        registry: Registry[Any] = Resource.from_contents(defs) @ (
            Resource.from_contents(schema) @ Registry()
        )
        validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        self._validators[key] = validator
        return validator


# ── list pages ──────────────────────────────────────────────────────────────────────────
# A list answers at most ``limit`` items sorted by key (namespace/name), with
# metadata.continue (an opaque token: base64 of {"v": "meta.k8s.io/v1", "rv": N, "start":
# "<key>\u0000"}, as continue.go encodes it) and remainingItemCount while more remain;
# a token that does not decode is 400 "continue key is not valid: ...". Simplification:
# a later page reads the objects as they are now, not at the first page's revision (the
# real server serves the snapshot, or 410 Expired once it is compacted).


def _token(revision: int, start: str) -> str:
    doc = {"v": "meta.k8s.io/v1", "rv": revision, "start": start + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def _start_of(token: str) -> tuple[int, str]:
    padded = token + "=" * (-len(token) % 4)
    doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(doc, dict) or doc.get("v") != "meta.k8s.io/v1":
        raise ValueError("unknown continue token version")
    return int(doc["rv"]), str(doc["start"])


_TYPE_META = ("kind", "apiVersion")


def list_page(
    items: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    list_kind: str,
    query: str,
    revision: int,
) -> Answer:
    """One page of ``items`` ((key, object), sorted by key) for this request's query."""
    params = parse_qs(query)
    limit = 0
    if "limit" in params:
        try:
            limit = max(0, int(params["limit"][0]))
        except ValueError:
            return Answer.of(*shapes.status(400, "BadRequest", "limit must be an integer"))
    start = ""
    rv = revision
    if "continue" in params:
        try:
            rv, start = _start_of(params["continue"][0])
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            message = f"continue key is not valid: {e}"
            return Answer.of(*shapes.status(400, "BadRequest", message))
    chosen = [(k, o) for k, o in items if k + "\x00" > start] if start else list(items)
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if limit and len(chosen) > limit:
        metadata["continue"] = _token(rv, chosen[limit - 1][0])
        metadata["remainingItemCount"] = len(chosen) - limit
        chosen = chosen[:limit]
    # items of a list carry no kind/apiVersion: the list's own TypeMeta says them
    body = {
        "kind": list_kind,
        "apiVersion": "v1",
        "metadata": metadata,
        "items": [
            {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for _, o in chosen
        ],
    }
    return Answer(200, json.dumps(body).encode())


# ── the kubelets behind the node proxy ──────────────────────────────────────────────────


@dataclass(frozen=True)
class Kubelet:
    """One node's kubelet as the proxy reaches it: its documents (encoded once), an
    answer delay, and a status code it answers instead (None: 200)."""

    documents: Mapping[str, bytes]
    delay_seconds: float = 0.0
    status: int | None = None


# The kubelet's own answers pass through the proxy unchanged: a path it does not serve is
# Go's "404 page not found" (net/http NotFound, text/plain); another code, its status text.
_TEXT = "text/plain; charset=utf-8"


def internal_ip(node: Mapping[str, Any]) -> str:
    for address in (node.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return "10.0.0.11"


def proxy_answer(kubelet: Kubelet | None, path: str, *, node_address: str) -> Answer:
    """What ``GET /api/v1/nodes/{n}/proxy/{path}`` answers (after the delay)."""
    if kubelet is None:
        # apimachinery pkg/util/proxy/transport.go RoundTrip: a dial failure becomes
        # errors.NewServiceUnavailable("error trying to reach service: " + err), i.e. 503
        # reason ServiceUnavailable; err is Go's net.OpError text.
        message = (
            f"error trying to reach service: dial tcp {node_address}:10250: "
            "connect: connection refused"
        )
        return Answer.of(*shapes.status(503, "ServiceUnavailable", message))
    if kubelet.status is not None and kubelet.status != 200:
        text = shapes.status_text(kubelet.status)
        return Answer(kubelet.status, f"{text}\n".encode(), _TEXT)
    document = kubelet.documents.get(path.strip("/"))
    if document is None:
        return Answer(404, b"404 page not found\n", _TEXT)
    return Answer(200, document)


# ── RBAC ────────────────────────────────────────────────────────────────────────────────


def granted_by(roles: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(verb, resource) pairs the core-group rules of these (Cluster)Roles allow; ``*``
    is kept as is (matched by :func:`allowed`). Rules for other API groups, and
    ``resourceNames``/``nonResourceURLs`` rules, grant nothing here."""
    out: set[tuple[str, str]] = set()
    for role in roles:
        for rule in role.get("rules") or ():
            if "" not in (rule.get("apiGroups") or ()) and "*" not in (rule.get("apiGroups") or ()):
                continue
            if rule.get("resourceNames"):
                continue
            for resource in rule.get("resources") or ():
                for verb in rule.get("verbs") or ():
                    out.add((verb, resource))
    return out


def allowed(granted: set[tuple[str, str]], verb: str, resource: str) -> bool:
    return any((v == verb or v == "*") and (r == resource or r == "*") for v, r in granted)
