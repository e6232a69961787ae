"""``retain``: keep the previous slot warm until its retention window ends, then close the run as Succeeded."""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import gates, retention, slots
from steps.announce import announce
from steps.clock import now
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Kube
from steps.service_state import add_history, update_status


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The retain step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "retain")
    # Closing a run as Succeeded releases its service and keeps its version live: only the run itself may.
    left = "the run was left as it is"
    gates.require_own_record(ctx, args.record, left)
    record = gates.require_run_record(ctx, args.record, left)
    if record is None:
        raise CheckFailed(f"DeploymentRecord {ctx.namespace}/{args.record} does not exist; run the pipeline again")
    if record.status is not None and record.status.finished_at:
        # A retried attempt after this step closed the run: the service may belong to the next run by now.
        ctx.log("already-closed", record=args.record, outcome=record.status.outcome)
        if record.status.outcome != spec.Phase.succeeded.value:
            raise CheckFailed(
                f"DeploymentRecord {ctx.namespace}/{args.record} was closed as {record.status.outcome}: "
                f"{record.status.reason or 'no reason given'}"
            )
        return 0
    if ctx.status.record != args.record:
        raise CheckFailed(
            f"BlueGreenDeployment {ctx.namespace}/{ctx.service} is held by record {ctx.status.record or 'none'}, not "
            f"this run's {args.record}; it was taken over, so this run cannot close as Succeeded"
        )
    previous = record.spec.from_slot
    if previous is None:
        raise CheckFailed(f"DeploymentRecord {ctx.namespace}/{args.record} names no slot the run started from")
    live = ctx.router.live_slot()
    if live is previous or live is None:
        raise CheckFailed(
            f"traffic of {ctx.service} is on {live.value if live else 'nothing'}, not the new slot; "
            "the switch did not hold, so the run cannot succeed"
        )
    until = retention.until(ctx.resource.spec.retain_previous_version)
    name = slots.deployment_name(ctx.service, previous)
    previous_deployment = kube.get(DEPLOYMENTS, ctx.namespace, name)
    if previous_deployment is not None:
        kube.merge_patch(
            DEPLOYMENTS, ctx.namespace, name, {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: until}}}
        )
        ctx.records.append(
            args.record,
            "retain",
            "retained",
            f"{name} kept warm until {until}",
            replicas=previous_deployment["spec"].get("replicas", 0),
        )

    def succeeded(status: spec.BlueGreenDeploymentStatus) -> None:
        status.retain_until = until if previous_deployment is not None else None
        if previous_deployment is None:
            status.previous_slot = None
            status.previous_image = None
        status.phase = spec.Phase.succeeded
        status.workflow = None
        status.target_slot = None
        add_history(
            status,
            spec.HistoryEntry(
                record=args.record,
                workflow=record.spec.workflow,
                image=record.spec.image,
                outcome=spec.Phase.succeeded.value,
                started_at=record.spec.started_at,
                finished_at=now(),
            ),
        )

    update_status(kube, ctx.namespace, ctx.service, succeeded)
    ctx.records.close(args.record, spec.Phase.succeeded)
    ctx.records.event(
        "Succeeded",
        f"{record.spec.image} is live on slot {live.value}; slot {previous.value} retained until {until}",
    )
    announce(ctx, spec.Stage.succeeded, args.record, spec.Phase.succeeded.value)
    ctx.records.prune(ctx.resource.spec.history_limit)
    return 0


__all__ = ["run"]
