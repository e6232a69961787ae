"""ValidatingAdmissionPolicies that hold the workflow ServiceAccount to the objects argo-bluegreen manages.

RBAC cannot say "only Deployments labelled so": the Role has to grant create, patch and delete on every Deployment,
Service and NetworkPolicy of the namespace. These policies narrow that grant at admission, in CEL, for requests
made by the ServiceAccount (in any namespace it is installed into) and nobody else:

- Deployments, Services and NetworkPolicies may be created, changed and deleted when they carry the
  ``argo-bluegreen.io/service`` label, before and after the change, so a team's object cannot be claimed by
  labelling it.
- A team's Deployment may get exactly one change: the adoption, which annotates it ``argo-bluegreen.io/adopted-by``
  and scales it to zero, leaving its labels, selector, pod template and rollout settings as they were.
- A team's Service may get exactly one change: the ``argo-bluegreen.io/slot`` key of its selector, pinned to
  ``blue`` or ``green``, with its ports, type, labels, annotations and every other selector key as they were.

One policy per kind keeps each expression typed against its own object. Kubernetes reference:
https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/.
"""

from __future__ import annotations

from typing import Any

from bluegreen_spec import ADOPTED_ANNOTATION, SERVICE_LABEL, SLOT_LABEL, Slot
from pipelines.run_policy import PART_OF
from pipelines.settings import SERVICE_ACCOUNT

API_VERSION = "admissionregistration.k8s.io/v1"
POLICY_PREFIX = "argo-bluegreen-managed-"

#: The ServiceAccount in whatever namespace it is installed into: one cluster-wide policy serves every install.
IS_THE_SERVICE_ACCOUNT = (
    f"request.userInfo.username.startsWith('system:serviceaccount:') && "
    f"request.userInfo.username.endsWith(':{SERVICE_ACCOUNT}')"
)


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _labelled(obj: str) -> str:
    return f"has({obj}.metadata.labels) && {_cel_string(SERVICE_LABEL)} in {obj}.metadata.labels"


def _same_map(field: str, except_key: str | None = None) -> str:
    """``object.<field>`` equals ``oldObject.<field>`` (absent counting as empty), except for one key if named."""
    new, old = f"object.{field}", f"oldObject.{field}"
    if except_key is None:
        return f"(has({new}) ? {new} : {{}}) == (has({old}) ? {old} : {{}})"
    key = _cel_string(except_key)
    return (
        f"(!has({new}) || {new}.all(k, k == {key} || (has({old}) && k in {old} && {old}[k] == {new}[k]))) && "
        f"(!has({old}) || {old}.all(k, k == {key} || (has({new}) && k in {new})))"
    )


def _same_optional(field: str) -> str:
    """An optional scalar field unchanged: present in both with one value, or absent from both."""
    new, old = f"object.{field}", f"oldObject.{field}"
    return f"has({new}) == has({old}) && (!has({new}) || {new} == {old})"


#: ``target`` is the object as it will be (or, for a delete, as it was); ``managed`` whether the write is on ours.
_VARIABLES = [
    {"name": "target", "expression": "request.operation == 'DELETE' ? oldObject : object"},
    {
        "name": "managed",
        "expression": (
            f"({_labelled('variables.target')}) && (request.operation != 'UPDATE' || ({_labelled('oldObject')}))"
        ),
    },
]

_ADOPTION = " && ".join(
    [
        "request.operation == 'UPDATE'",
        f"has(object.metadata.annotations) && {_cel_string(ADOPTED_ANNOTATION)} in object.metadata.annotations",
        "(object.spec.replicas == oldObject.spec.replicas || object.spec.replicas == 0)",
        "object.spec.selector == oldObject.spec.selector",
        "object.spec.template == oldObject.spec.template",
        "object.spec.strategy == oldObject.spec.strategy",
        _same_optional("spec.minReadySeconds"),
        _same_optional("spec.revisionHistoryLimit"),
        _same_optional("spec.progressDeadlineSeconds"),
        _same_optional("spec.paused"),
        _same_map("metadata.labels"),
        _same_map("metadata.annotations", except_key=ADOPTED_ANNOTATION),
    ]
)

_SLOT_VALUES = "[" + ", ".join(_cel_string(slot.value) for slot in Slot) + "]"
_SLOT_PIN = " && ".join(
    [
        "request.operation == 'UPDATE'",
        f"has(object.spec.selector) && {_cel_string(SLOT_LABEL)} in object.spec.selector",
        f"object.spec.selector[{_cel_string(SLOT_LABEL)}] in {_SLOT_VALUES}",
        _same_map("spec.selector", except_key=SLOT_LABEL),
        "(has(object.spec.ports) ? object.spec.ports : []) == (has(oldObject.spec.ports) ? oldObject.spec.ports : [])",
        _same_optional("spec.type"),
        _same_map("metadata.labels"),
        _same_map("metadata.annotations"),
    ]
)


def _denial(kind: str, allowed: str) -> str:
    text = f"{SERVICE_ACCOUNT} may write only {kind} that argo-bluegreen manages (labelled {SERVICE_LABEL}){allowed}"
    return f"{_cel_string(text + '; refused: ')} + request.operation + ' ' + request.namespace + '/' + request.name"


#: Per kind: the resource rule, the extra write allowed on a team's object, and how a refusal reads.
_KINDS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "deployments",
        "apps",
        "deployments",
        _ADOPTION,
        _denial("Deployments", f", or annotate a team's Deployment {ADOPTED_ANNOTATION} and scale it to zero"),
    ),
    (
        "services",
        "",
        "services",
        _SLOT_PIN,
        _denial("Services", f", or pin {SLOT_LABEL} in a team's Service selector"),
    ),
    ("networkpolicies", "networking.k8s.io", "networkpolicies", "false", _denial("NetworkPolicies", "")),
)


def policy_name(kind: str) -> str:
    """The policy (and binding) for one kind of object."""
    return POLICY_PREFIX + kind


def policy(kind: str, api_group: str, resource: str, exception: str, message: str) -> dict[str, Any]:
    """One ValidatingAdmissionPolicy: the ServiceAccount's writes of ``resource`` must be on managed objects."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name(kind), "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            # matchConstraints is an atomic struct in server-side apply. Spelling out what the API server would
            # default (matchPolicy, both selectors, scope) makes the applied value equal the stored one, so a second
            # field manager (kubectl after a GitOps tool, say) co-owns it instead of meeting a conflict.
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
                "resourceRules": [
                    {
                        "apiGroups": [api_group],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "resources": [resource],
                        "scope": "*",
                    }
                ],
            },
            "matchConditions": [{"name": "is-the-workflow-service-account", "expression": IS_THE_SERVICE_ACCOUNT}],
            "variables": _VARIABLES,
            "validations": [
                {
                    "expression": f"variables.managed || ({exception})",
                    "messageExpression": message,
                    "reason": "Forbidden",
                }
            ],
        },
    }


def binding(kind: str) -> dict[str, Any]:
    """Enforces one policy everywhere: its match condition already narrows it to the ServiceAccount."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name(kind), "labels": dict(PART_OF)},
        "spec": {"policyName": policy_name(kind), "validationActions": ["Deny"]},
    }


def policy_for(kind: str) -> dict[str, Any]:
    """The policy for one of :data:`KINDS`."""
    for entry in _KINDS:
        if entry[0] == kind:
            return policy(*entry)
    raise KeyError(kind)


KINDS = tuple(kind[0] for kind in _KINDS)

__all__ = ["KINDS", "POLICY_PREFIX", "binding", "policy", "policy_for", "policy_name"]
