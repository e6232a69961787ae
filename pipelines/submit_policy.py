"""A ValidatingAdmissionPolicy: a Workflow or CronWorkflow may start only a WorkflowTemplate its creator may read.

Argo's workflow-controller resolves ``spec.workflowTemplateRef`` with its own rights, not the submitter's. So RBAC's
``get`` on one template, which is how the CI Role of ``rbac/ci-submitter/`` limits ``argo submit --from`` (the CLI
reads the template as the caller), says nothing about a Workflow created directly: with ``create`` on Workflows the
CI identity could reference ``blue-green-rollback``, the cleanup sweep, another team's template or any
ClusterWorkflowTemplate, and the controller would run it as that template's ServiceAccount.

This policy holds every created Workflow, and every created or re-aimed CronWorkflow, to the rule ``argo submit
--from`` already follows: its creator must be allowed to ``get`` the template it references (a namespaced
WorkflowTemplate, or with ``clusterScope`` a ClusterWorkflowTemplate). The API server asks its own authorizer, so
the rule is exactly the RBAC in force. Identities that read the templates anyway are unaffected: the
workflow-controller starting a CronWorkflow's runs, the Argo Server in ``server`` auth mode, people with the usual
edit roles. A Workflow without a reference is Argo's to refuse (``templateReferencing: Strict``,
:mod:`pipelines.argo_controller`). Only creation is judged for Workflows: the controller rewrites them all the time,
and Argo ignores a reference that changes after a run has started.
"""

from __future__ import annotations

from typing import Any

from pipelines.admission_policy import ADMISSION_API, q
from pipelines.run_policy import PART_OF

POLICY_NAME = "argo-bluegreen-submit-readable-templates"
RULE = "template-readable"

_WORKFLOW_SPEC = "(request.resource.resource == 'workflows' ? dyn(object.spec) : dyn(object.spec.workflowSpec))"
_OLD_WORKFLOW_SPEC = "dyn(oldObject.spec.workflowSpec)"
_VARIABLES = (
    ("spec", _WORKFLOW_SPEC),
    ("ref", "variables.spec.workflowTemplateRef"),
    ("clusterScope", "has(variables.ref.clusterScope) && variables.ref.clusterScope == true"),
    ("templateName", "has(variables.ref.name) ? variables.ref.name : ''"),
    (
        "readable",
        "variables.clusterScope ? "
        "authorizer.group('argoproj.io').resource('clusterworkflowtemplates').name(variables.templateName)"
        ".check('get').allowed() : "
        "authorizer.group('argoproj.io').resource('workflowtemplates').namespace(request.namespace)"
        ".name(variables.templateName).check('get').allowed()",
    ),
)
# A Workflow without a reference is Argo's to judge; a CronWorkflow update that keeps its reference changes nothing
# this policy judges (suspending it, changing its schedule), so neither asks the authorizer.
_MATCH_CONDITIONS = (
    ("references-a-template", f"has({_WORKFLOW_SPEC}.workflowTemplateRef)"),
    (
        "reference-is-new",
        f"request.operation == 'CREATE' || !has({_OLD_WORKFLOW_SPEC}.workflowTemplateRef) || "
        f"{_OLD_WORKFLOW_SPEC}.workflowTemplateRef != {_WORKFLOW_SPEC}.workflowTemplateRef",
    ),
)
_ALLOWED = (
    "a Workflow or CronWorkflow may reference only a WorkflowTemplate (or, with clusterScope, a "
    "ClusterWorkflowTemplate) its creator may get, as argo submit --from requires; grant get on that template by "
    "name, or submit as an identity that has it"
)


def _message() -> str:
    kind = "(variables.clusterScope ? 'clusterworkflowtemplates/' : 'workflowtemplates/')"
    return (
        f"request.userInfo.username + {q(f' may not start this [{RULE}]: {_ALLOWED}; it may not get ')} + {kind} + "
        "variables.templateName + ' (' + request.operation + ' ' + request.resource.resource + ' ' + "
        "request.namespace + '/' + request.name + ')'"
    )


def policy() -> dict[str, Any]:
    """The ValidatingAdmissionPolicy."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME, "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            # Spelled out as the API server defaults them, so a second field manager co-owns the struct (see
            # pipelines.admission_policy.Policy.document).
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
                "resourceRules": [
                    {
                        "apiGroups": ["argoproj.io"],
                        "apiVersions": ["*"],
                        "operations": operations,
                        "resources": [resource],
                        "scope": "*",
                    }
                    for resource, operations in (("workflows", ["CREATE"]), ("cronworkflows", ["CREATE", "UPDATE"]))
                ],
            },
            "matchConditions": [{"name": name, "expression": expression} for name, expression in _MATCH_CONDITIONS],
            "variables": [{"name": name, "expression": expression} for name, expression in _VARIABLES],
            "validations": [
                {"expression": "variables.readable", "messageExpression": _message(), "reason": "Forbidden"}
            ],
        },
    }


def binding() -> dict[str, Any]:
    """Binds the policy everywhere, denying: every namespace's Workflows are started by the same controller."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME, "labels": dict(PART_OF)},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    }


__all__ = ["POLICY_NAME", "RULE", "binding", "policy"]
