"""An emergency route's hold on a service: ``kubectl bluegreen route`` takes the service like a run does.

A route is what an operator reaches for when a workflow is stuck or gone, so it cannot leave the service to that
workflow: it names itself in ``status.workflow`` and its record in ``status.record`` for as long as it moves
traffic. Nothing but the route itself may then finish or undo it: preflight refuses to start a deploy, the repair
cron does not take it for an abandoned run (which would send traffic back to the slot the operator moved away from,
and scale the good one to zero), and an exit handler of a run the route forced aside leaves the traffic alone. An
interrupted route is finished by running the same command again.
"""

from __future__ import annotations

import bluegreen_spec as spec
from steps.context import StepContext

#: Each route's made-up run name starts so; its record is named like a run's, so history lists it with the others.
RUN_PREFIX = "kubectl-bluegreen-route-"


def is_route(workflow: str | None) -> bool:
    """Whether a run name is an emergency route's rather than an Argo workflow's."""
    return bool(workflow) and str(workflow).startswith(RUN_PREFIX)


def open_route(ctx: StepContext) -> spec.DeploymentRecord | None:
    """The record of a route that still holds the service (its status names it and it is not closed), or None."""
    status = ctx.status
    if not status.record or not (is_route(status.workflow) or status.phase is spec.Phase.switching):
        return None
    record = ctx.records.get(status.record)
    if record is None or not is_route(record.spec.workflow):
        return None
    return None if record.status is not None and record.status.finished_at else record


def finish_command(ctx: StepContext, record: spec.DeploymentRecord) -> str:
    """The command that finishes an interrupted route, as the operator types it."""
    target = record.spec.to_slot.value if record.spec.to_slot else "<slot>"
    return f"kubectl bluegreen route {ctx.service} --to {target} -n {ctx.namespace}"


def held_by_route_message(ctx: StepContext, record: spec.DeploymentRecord) -> str:
    """Why nothing else may act on the service while ``record``'s route is open, and what to do."""
    target = record.spec.to_slot.value if record.spec.to_slot else "nothing"
    return (
        f"BlueGreenDeployment {ctx.namespace}/{ctx.service} is held by an emergency route to slot {target} "
        f"(record {record.metadata.name}, by {record.spec.triggered_by or 'someone'}) that has not finished; "
        f"finish it with `{finish_command(ctx, record)}`, then try again"
    )


__all__ = ["RUN_PREFIX", "finish_command", "held_by_route_message", "is_route", "open_route"]
