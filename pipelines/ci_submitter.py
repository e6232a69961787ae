"""The identity a CI pipeline submits deploys as: a ServiceAccount, its Role and the binding, rendered on their own.

``argo submit --from workflowtemplate/blue-green-deploy --wait`` without an Argo Server runs Argo's submit logic in
the CLI with the caller's kubeconfig. It reads the named WorkflowTemplate, creates a Workflow referring to it and
watches that Workflow until it ends. Printing why a failed run failed reads the run's DeploymentRecord, which is
named after the Workflow. Those are the only calls this Role allows:

* ``get`` on the deploy WorkflowTemplate by name, so the identity can start no other template;
* ``create``, ``get``, ``list`` and ``watch`` on Workflows (the generated names cannot be listed in advance);
* ``get`` on DeploymentRecords, to print the record's reason; no ``list``, so it reads only the runs it names.

No ``pods/log``: the examples do not pass ``--log``, which would need ``get``, ``list`` and ``watch`` on every Pod of
the namespace and the logs of the applications too. A run's step logs are in the Argo UI, and its record says why it
failed.

The files live under ``rbac/ci-submitter/`` with their own kustomization, outside the default installation:
``kubectl apply -k manifests/rbac/ci-submitter`` opts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bluegreen_spec as spec
from pipelines import deploy_template, rbac_objects
from pipelines.settings import RenderSettings

NAME = "bluegreen-ci-submitter"
DIRECTORY = "rbac/ci-submitter"


@dataclass(frozen=True)
class SubmitterRule:
    """One PolicyRule of the CI identity, and why ``argo submit --wait`` or the examples need it."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()

    def policy_rule(self) -> dict[str, Any]:
        """The rule as Kubernetes RBAC writes it."""
        rule: dict[str, Any] = {"apiGroups": [self.api_group], "resources": [self.resource]}
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        rule["verbs"] = list(self.verbs)
        return rule


RULES: tuple[SubmitterRule, ...] = (
    SubmitterRule(
        "argoproj.io",
        "workflowtemplates",
        ("get",),
        "`argo submit --from` reads the template it starts; only the deploy template",
        resource_names=(deploy_template.NAME,),
    ),
    SubmitterRule(
        "argoproj.io",
        "workflows",
        ("create", "get", "list", "watch"),
        "create the run; `--wait` watches it until it ends",
    ),
    SubmitterRule(
        spec.API_GROUP,
        "deploymentrecords",
        ("get",),
        "print the failed run's reason from its record",
    ),
)


def service_account(settings: RenderSettings) -> dict[str, Any]:
    """The ServiceAccount a CI pipeline authenticates as (with a token it requests, or its own OIDC mapping)."""
    return rbac_objects.service_account(NAME, settings.namespace)


def role(settings: RenderSettings) -> dict[str, Any]:
    """The Role holding exactly :data:`RULES`."""
    return rbac_objects.role(NAME, settings.namespace, [rule.policy_rule() for rule in RULES])


def role_binding(settings: RenderSettings) -> dict[str, Any]:
    """Binds the Role to the CI ServiceAccount."""
    return rbac_objects.role_binding(NAME, settings.namespace, NAME)


__all__ = ["DIRECTORY", "NAME", "RULES", "SubmitterRule", "role", "role_binding", "service_account"]
