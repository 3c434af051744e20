"""The agent's RBAC is exactly SPEC10's list: read from the Roles and ClusterRoles shipped, and
only what is bound to the agent's ServiceAccount counts."""

from __future__ import annotations

from typing import Any

from .manifests import NAMESPACE, SERVICE_ACCOUNT, daemonset, objects

CLUSTER = "*cluster*"

# SPEC10: nodes get/list/watch (cluster); events create/patch in namespace default;
# configmaps get/watch in its own namespace. (apiGroup, resource, verb, namespace)
SPEC10 = {
    ("", "nodes", "get", CLUSTER),
    ("", "nodes", "list", CLUSTER),
    ("", "nodes", "watch", CLUSTER),
    ("", "events", "create", "default"),
    ("", "events", "patch", "default"),
    ("", "configmaps", "get", NAMESPACE),
    ("", "configmaps", "watch", NAMESPACE),
}

RBAC = "rbac.authorization.k8s.io"


def _roles() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, namespace or CLUSTER, name) -> the role object."""
    out = {}
    for _, o in objects():
        if o.get("apiVersion") == f"{RBAC}/v1" and o["kind"] in ("Role", "ClusterRole"):
            ns = o["metadata"].get("namespace", CLUSTER)
            out[(o["kind"], ns, o["metadata"]["name"])] = o
    return out


def _bound_roles() -> list[tuple[str, str, str]]:
    """The roles bound to the agent's ServiceAccount, as (kind, scope, name)."""
    bound = []
    for _, o in objects():
        if o["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = o.get("subjects", [])
        ours = [
            s
            for s in subjects
            if s["kind"] == "ServiceAccount"
            and s["name"] == SERVICE_ACCOUNT
            and s["namespace"] == NAMESPACE
        ]
        assert ours == subjects, f"{o['metadata']['name']}: binds someone else too: {subjects}"
        ref = o["roleRef"]
        assert ref["apiGroup"] == RBAC
        if o["kind"] == "ClusterRoleBinding":
            assert ref["kind"] == "ClusterRole"
            scope = CLUSTER
        else:
            # A RoleBinding to a ClusterRole would grant that role in the binding's namespace.
            scope = o["metadata"]["namespace"]
            if ref["kind"] == "ClusterRole":
                scope = CLUSTER + ":" + scope
        bound.append((ref["kind"], scope, ref["name"]))
    return bound


def granted() -> set[tuple[str, str, str, str]]:
    """Every (apiGroup, resource, verb, namespace) the agent's ServiceAccount gets."""
    roles = _roles()
    out: set[tuple[str, str, str, str]] = set()
    for kind, scope, name in _bound_roles():
        if scope.startswith(CLUSTER + ":"):
            role, where = roles[("ClusterRole", CLUSTER, name)], scope.split(":", 1)[1]
        else:
            role, where = roles[(kind, scope, name)], scope
        assert "aggregationRule" not in role, name
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, (name, rule)
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((group, resource, verb, where))
    return out


def test_rbac_grants_exactly_spec10() -> None:
    assert granted() == SPEC10


def test_no_wildcards_no_secrets_no_pods_no_node_writes() -> None:
    rights = granted()
    assert not any("*" in (g, r, v) for g, r, v, _ in rights)
    assert not any(r in ("secrets", "pods", "pods/exec") for _, r, _, _ in rights)
    assert not any(r.startswith("nodes") and v not in ("get", "list", "watch")
                   for _, r, v, _ in rights)  # fmt: skip
    # resourceNames would narrow a rule; none is used, so the set above is the whole grant.
    for role in _roles().values():
        for rule in role["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule


def test_every_role_is_bound_and_used_by_the_daemonset() -> None:
    assert sorted((k, s, n) for k, s, n in _bound_roles()) == sorted(_roles())
    spec = daemonset()["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == SERVICE_ACCOUNT
    # The token is needed (in-cluster config): not turned off.
    assert spec.get("automountServiceAccountToken", True) is True
