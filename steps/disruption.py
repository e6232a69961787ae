"""The team's PodDisruptionBudget protects the live slot, and only the live slot.

A budget on ``app=<svc>`` counts the pods of both slots once the service runs blue and green. With a warm previous
slot beside the live one, "at least 2 available" is met by the idle pods alone, so a node drain may evict every pod
that serves traffic. A second budget per slot is no answer: the eviction API refuses to evict a pod that more than
one budget selects, so drains would stop altogether.

So the team's own budget is pinned to the live slot, as the application's Service is: the slot label is added to
its ``matchLabels`` and moved with the traffic (adoption, switch, rollback, repair). Nothing else of it changes. A
budget whose selector is broader than the service's own Deployment selector also covers other workloads; pinning it
would strip their protection, so it is left alone and preflight says so; so is a budget the team has not labelled
``argo-bluegreen.io/bluegreendeployment=<service>`` (the admission policies would refuse the write).
"""

from __future__ import annotations

from collections.abc import Mapping

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, PDBS
from steps import opt_in, slots
from steps.context import StepContext
from steps.follow_traffic import move_with_traffic
from steps.isolation import selector_matches
from steps.kube import Obj


def _unpinned(selector: Obj) -> Obj:
    """The selector without our slot key: what it selects whichever slot is live."""
    labels = dict(selector.get("matchLabels") or {})
    labels.pop(spec.SLOT_LABEL, None)
    return {**selector, "matchLabels": labels}


def covering(ctx: StepContext, pod_labels: Mapping[str, str]) -> list[Obj]:
    """The team's budgets that select the service's pods, whichever slot they belong to."""
    found = []
    for pdb in ctx.kube.list(PDBS, ctx.namespace):
        if (pdb["metadata"].get("labels") or {}).get(spec.SERVICE_LABEL):
            continue  # not the team's
        selector = pdb["spec"].get("selector")
        if selector is None:
            continue  # a budget without a selector selects nothing
        if selector_matches(_unpinned(selector), {**pod_labels, spec.SLOT_LABEL: spec.Slot.blue.value}):
            found.append(pdb)
    return sorted(found, key=lambda pdb: str(pdb["metadata"]["name"]))


def specific_to(pdb: Obj, deployment_selector: Mapping[str, str]) -> bool:
    """Whether the budget selects no more than the service's Deployment does.

    That is, its matchLabels include the Deployment's, so pinning it to a slot takes no protection away from another
    workload.
    """
    labels = _unpinned(pdb["spec"]["selector"])["matchLabels"]
    ours = {spec.SERVICE_LABEL, spec.SLOT_LABEL}  # a slot's selector adds these to the team's own
    return all(labels.get(key) == value for key, value in deployment_selector.items() if key not in ours)


def _deployment_selector(live: Obj) -> dict[str, str]:
    return dict((live["spec"].get("selector") or {}).get("matchLabels") or {})


def budget_warnings(ctx: StepContext, live: Obj) -> list[str]:
    """What preflight reports: no budget at all, or a budget too broad to pin to the live slot."""
    pod_labels = live["spec"]["template"].get("metadata", {}).get("labels") or {}
    found = covering(ctx, pod_labels)
    if not found:
        return ["no PodDisruptionBudget covers the service's pods: a node drain can take them all at once"]
    selector = _deployment_selector(live)
    return [
        (
            f"PodDisruptionBudget {ctx.namespace}/{pdb['metadata']['name']} selects more than the pods of "
            f"{ctx.service} (its selector lacks some of the Deployment's labels), so it is not pinned to the live "
            "slot: the idle and retained slots' pods count toward it, and a drain may evict every live pod. Give the "
            "service a budget of its own, selecting at least its Deployment's labels"
        )
        if not specific_to(pdb, selector)
        else opt_in.not_lent_warning(
            "PodDisruptionBudget",
            ctx.namespace,
            pdb["metadata"]["name"],
            ctx.service,
            "counts the idle and retained slots' pods too, so a drain may evict every live pod",
        )
        for pdb in found
        if not specific_to(pdb, selector) or not opt_in.lent(pdb, ctx.service)
    ]


def unpinned(ctx: StepContext, slot: spec.Slot) -> list[Obj]:
    """The team budgets specific to this service and lent to it that are not pinned to ``slot``."""
    live = ctx.kube.get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, slot))
    if live is None:
        return []
    pod_labels = live["spec"]["template"].get("metadata", {}).get("labels") or {}
    selector = _deployment_selector(live)
    return [
        pdb
        for pdb in covering(ctx, pod_labels)
        # preflight says why the others are left alone
        if specific_to(pdb, selector)
        and opt_in.lent(pdb, ctx.service)
        and (pdb["spec"]["selector"].get("matchLabels") or {}).get(spec.SLOT_LABEL) != slot.value
    ]


def pin_to_live_slot(ctx: StepContext, slot: spec.Slot, record: str, step: str) -> int:
    """Pin every team budget specific to this service to ``slot``; returns how many it pinned."""
    pinned = 0
    for pdb in unpinned(ctx, slot):
        name = pdb["metadata"]["name"]

        def pin(current: Obj) -> bool:
            labels = current["spec"]["selector"].setdefault("matchLabels", {})
            if labels.get(spec.SLOT_LABEL) == slot.value:
                return False
            labels[spec.SLOT_LABEL] = slot.value
            return True

        pinned += move_with_traffic(
            ctx,
            PDBS,
            name,
            pin,
            record=record,
            step=step,
            moved=("budget-pinned", f"PodDisruptionBudget {name} now protects slot {slot.value}"),
            not_moved=f"PodDisruptionBudget {name} could not be pinned to slot {slot.value}",
        )
    return pinned


__all__ = ["budget_warnings", "covering", "pin_to_live_slot", "specific_to", "unpinned"]
