"""The workflow ServiceAccount and the least-privilege Role its steps run with.

The rules are :data:`bluegreen_contract.STEP_RULES`, the API calls the steps make and nothing more: no Secrets
(notification URLs arrive as environment variables from an optional Secret the kubelet reads), no deletes of
BlueGreenDeployments, nothing cluster-scoped. The RBAC table of docs/reference/rbac.md is generated from the same
rules (``bluegreen-render --readme docs/reference/rbac.md``), and the integration tests prove each rule against a real
API server by impersonating this ServiceAccount.

Argo reference for the executor rule: https://argo-workflows.readthedocs.io/en/latest/workflow-rbac/.
"""

from __future__ import annotations

from typing import Any

from bluegreen_contract import EXECUTOR_RULES, STEP_RULES, ApiRule
from pipelines import rbac_objects
from pipelines.settings import SERVICE_ACCOUNT, RenderSettings

ROLE = "bluegreen-deployer"


def policy_rule(rule: ApiRule) -> dict[str, Any]:
    """One rule as Kubernetes RBAC writes it."""
    return {"apiGroups": [rule.api_group], "resources": list(rule.resource_names), "verbs": list(rule.verbs)}


def readme_table() -> str:
    """The documented RBAC table (docs/reference/rbac.md): one row per rule, with why the steps need it."""
    rows = ["| API group | resource | verbs | why |", "|---|---|---|---|"]
    for rule in (*STEP_RULES, *EXECUTOR_RULES):
        resources = ", ".join(f"`{name}`" for name in rule.resource_names)
        rows.append(f"| `{rule.api_group or 'core'}` | {resources} | {', '.join(rule.verbs)} | {rule.why} |")
    return "\n".join(rows) + "\n"


README_TABLE_START = "<!-- the RBAC table: generated from bluegreen_contract.STEP_RULES by `make manifests` -->\n"
README_TABLE_END = "<!-- end of the generated RBAC table -->\n"


def with_readme_table(readme: str) -> str:
    """``readme`` (a Markdown document) with the text between the table's markers replaced by the current table."""
    start, end = readme.find(README_TABLE_START), readme.find(README_TABLE_END)
    if start < 0 or end < start:
        raise ValueError("the document has no RBAC table markers; restore them from git")
    return readme[: start + len(README_TABLE_START)] + readme_table() + readme[end:]


def service_account(settings: RenderSettings) -> dict[str, Any]:
    """The ServiceAccount every step pod runs as."""
    return rbac_objects.service_account(SERVICE_ACCOUNT, settings.namespace)


def role(settings: RenderSettings) -> dict[str, Any]:
    """The namespaced Role holding exactly the steps' API calls."""
    return rbac_objects.role(ROLE, settings.namespace, [policy_rule(r) for r in (*STEP_RULES, *EXECUTOR_RULES)])


def role_binding(settings: RenderSettings) -> dict[str, Any]:
    """Binds the Role to the workflow ServiceAccount."""
    return rbac_objects.role_binding(ROLE, settings.namespace, SERVICE_ACCOUNT)


__all__ = [
    "ROLE",
    "policy_rule",
    "readme_table",
    "role",
    "role_binding",
    "service_account",
    "with_readme_table",
]
