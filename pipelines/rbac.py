"""The workflow ServiceAccount and the least-privilege Role its steps run with.

Every rule names the API calls a step makes and nothing more: no Secrets (notification URLs arrive as environment
variables from an optional Secret the kubelet reads), no deletes of BlueGreenDeployments, nothing cluster-scoped.
The README's RBAC table explains each rule; a test keeps the two in step, and the integration tests prove each rule
against a real API server by impersonating this ServiceAccount.

Argo reference for the executor rule: https://argo-workflows.readthedocs.io/en/latest/workflow-rbac/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bluegreen_spec as spec
from pipelines.run_policy import PART_OF
from pipelines.settings import SERVICE_ACCOUNT, RenderSettings

ROLE = "bluegreen-deployer"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule and why the steps need it."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def to_policy_rule(self) -> dict[str, Any]:
        """The rule as Kubernetes RBAC writes it."""
        return {"apiGroups": [self.api_group], "resources": list(self.resources), "verbs": list(self.verbs)}


RULES: tuple[Rule, ...] = (
    Rule(
        spec.API_GROUP,
        (spec.PLURAL,),
        ("get", "list", "watch"),
        "read each service's spec; cleanup lists them per namespace",
    ),
    Rule(
        spec.API_GROUP,
        (f"{spec.PLURAL}/status",),
        ("get", "patch", "update"),
        "record phase, live slot, retention and history",
    ),
    Rule(
        spec.API_GROUP,
        (spec.RECORD_PLURAL,),
        ("get", "list", "watch", "create", "patch", "update", "delete"),
        "open one DeploymentRecord per run; prune beyond historyLimit",
    ),
    Rule(
        spec.API_GROUP,
        (f"{spec.RECORD_PLURAL}/status",),
        ("get", "patch", "update"),
        "append probe, smoke and transition entries; close the record",
    ),
    Rule(
        "apps",
        ("deployments",),
        ("get", "list", "watch", "create", "patch", "update", "delete"),
        "create and scale the slot Deployments, watch their rollout, delete expired slots, adopt the original",
    ),
    Rule(
        "",
        ("services",),
        ("get", "list", "watch", "create", "patch", "update"),
        "create the preview Service; the service router patches the live selector",
    ),
    Rule(
        "",
        ("pods",),
        ("get", "list", "watch"),
        "name the reason (ImagePullBackOff, CrashLoopBackOff) when a slot never becomes available",
    ),
    Rule("", ("events",), ("create", "patch"), "emit an Event on the BlueGreenDeployment for each transition"),
    Rule(
        "networking.k8s.io",
        ("networkpolicies",),
        ("get", "list", "create", "patch", "update"),
        "isolate the blue and green slots of a service from each other",
    ),
    Rule("policy", ("poddisruptionbudgets",), ("get", "list"), "warn when a service has no PodDisruptionBudget"),
    Rule(
        "networking.istio.io",
        ("virtualservices", "destinationrules"),
        ("get", "list", "watch", "create", "patch", "update"),
        "istio router: one subset per slot, flip the route weights",
    ),
    Rule(
        "gateway.networking.k8s.io",
        ("httproutes",),
        ("get", "list", "watch", "create", "patch", "update"),
        "gateway-api router: flip the HTTPRoute backendRef weights",
    ),
    Rule("argoproj.io", ("workflows",), ("get", "list"), "cleanup repairs runs whose workflow is gone or finished"),
    Rule(
        "argoproj.io",
        ("workflowtaskresults",),
        ("create", "patch"),
        "Argo's executor reports step outputs (required since Argo 3.4)",
    ),
)


def service_account(settings: RenderSettings) -> dict[str, Any]:
    """The ServiceAccount every step pod runs as."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": settings.namespace, "labels": dict(PART_OF)},
    }


def role(settings: RenderSettings) -> dict[str, Any]:
    """The namespaced Role holding exactly the steps' API calls."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": ROLE, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "rules": [rule.to_policy_rule() for rule in RULES],
    }


def role_binding(settings: RenderSettings) -> dict[str, Any]:
    """Binds the Role to the workflow ServiceAccount."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE, "namespace": settings.namespace, "labels": dict(PART_OF)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": settings.namespace}],
    }


__all__ = ["ROLE", "RULES", "Rule", "role", "role_binding", "service_account"]
