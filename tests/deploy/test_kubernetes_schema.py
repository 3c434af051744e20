"""Every object in deploy/kubernetes validates, strictly (no unknown field), against the
official OpenAPI schemas of two Kubernetes versions that kubernetes-validate ships: the
newest and the one four minors older."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from .manifests import KUBE_DIR, manifest_files, objects


def _shipped_versions() -> list[tuple[int, int]]:
    schema_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = set()
    for p in schema_dir.iterdir():
        m = re.fullmatch(r"v1\.(\d+)\.0-local-strict", p.name)
        if m:
            found.add((1, int(m.group(1))))
    return sorted(found)


def _versions() -> list[str]:
    shipped = _shipped_versions()
    newest = shipped[-1]
    older = (1, newest[1] - 4)
    assert older in shipped, (older, shipped)
    return [f"{v[0]}.{v[1]}.0" for v in (newest, older)]


VERSIONS = _versions()
OBJECTS = [(f"{p.name}:{o['kind']}/{o['metadata']['name']}", o) for p, o in objects()]


def test_two_versions_four_minors_apart() -> None:
    newest, older = (tuple(int(x) for x in v.split(".")) for v in VERSIONS)
    assert newest[1] - older[1] == 4
    assert newest == (*max(_shipped_versions()), 0)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("where", "obj"), OBJECTS, ids=[w for w, _ in OBJECTS])
def test_object_validates_strictly(where: str, obj: dict[str, Any], version: str) -> None:
    # It returns the version it validated against (raises ValidationError otherwise).
    assert kubernetes_validate.validate(obj, version, strict=True) == version.rsplit(".", 1)[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_validation_catches_a_misspelt_field(version: str) -> None:
    (ds,) = [o for _, o in OBJECTS if o["kind"] == "DaemonSet"]
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def test_every_kind_the_agent_needs_is_there() -> None:
    kinds = sorted(o["kind"] for _, o in OBJECTS)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "Role", "RoleBinding", "ConfigMap", "ConfigMap", "DaemonSet",
         "Service"]
    )  # fmt: skip
    # No ServiceMonitor, no PodDisruptionBudget, nothing else.


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBE_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in manifest_files()]
    (image,) = kustomization["images"]
    (_, ds) = next((p, o) for p, o in objects() if o["kind"] == "DaemonSet")
    assert image["name"] == ds["spec"]["template"]["spec"]["containers"][0]["image"]


def test_namespaced_objects_are_in_the_agents_namespace() -> None:
    for where, obj in OBJECTS:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert ns is None, where
        elif obj["metadata"]["name"] == "mlnode-agent-events":
            assert ns == "default", where  # Node events live there
        else:
            assert ns == "mlnode-system", where
