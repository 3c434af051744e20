"""The writes :class:`~mlnode.testing.fake_kube_api.FakeKubeApiServer` accepts (the agent's
Event POST and PATCH, a Node's annotation PATCH): each stored object checked as the module
docstring of fake_kube_api says, refused with the API server's Status otherwise."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from mlnode.testing import _kube_shapes as shapes

if TYPE_CHECKING:
    from mlnode.testing.fake_kube_api import FakeKubeApiServer

__all__ = ["create", "patch"]

_MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def create(
    fake: FakeKubeApiServer, resource: str, namespace: str, body: Any
) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict):
        return shapes.status(400, "BadRequest", "the request body is not a JSON object")
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        return shapes.status(400, "BadRequest", "metadata is not an object")
    if meta.get("namespace", namespace) != namespace:
        return shapes.status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return shapes.invalid(obj, "Event", "", [("metadata.name", "Required value")])
    meta["namespace"] = namespace
    problems = fake._problems(obj)
    if problems:
        return shapes.invalid(obj, "Event", name, problems)
    with fake._lock:
        if (resource, namespace, name) in fake._objects:
            return shapes.already_exists(resource, name)
        return 201, fake._store(resource, namespace, name, obj, new=True)


def patch(
    fake: FakeKubeApiServer, resource: str, namespace: str, name: str, patch: Any, content_type: str
) -> tuple[int, dict[str, Any]]:
    if content_type.split(";")[0].strip() not in _MERGE_TYPES:
        message = f"the body of the request was in an unknown format: {content_type}"
        return shapes.status(415, "UnsupportedMediaType", message)
    if not isinstance(patch, dict):
        return shapes.status(400, "BadRequest", "the patch is not a JSON object")
    with fake._lock:
        current = fake._get(resource, namespace, name)
        if current is None:
            return shapes.not_found(resource, name)
        merged = shapes.merge_patch(current, patch)
        for immutable in ("uid", "name", "namespace", "creationTimestamp"):
            if immutable in current["metadata"]:
                merged.setdefault("metadata", {})[immutable] = current["metadata"][immutable]
        problems = fake._problems(merged)
        if problems:
            return shapes.invalid(merged, str(current.get("kind")), name, problems)
        return 200, fake._store(resource, namespace, name, merged)
