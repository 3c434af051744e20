"""deploy/kubernetes/doctor: every object validates strictly (the newest schema and one four
minors older, as tests/deploy checks deploy/kubernetes), the ClusterRole is read-only and
exactly the doctor's calls, and with the fake server's RBAC set to exactly that role every
doctor call passes while a write is refused with the RBAC message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from mlnode.errors import KubeError
from mlnode.kube import KubeClient, connect
from mlnode.testing._kubelet_shapes import configz_document, stats_summary
from mlnode.testing.fake_kube_api import FakeKubeApiServer

DOCTOR_DIR = Path(__file__).resolve().parents[2] / "deploy/kubernetes/doctor"
NEWEST = kubernetes_validate.latest_version()
OLDER = "1.{}.0".format(int(NEWEST.split(".")[1]) - 4)
DOCTOR_USER = "system:serviceaccount:mlnode-system:mlnode-doctor"


def _objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DOCTOR_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


OBJECTS = _objects()


def _the(kind: str) -> dict[str, Any]:
    (found,) = [o for _, o in OBJECTS if o["kind"] == kind]
    return found


@pytest.mark.parametrize("version", [NEWEST, OLDER])
@pytest.mark.parametrize(("where", "obj"), OBJECTS, ids=[w for w, _ in OBJECTS])
def test_object_validates_strictly(where: str, obj: dict[str, Any], version: str) -> None:
    assert kubernetes_validate.validate(obj, version, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DOCTOR_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = sorted(kustomization["resources"])
    assert listed == sorted(
        p.name for p in DOCTOR_DIR.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert sorted(o["kind"] for _, o in OBJECTS) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Job",
        "ServiceAccount",
    ]


def test_the_job_runs_the_cluster_doctor_as_the_read_only_account() -> None:
    job = _the("Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _the("ServiceAccount")["metadata"]["name"]
    assert job["metadata"]["namespace"] == _the("ServiceAccount")["metadata"]["namespace"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    script = container["args"][0]
    # exit 1 is "error findings", a finished run; 2 and 8 fail the Job
    assert script.startswith("mlnode doctor --cluster --output json;")
    assert '[ "$rc" -le 1 ]' in script
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_role_is_read_only_and_exactly_the_doctors_calls() -> None:
    rules = _the("ClusterRole")["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("", "nodes/proxy", "get"),
        ("", "events", "list"),
    }
    assert not any("resourceNames" in r or "nonResourceURLs" in r for r in rules)
    binding = _the("ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "mlnode-doctor"}  # fmt: skip
    account = _the("ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


@pytest.fixture
def doctor(tmp_path: Path) -> Iterator[tuple[FakeKubeApiServer, KubeClient]]:
    api = FakeKubeApiServer(user=DOCTOR_USER).start()
    api.add_node("gpu-1")
    api.set_kubelet(
        "gpu-1", configz=configz_document(), summary=stats_summary("gpu-1", imagefs=(10, 5, 4))
    )
    api.use_roles([_the("ClusterRole")])
    client = connect(kubeconfig=api.kubeconfig(tmp_path / "kubeconfig"))
    assert client is not None
    yield api, client
    client.close()
    api.stop()


def test_the_role_lets_every_doctor_call_pass(doctor: tuple[FakeKubeApiServer, KubeClient]) -> None:
    api, client = doctor
    assert len(client.list_nodes()) == 1
    assert client.list_events() == []
    assert "kubeletconfig" in client.node_proxy("gpu-1", "configz", timeout_seconds=5)
    assert "node" in client.node_proxy("gpu-1", "stats/summary", timeout_seconds=5)
    assert client.node_labels("gpu-1")["kubernetes.io/hostname"] == "gpu-1"  # nodes get
    assert {r.status for r in api.requests} == {200}


def test_the_role_refuses_writes(doctor: tuple[FakeKubeApiServer, KubeClient]) -> None:
    api, client = doctor
    with pytest.raises(KubeError) as e:
        client.annotate_node("gpu-1", {"example.com/x": "1"})
    assert e.value.status == 403
    assert str(e.value).endswith(
        f'nodes "gpu-1" is forbidden: User "{DOCTOR_USER}" cannot patch resource "nodes" '
        'in API group "" at the cluster scope (HTTP 403 Forbidden)'
    )
    with pytest.raises(KubeError) as e:
        client.post_event("gpu-1", reason="X", message="y")
    assert e.value.status == 403
    assert 'cannot create resource "events" in API group "" in the namespace "default"' in str(
        e.value
    )
    api.use_roles(None)  # the same calls pass without RBAC: the refusal was the role's
    client.annotate_node("gpu-1", {"example.com/x": "1"})
