"""Moving all of a service's traffic to one slot: the one way the switch, every rollback and the route do it.

The order is the promise. The intent goes into the status first (invariant I3), so a crash at any later point can be
finished or undone by whoever finds it; then the router moves all traffic in one update and reads it back; then the
autoscaler and the disruption budget follow the slot that now serves; and last the data plane is waited on, because
a route is done when clients reach the slot, not when an object says so.

Callers differ in one thing only, which each states: whether the data plane's lag fails the move. A switch fails,
so the exit handler puts traffic back while the previous version is still warm. A rollback or a route only warns:
the route already names their slot, and failing would leave a run that cannot be repaired by running it again, since
a re-run finds traffic already moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bluegreen_spec as spec
from steps import autoscaling, disruption
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.routing.base import PROPAGATION_TIMEOUT_SECONDS
from steps.service_state import update_status


@dataclass(frozen=True)
class Moved:
    """What a move did."""

    #: Whether the route object changed (False when it already sent everything to the slot).
    changed: bool
    #: How the data plane confirmed the move, or empty when it had not within the timeout (a warning was recorded).
    propagation: str


def move_all_traffic(
    ctx: StepContext,
    slot: spec.Slot,
    record: str,
    step: str,
    *,
    intent: spec.Phase,
    describe_intent: str,
    lag_fails: bool,
    hold: Callable[[spec.BlueGreenDeploymentStatus], None] | None = None,
) -> Moved:
    """Record the intent, route everything to ``slot``, read it back, move the HPA and PDB, wait for the data plane.

    ``intent`` is the phase the status takes before the route changes; ``hold`` lets a caller that takes the service
    (the route) name itself in the same write. With ``lag_fails`` a data plane that has not followed within the
    propagation timeout fails the step; otherwise that is a warning in the record.
    """

    def write_intent(status: spec.BlueGreenDeploymentStatus) -> None:
        status.phase = intent
        status.target_slot = slot
        if hold is not None:
            hold(status)

    update_status(ctx.kube, ctx.namespace, ctx.service, write_intent)
    ctx.records.append(record, step, "intent", describe_intent)
    changed = ctx.router.point_to(slot)
    ctx.router.verify(slot)
    autoscaling.follow_live_slot(ctx, slot, record, step)
    disruption.pin_to_live_slot(ctx, slot, record, step)
    if lag_fails:
        return Moved(changed, ctx.router.wait_propagated(slot, PROPAGATION_TIMEOUT_SECONDS))
    try:
        how = ctx.router.wait_propagated(slot, PROPAGATION_TIMEOUT_SECONDS)
    except CheckFailed as slow:
        ctx.records.append(record, step, "warning", f"traffic routed to {slot.value}, not yet propagated: {slow}")
        ctx.log("warning", message=str(slow))
        return Moved(changed, "")
    ctx.log("propagated", slot=slot.value, how=how)
    return Moved(changed, how)


__all__ = ["Moved", "move_all_traffic"]
