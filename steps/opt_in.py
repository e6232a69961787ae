"""The team's consent: the label ``argo-bluegreen.io/bluegreendeployment=<service>`` on its objects we change.

The admission policies (``pipelines/admission_policy.py``) let the workflow's ServiceAccount change a team's object
only where the team labelled it for the service's BlueGreenDeployment, and let a slot's pods join only Services
labelled so (or ours). Preflight asks for every such label before its first write, so a missing one fails the run
with the command that adds it instead of a 403 halfway through an adoption or a switch. An HPA or a PDB is the
team's to lend: one without the label is left where it is, and the run says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import bluegreen_spec as spec
from bluegreen_contract import HTTP_ROUTES, SERVICES, VIRTUAL_SERVICES, ApiResource
from steps.context import StepContext
from steps.errors import BadInput
from steps.kube import Obj


def lent(obj: Obj, service: str) -> bool:
    """Whether a team's object carries the label lending it to ``service``'s BlueGreenDeployment."""
    labels = obj["metadata"].get("labels") or {}
    return spec.SERVICE_LABEL not in labels and labels.get(spec.OPT_IN_LABEL) == service


def ours(obj: Obj, service: str) -> bool:
    """Whether the steps created ``obj`` for ``service``."""
    return (obj["metadata"].get("labels") or {}).get(spec.SERVICE_LABEL) == service


def label_command(kind: str, namespace: str, name: str, service: str) -> str:
    """The kubectl command that lends one object."""
    return f"kubectl -n {namespace} label {kind.lower()} {name} {spec.OPT_IN_LABEL}={service}"


def not_lent_warning(kind: str, namespace: str, name: str, service: str, what: str) -> str:
    """Why a team's HPA or PDB is left alone, and how to lend it."""
    return (
        f"{kind} {namespace}/{name} is not labelled {spec.OPT_IN_LABEL}={service}, so it is left as it is and "
        f"{what}; to let argo-bluegreen move it with the traffic: {label_command(kind, namespace, name, service)}"
    )


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def services_joined(ctx: StepContext, pod_labels: Mapping[str, str]) -> list[Obj]:
    """Services of the namespace that select a slot's pods, whichever slot: the slots join each of them."""
    joined = []
    for service in ctx.kube.list(SERVICES, ctx.namespace):
        selector = service["spec"].get("selector") or {}
        if any(
            _selects(selector, {**pod_labels, spec.SERVICE_LABEL: ctx.service, spec.SLOT_LABEL: slot.value})
            for slot in spec.Slot
        ):
            joined.append(service)
    return joined


def require(ctx: StepContext, pod_labels: Mapping[str, str], adopted: Obj | None) -> None:
    """Refuse, before any write, a run that would change or join a team's object the team did not lend.

    ``adopted`` is the team's Deployment when this run writes it (an adoption, or one interrupted before it scaled
    the original down); ``pod_labels`` are the pod labels the slots carry besides ours.
    """
    wanted: list[tuple[str, Obj]] = []
    if adopted is not None:
        wanted.append(("Deployment", adopted))
    main = ctx.router.main_service()
    wanted.append(("Service", main))
    for service in services_joined(ctx, pod_labels):
        if service["metadata"]["name"] != main["metadata"]["name"]:
            wanted.append(("Service", service))
    routes: tuple[tuple[ApiResource, str], ...] = ()
    if ctx.resource.spec.traffic.router is spec.RouterKind.istio:
        routes = ((VIRTUAL_SERVICES, ctx.resource.virtual_service_name()),)
    elif ctx.resource.spec.traffic.router is spec.RouterKind.gateway_api:
        routes = ((HTTP_ROUTES, ctx.resource.http_route_name()),)
    for resource, name in routes:
        route = ctx.kube.get(resource, ctx.namespace, name)
        if route is not None and not ours(route, ctx.service):
            wanted.append((resource.kind, route))
    missing = [
        (kind, obj["metadata"]["name"])
        for kind, obj in wanted
        if not ours(obj, ctx.service) and not lent(obj, ctx.service)
    ]
    if missing:
        commands = "; ".join(label_command(kind, ctx.namespace, name, ctx.service) for kind, name in missing)
        named = ", ".join(f"{kind} {ctx.namespace}/{name}" for kind, name in missing)
        raise BadInput(
            f"{named} not labelled {spec.OPT_IN_LABEL}={ctx.service}: the admission policies let argo-bluegreen "
            f"change (or let the slots' pods join) only the team's objects labelled for BlueGreenDeployment "
            f"{ctx.service}; label them, then run again: {commands}"
        )


__all__ = ["label_command", "lent", "not_lent_warning", "ours", "require", "services_joined"]
