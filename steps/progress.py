"""How far a run got, as its record says: what a retried step reads instead of re-deriving the run's choices.

Argo retries a step whose Pod errored (a node drain, a lost node, ``kubectl delete pod``), and a retried release Pod
starts its set again at preflight. The live route is no guide by then: after the switch it names the new slot, and a
preflight that picked "the idle slot" from it would deploy over the version the run must keep warm. So the record,
named after the workflow, is the run's memory: preflight resumes from its slots and image, and the steps before the
switch find, in its ``switchedAt``, that their work is done.
"""

from __future__ import annotations

from dataclasses import dataclass

import bluegreen_spec as spec
from steps import run_identity
from steps.context import StepContext
from steps.errors import CheckFailed


@dataclass(frozen=True)
class Resumed:
    """The choices a run made before its Pod was lost."""

    from_slot: spec.Slot
    to_slot: spec.Slot
    image: str
    previous_image: str


def resumed_choices(ctx: StepContext, record: spec.DeploymentRecord) -> Resumed:
    """The slots and image an earlier attempt of this run recorded; a closed or incomplete record ends the run."""
    where = f"DeploymentRecord {ctx.namespace}/{record.metadata.name}"
    run_identity.require_same_workflow(record, where, "nothing was written")
    status = record.status
    if status is not None and status.finished_at:
        raise CheckFailed(
            f"{where} of this workflow is already closed ({status.outcome or status.phase.value}): either this is a "
            "retried attempt of a run that has ended, which changes nothing, or a new workflow reuses the name of one "
            "that ran; submit the deploy as a new workflow (argo submit names each one from generateName)"
        )
    if record.spec.from_slot is None or record.spec.to_slot is None:
        raise CheckFailed(
            f"{where} names no slots (spec.fromSlot, spec.toSlot), so a retried step cannot tell which slot this run "
            "deploys to; submit a new run"
        )
    return Resumed(
        from_slot=record.spec.from_slot,
        to_slot=record.spec.to_slot,
        image=record.spec.image,
        previous_image=record.spec.previous_image or "",
    )


def traffic_moved_by_run(ctx: StepContext, record_name: str, slot: spec.Slot) -> str:
    """Whether this run's switch already sent the traffic to ``slot``: when it finished, or ``"interrupted"``.

    Empty when it did not, or the route no longer says so. A switch interrupted after the route changed and before
    it recorded the time leaves only its intent: the status names this run's record, phase ``Switching`` and the
    slot as target. The steps before the switch then have nothing left to do, and the switch finishes.
    """
    record = ctx.records.get(record_name) if record_name else None
    if record is None or record.status is None or record.status.finished_at:
        return ""
    if record.spec.to_slot is not slot or ctx.router.live_slot() is not slot:
        return ""
    if record.status.switched_at:
        return record.status.switched_at
    status = ctx.status
    if status.record == record_name and status.phase is spec.Phase.switching and status.target_slot is slot:
        return "interrupted"
    return ""


def done_after_switch(ctx: StepContext, record_name: str, slot: spec.Slot, *, finished_only: bool = False) -> str:
    """For a step up to the switch: when this run already moved traffic to ``slot``, say so in the record and log.

    Returns when the switch happened (``"interrupted"`` for a switch that moved traffic and did not finish), or empty
    when the step still has its work to do. The switch itself passes ``finished_only``: it redoes an interrupted
    switch, whose every write is idempotent, so that the run ends with the status and record a switch leaves.
    """
    moved = traffic_moved_by_run(ctx, record_name, slot)
    if moved == "interrupted" and finished_only:
        return ""
    if moved:
        when = "by a switch that was interrupted" if moved == "interrupted" else f"at {moved}"
        message = f"this run moved all traffic to slot {slot.value} {when}; {ctx.log.step} has nothing to do"
        ctx.records.append(record_name, ctx.log.step, "already-switched", message)
        ctx.log("already-switched", slot=slot.value, switched=moved)
    return moved


__all__ = ["Resumed", "done_after_switch", "resumed_choices", "traffic_moved_by_run"]
