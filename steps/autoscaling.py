"""The team's HorizontalPodAutoscaler follows the traffic: it always scales the live slot.

A team's HPA targets its own Deployment. After adoption that Deployment runs no pods, and an HPA whose target has
zero replicas stops scaling altogether, so the live slot would be stuck at the size it started with. Each time the
route moves (adoption, switch, rollback, repair) the one HPA aimed at the service's Deployments is re-aimed at the
live slot's Deployment, by changing ``spec.scaleTargetRef.name`` and nothing else. The slot that lost the traffic
keeps the replicas it had, so a rollback lands on as many warm pods as were serving.

More than one HPA aimed at those Deployments is a conflict the steps do not resolve (two controllers would fight
over one replica count): nothing is moved, and preflight says so. An HPA the team has not labelled
``argo-bluegreen.io/bluegreendeployment=<service>`` is not moved either (the admission policies would refuse it).
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import HPAS
from steps import opt_in, slots
from steps.context import StepContext
from steps.follow_traffic import move_with_traffic
from steps.kube import Obj


def _candidate_names(ctx: StepContext) -> set[str]:
    """The Deployments a team's HPA for this service may target: the adopted original and both slots."""
    return {ctx.resource.adopted_deployment_name(), *(slots.deployment_name(ctx.service, s) for s in spec.Slot)}


def autoscalers(ctx: StepContext) -> list[Obj]:
    """HPAs in the namespace whose target is one of the service's Deployments."""
    names = _candidate_names(ctx)
    found = []
    for hpa in ctx.kube.list(HPAS, ctx.namespace):
        target = hpa["spec"].get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") in names:
            found.append(hpa)
    return sorted(found, key=lambda hpa: str(hpa["metadata"]["name"]))


def conflict_warning(ctx: StepContext, found: list[Obj]) -> str:
    """Why several HPAs are left where they are."""
    names = ", ".join(f"{ctx.namespace}/{hpa['metadata']['name']}" for hpa in found)
    return (
        f"HorizontalPodAutoscalers {names} all scale Deployments of {ctx.service}; none is moved to the live slot, "
        "so the live slot keeps a fixed size. Keep one of them"
    )


def not_lent_warning(ctx: StepContext, hpa: Obj) -> str:
    """Why the team's HPA stays where it is: the team has not lent it to the service."""
    return opt_in.not_lent_warning(
        "HorizontalPodAutoscaler",
        ctx.namespace,
        hpa["metadata"]["name"],
        ctx.service,
        f"keeps scaling {hpa['spec']['scaleTargetRef']['name']}, not the live slot",
    )


def autoscaler_warnings(ctx: StepContext) -> list[str]:
    """What preflight reports about the service's autoscaling."""
    found = autoscalers(ctx)
    if len(found) > 1:
        return [conflict_warning(ctx, found)]
    return [not_lent_warning(ctx, hpa) for hpa in found if not opt_in.lent(hpa, ctx.service)]


def misaimed(ctx: StepContext, slot: spec.Slot) -> Obj | None:
    """The service's one lent HPA when it scales another Deployment than ``slot``'s; None when none is to move."""
    found = autoscalers(ctx)
    if len(found) != 1:
        if found:
            ctx.log("autoscaler-not-moved", autoscalers=[hpa["metadata"]["name"] for hpa in found])
        return None
    hpa = found[0]
    if not opt_in.lent(hpa, ctx.service):
        # The admission policies refuse the write, and rightly: the team has not lent it (preflight warned).
        ctx.log("autoscaler-not-moved", autoscalers=[hpa["metadata"]["name"]], reason="not labelled for the service")
        return None
    if hpa["spec"]["scaleTargetRef"]["name"] == slots.deployment_name(ctx.service, slot):
        return None
    return hpa


def follow_live_slot(ctx: StepContext, slot: spec.Slot, record: str, step: str) -> bool:
    """Aim the service's one HPA at ``slot``'s Deployment; False, a no-op, when there is none or it already is."""
    hpa = misaimed(ctx, slot)
    if hpa is None:
        return False
    name = hpa["metadata"]["name"]
    live = slots.deployment_name(ctx.service, slot)
    before = hpa["spec"]["scaleTargetRef"]["name"]

    def aim(current: Obj) -> bool:
        target = current["spec"]["scaleTargetRef"]
        if target.get("name") == live:
            return False
        target["name"] = live
        return True

    return move_with_traffic(
        ctx,
        HPAS,
        name,
        aim,
        record=record,
        step=step,
        moved=("autoscaler-moved", f"HorizontalPodAutoscaler {name} now scales {live} (was {before})"),
        not_moved=f"HorizontalPodAutoscaler {name} still scales {before}, not the live {live}",
    )


__all__ = [
    "autoscaler_warnings",
    "autoscalers",
    "conflict_warning",
    "follow_live_slot",
    "misaimed",
    "not_lent_warning",
]
