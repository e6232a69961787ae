"""What a manual rollback rolls back to, and its record.

A manual rollback may run twice in one workflow (once to plan the retained image's re-verification, once after it),
so the record is opened idempotently, named after the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import retention, slots
from steps.clock import now
from steps.context import StepContext, record_name
from steps.errors import CheckFailed
from steps.kube import Obj


@dataclass(frozen=True)
class RollbackTarget:
    """The live slot, the retained slot traffic goes back to, and the image that slot runs."""

    live: spec.Slot
    target: spec.Slot
    image: str
    live_image: str


def retained_target(ctx: StepContext) -> RollbackTarget:
    """The retained previous slot; :class:`CheckFailed` naming the image to redeploy when there is none."""
    live = ctx.router.live_slot()
    if live is None:
        raise CheckFailed(f"{ctx.router.describe()} routes nowhere, so there is nothing to roll back from")
    target = live.other
    status = ctx.status
    target_deployment: Obj | None = ctx.kube.get(
        DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, target)
    )
    if status.previous_slot is not target or target_deployment is None:
        redeploy = status.previous_image or "the last good image (see `bluegreen-step history`)"
        raise CheckFailed(
            f"{ctx.service} has no retained previous version to roll back to; redeploy {redeploy} "
            "with blue-green-deploy"
        )
    image = slots.current_image(target_deployment, ctx.resource.spec.container)
    check_retained(ctx, target, target_deployment, image)
    live_deployment = ctx.kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, live))
    return RollbackTarget(
        live=live,
        target=target,
        image=image,
        live_image=slots.current_image(live_deployment, ctx.resource.spec.container),
    )


def check_retained(ctx: StepContext, target: spec.Slot, deployment: Obj, image: str) -> None:
    """Refuse, before any write, a retained slot whose retention window has passed.

    The window is what a one-click rollback promises: until it ends the slot is kept as it served, and nothing
    removes it. After it, the cleanup sweep may be scaling the slot down or deleting it at this very moment, and
    traffic moved there could land on pods that are going away. So, as Argo Rollouts does outside its
    rollbackWindow, the way back from there is a full deploy of the previous image, which runs preflight, the image
    policy, the probe and the smoke tests before any traffic moves. The stamp is read from the slot's Deployment,
    where the cleanup reads it too, so the two decide on the same time.
    """
    stamp = retention.stamp_of(deployment)
    if not retention.has_expired(stamp):
        return
    name = deployment["metadata"]["name"]
    kept = f"was retained until {stamp}, which has passed" if stamp else "carries no retain-until stamp"
    raise CheckFailed(
        f"the previous version of {ctx.service} (slot {target.value}, Deployment {ctx.namespace}/{name}, {image}) "
        f"{kept}: the cleanup may be removing it, so it is no rollback target any more and nothing was changed; "
        f"redeploy {image} with blue-green-deploy (its checks run again), and raise spec.retainPreviousVersion "
        "if rollbacks need a longer window"
    )


def open_record(ctx: StepContext, workflow: str, reason: str, triggered_by: str, to: RollbackTarget) -> str:
    """Open the rollback's record (idempotent: named after the workflow) in phase RollingBack; returns its name."""
    name = record_name(workflow)
    ctx.records.open(
        name,
        spec.DeploymentRecordSpec(
            service=ctx.service,
            workflow=workflow,
            image=to.image,
            previous_image=to.live_image,
            from_slot=to.live,
            to_slot=to.target,
            triggered_by=triggered_by,
            reason=reason or "manual rollback",
            started_at=now(),
        ),
    )
    ctx.records.set_phase(name, spec.Phase.rolling_back)
    return name


__all__ = ["RollbackTarget", "check_retained", "open_record", "retained_target"]
