"""Every Kubernetes API call the steps make, in one place.

The Role in ``pipelines/rbac.py`` is written to allow exactly these; the integration tests impersonate the rendered
ServiceAccount against a real API server and prove each call allowed (and a list of calls that must stay denied
denied). A step that needs a new call adds it here first, so RBAC and code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import bluegreen_spec as spec


@dataclass(frozen=True)
class ApiCall:
    """One kind of request: a verb on a resource (and subresource) in the workflow's namespace."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    why: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {self.group or 'core'}/{resource}"


def _calls(group: str, resource: str, verbs: str, why: str, subresource: str = "") -> list[ApiCall]:
    return [ApiCall(verb, group, resource, subresource, why) for verb in verbs.split()]


STEP_CALLS: tuple[ApiCall, ...] = (
    *_calls(spec.API_GROUP, spec.PLURAL, "get list watch", "read specs; cleanup sweeps a namespace"),
    *_calls(spec.API_GROUP, spec.PLURAL, "get patch update", "phase, live slot, retention", "status"),
    *_calls(spec.API_GROUP, spec.RECORD_PLURAL, "get list watch create patch update delete", "audit records"),
    *_calls(spec.API_GROUP, spec.RECORD_PLURAL, "get patch update", "record entries and outcome", "status"),
    *_calls("apps", "deployments", "get list watch create patch update delete", "slot Deployments"),
    *_calls("", "services", "get list watch create patch update", "preview Service; service router"),
    *_calls("", "pods", "get list watch", "why a slot is not available"),
    *_calls("", "events", "create patch", "an Event per transition"),
    *_calls("networking.k8s.io", "networkpolicies", "get list create patch update", "slot isolation"),
    *_calls("policy", "poddisruptionbudgets", "get list", "zero-downtime warnings"),
    *_calls("networking.istio.io", "virtualservices", "get list watch create patch update", "istio router"),
    *_calls("networking.istio.io", "destinationrules", "get list watch create patch update", "istio subsets"),
    *_calls("gateway.networking.k8s.io", "httproutes", "get list watch create patch update", "gateway-api router"),
    *_calls("argoproj.io", "workflows", "get list", "repair of runs whose workflow is gone or finished"),
)

#: What Argo's emissary executor does with the same ServiceAccount to report outputs.
EXECUTOR_CALLS: tuple[ApiCall, ...] = tuple(
    _calls("argoproj.io", "workflowtaskresults", "create patch", "Argo executor outputs")
)

#: Calls the ServiceAccount must never be able to make.
FORBIDDEN_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "", "secrets", why="notification URLs come from env, never the API"),
    ApiCall("list", "", "secrets", why="notification URLs come from env, never the API"),
    ApiCall("delete", spec.API_GROUP, spec.PLURAL, why="a service's spec is the platform team's to remove"),
    ApiCall("update", spec.API_GROUP, spec.PLURAL, why="steps write status only, never the spec"),
    ApiCall("delete", "", "services", why="the live Service is never removed"),
    ApiCall("create", "", "pods", why="pods come from Deployments only"),
    ApiCall("patch", "argoproj.io", "workflows", why="steps do not steer Argo"),
)

__all__ = ["EXECUTOR_CALLS", "FORBIDDEN_CALLS", "STEP_CALLS", "ApiCall"]
