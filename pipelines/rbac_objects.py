"""The three RBAC objects an identity is made of: a ServiceAccount, a Role and the RoleBinding between them.

The steps' identity (``rbac``) and the CI identity (``ci_submitter``) differ only in names and rules, so both are
built here and carry the same labels.
"""

from __future__ import annotations

from typing import Any

from pipelines.run_policy import PART_OF

RBAC_API = "rbac.authorization.k8s.io"


def service_account(name: str, namespace: str) -> dict[str, Any]:
    """A ServiceAccount named ``name``."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
    }


def role(name: str, namespace: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A namespaced Role holding exactly ``rules``."""
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
        "rules": rules,
    }


def role_binding(name: str, namespace: str, service_account_name: str) -> dict[str, Any]:
    """Binds the Role ``name`` to a ServiceAccount of the same namespace."""
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
        "roleRef": {"apiGroup": RBAC_API, "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account_name, "namespace": namespace}],
    }


__all__ = ["role", "role_binding", "service_account"]
