"""What a manual rollback rolls back to, and its record.

A manual rollback may run twice in one workflow (once to plan the retained image's re-verification, once after it),
so the record is opened idempotently, named after the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import slots
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
    live_deployment = ctx.kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, live))
    return RollbackTarget(
        live=live,
        target=target,
        image=slots.current_image(target_deployment, ctx.resource.spec.container),
        live_image=slots.current_image(live_deployment, ctx.resource.spec.container),
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


__all__ = ["RollbackTarget", "open_record", "retained_target"]
