"""ClusterRoles aggregated into Kubernetes' user-facing roles ``view``, ``edit`` and ``admin``.

People bound to one of them in a namespace can then work with argo-bluegreen there without a Role of ours.

- ``view`` (and so ``edit`` and ``admin``): read BlueGreenDeployments and DeploymentRecords, as ``kubectl bluegreen
  status`` and ``history`` do.
- ``edit`` (and so ``admin``): write BlueGreenDeployments. Records stay the steps' own: the audit trail is not for
  editors to change.
- ``admin``: the verb ``use`` on ServiceAccounts and Secrets, so the namespace's administrator can give the grant the
  admission policies ask about (``kubectl bluegreen grant``). RBAC refuses a Role that grants what its author does
  not hold, and the built-in ``admin`` holds no ``use``.

Kubernetes builds those roles from ClusterRoles labelled ``rbac.authorization.k8s.io/aggregate-to-<role>``
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/#aggregated-clusterroles). They are cluster-scoped, in
the install's cluster part.
"""

from __future__ import annotations

from typing import Any

from bluegreen_contract import GRANT_VERB
from bluegreen_spec import API_GROUP, PLURAL, RECORD_PLURAL
from pipelines.run_policy import PART_OF

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
READ = ["get", "list", "watch"]


def _cluster_role(name: str, to: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"argo-bluegreen-{name}", "labels": {**PART_OF, AGGREGATE + to: "true"}},
        "rules": rules,
    }


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Each ClusterRole with its file under ``rbac/`` of the install's ``cluster/`` part."""
    return [
        (
            "rbac/aggregate-to-view-clusterrole.yaml",
            _cluster_role(
                "view", "view", [{"apiGroups": [API_GROUP], "resources": [PLURAL, RECORD_PLURAL], "verbs": READ}]
            ),
        ),
        (
            "rbac/aggregate-to-edit-clusterrole.yaml",
            _cluster_role(
                "edit",
                "edit",
                [
                    {
                        "apiGroups": [API_GROUP],
                        "resources": [PLURAL],
                        "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                    }
                ],
            ),
        ),
        (
            "rbac/aggregate-to-admin-clusterrole.yaml",
            _cluster_role(
                "grant-slot-identities",
                "admin",
                [{"apiGroups": [""], "resources": ["serviceaccounts", "secrets"], "verbs": [GRANT_VERB]}],
            ),
        ),
    ]


__all__ = ["manifests"]
