"""A ValidatingAdmissionPolicy: a Workflow or CronWorkflow may start only a WorkflowTemplate its creator may read.

Argo's workflow-controller resolves ``spec.workflowTemplateRef`` with its own rights, not the submitter's. So RBAC's
``get`` on one template, which is how the CI Role of ``rbac/ci-submitter/`` limits ``argo submit --from`` (the CLI
reads the template as the caller), says nothing about a Workflow created directly: with ``create`` on Workflows the
CI identity could reference ``blue-green-rollback``, the cleanup sweep, another team's template or any
ClusterWorkflowTemplate, and the controller would run it as that template's ServiceAccount.

This policy holds every Workflow and CronWorkflow to the rule ``argo submit --from`` already follows: whoever
creates one, re-aims a Workflow (its reference is read only at the controller's first look, which a Workflow
labelled for another controller instance postpones) or changes a CronWorkflow's spec must be allowed to ``get`` the
template it references (a namespaced WorkflowTemplate, or with ``clusterScope`` a ClusterWorkflowTemplate). The API
server asks its own authorizer, so the rule is exactly the RBAC in force.

The controller also runs what a Workflow's status already holds: it reads the template only while
``status.storedWorkflowTemplateSpec`` is empty (Argo v4.0.5, ``setStoredWfSpec``), and the Workflow CRD has no status
subresource, so a creator could put its own templates there. Writing those fields therefore takes the right to create
Pods in the namespace, which runs any code as any ServiceAccount anyway and which the controller holds.

A Workflow without a reference is Argo's to refuse (``templateReferencing: Strict``, :mod:`pipelines.argo_controller`).
"""

from __future__ import annotations

from typing import Any

from pipelines.admission_policy import ADMISSION_API, q
from pipelines.run_policy import PART_OF

POLICY_NAME = "argo-bluegreen-submit-readable-templates"
RULE = "template-readable"
#: The rule for a Workflow that carries the spec the controller runs in its own status.
STATUS_RULE = "no-stored-templates"

_IS_WORKFLOW = "request.resource.resource == 'workflows'"


def _workflow_spec(obj: str) -> str:
    """What a Workflow runs from ``obj``: its spec, or a CronWorkflow's ``workflowSpec``."""
    return f"({_IS_WORKFLOW} ? dyn({obj}.spec) : dyn({obj}.spec.workflowSpec))"


def _stored(obj: str, field: str) -> str:
    """A field of a Workflow's status, or null: what the controller stored there (or a creator put there)."""
    return f"(has({obj}.status) && has({obj}.status.{field}) ? dyn({obj}.status.{field}) : null)"


# The status field Argo runs from once it is set: the controller reads the referenced template only while
# storedWorkflowTemplateSpec is empty (v4.0.5 operator.go, setStoredWfSpec). status.storedTemplates is left alone:
# Argo's own submit fills it while validating, and the controller consults it only for templateRef calls, which
# argo-bluegreen's templates do not make.
_STORED_FIELDS = ("storedWorkflowTemplateSpec",)
_VARIABLES = (
    ("spec", _workflow_spec("object")),
    ("ref", "variables.spec.workflowTemplateRef"),
    ("clusterScope", "has(variables.ref.clusterScope) && variables.ref.clusterScope == true"),
    ("templateName", "has(variables.ref.name) ? variables.ref.name : ''"),
    # What a run would start is judged when it is created and whenever it is re-aimed: a Workflow's reference before
    # the controller has read it (one parked for another controller instance is read only once relabelled), and any
    # change to a CronWorkflow's spec, which its next run takes as it is.
    (
        "startJudged",
        "request.operation == 'CREATE' || "
        f"({_IS_WORKFLOW} ? variables.ref != {_workflow_spec('oldObject')}.workflowTemplateRef : "
        "object.spec != oldObject.spec)",
    ),
    (
        "readable",
        "variables.clusterScope ? "
        "authorizer.group('argoproj.io').resource('clusterworkflowtemplates').name(variables.templateName)"
        ".check('get').allowed() : "
        "authorizer.group('argoproj.io').resource('workflowtemplates').namespace(request.namespace)"
        ".name(variables.templateName).check('get').allowed()",
    ),
    # A Workflow created with its own stored spec, or one whose stored spec someone rewrites, runs whatever that spec
    # says as whichever ServiceAccount it names: as much as creating Pods, which is therefore what it takes.
    (
        "storesTemplates",
        f"{_IS_WORKFLOW} && ("
        + " || ".join(
            f"(request.operation == 'CREATE' ? {_stored('object', f)} != null : "
            f"{_stored('object', f)} != {_stored('oldObject', f)})"
            for f in _STORED_FIELDS
        )
        + ")",
    ),
    ("mayCreatePods", "authorizer.group('').resource('pods').namespace(request.namespace).check('create').allowed()"),
)
# A Workflow without a reference is Argo's to refuse under templateReferencing: Strict.
_MATCH_CONDITIONS = (("references-a-template", f"has({_workflow_spec('object')}.workflowTemplateRef)"),)
_ALLOWED = (
    "a Workflow or CronWorkflow may reference only a WorkflowTemplate (or, with clusterScope, a "
    "ClusterWorkflowTemplate) its creator may get, as argo submit --from requires; grant get on that template by "
    "name, or submit as an identity that has it"
)
_STATUS_ALLOWED = (
    "only an identity that may create Pods in the namespace may create a Workflow that carries a spec in its "
    "status (storedWorkflowTemplateSpec) or change it, since the controller runs it instead of the template "
    "referenced; submit without it"
)


# Which write was refused, for every message.
_OBJECT = (
    "' (' + request.operation + ' ' + request.resource.resource + ' ' + request.namespace + '/' + request.name + ')'"
)


def _message() -> str:
    kind = "(variables.clusterScope ? 'clusterworkflowtemplates/' : 'workflowtemplates/')"
    return (
        f"request.userInfo.username + {q(f' may not start this [{RULE}]: {_ALLOWED}; it may not get ')} + {kind} + "
        f"variables.templateName + {_OBJECT}"
    )


def _status_message() -> str:
    return f"request.userInfo.username + {q(f' may not write this [{STATUS_RULE}]: {_STATUS_ALLOWED}')} + {_OBJECT}"


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
                    for resource, operations in (
                        ("workflows", ["CREATE", "UPDATE"]),
                        ("cronworkflows", ["CREATE", "UPDATE"]),
                    )
                ],
            },
            "matchConditions": [{"name": name, "expression": expression} for name, expression in _MATCH_CONDITIONS],
            "variables": [{"name": name, "expression": expression} for name, expression in _VARIABLES],
            "validations": [
                {
                    "expression": "!variables.startJudged || variables.readable",
                    "messageExpression": _message(),
                    "reason": "Forbidden",
                },
                {
                    "expression": "!variables.storesTemplates || variables.mayCreatePods",
                    "messageExpression": _status_message(),
                    "reason": "Forbidden",
                },
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


__all__ = ["POLICY_NAME", "RULE", "STATUS_RULE", "binding", "policy"]
