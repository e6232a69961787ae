"""``confirm-promotion``: after the promotion gate, go on only if a person promoted the run; the timeout fails it.

Argo resumes a suspend node whose ``duration`` has passed, exactly as if someone had pressed Resume. This step is the
one judge of how the wait ended (see :func:`steps.promotion.how_the_wait_ended`): a recorded abort fails the run
whatever the node says, a node that reached its duration fails it whatever the record claims, and only a node a
person resumed goes on. It writes the judgement into the record, replacing a claimed promotion the node does not back,
and exits 1 unless the run was promoted, so the DAG fails before ``switch`` and the exit handler rolls back. A run
whose record was closed, or whose service's status names another record (a forced ``kubectl bluegreen route`` took
the service while it waited), fails too, and nothing is written into a record that is not its own open one.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import WORKFLOWS
from steps import promotion
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Kube


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The confirm-promotion step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "confirm-promotion")
    taken = ctx.status.record
    if taken and taken != args.record:
        # A forced `kubectl bluegreen route` (or another run) took the service while this run waited: a resume now
        # would switch traffic away from what the service's status says it holds. Nothing of the other run is written.
        raise CheckFailed(
            f"{ctx.service}: the service's status names the record {taken}, not this run's {args.record}: something "
            "else (a forced `kubectl bluegreen route`, for one) took the service over while the run waited, so the "
            "run does not switch"
        )
    record = ctx.records.get(args.record)
    decided = record.status.promotion if record and record.status else None
    workflow = kube.must_get(WORKFLOWS, ctx.namespace, args.workflow)
    outcome = promotion.how_the_wait_ended(workflow, args.timeout, decided)
    # An abort recorded after the first read still wins: the write below reads the record again and keeps it.
    aborted: list[spec.PromotionRecord] = []
    replaced: list[spec.PromotionRecord] = []
    closed: list[str] = []

    def settle(status: spec.DeploymentRecordStatus) -> None:
        if status.finished_at:
            # Something ended this run's record while the run waited; a closed record is not written again, and a run
            # whose record is over does not go on to switch.
            closed.append(status.finished_at)
            return
        current = status.promotion or spec.PromotionRecord(state=spec.PromotionState.waiting)
        if current.state is spec.PromotionState.aborted:
            aborted.append(current)
            return
        if (current.state, current.by, current.how) == (outcome.state, outcome.by, outcome.how):
            return
        replaced.append(current)
        status.promotion = current.model_copy(
            update={
                "state": outcome.state,
                "by": outcome.by,
                "at": outcome.at,
                "how": outcome.how,
                "reason": outcome.reason,
            }
        )

    ctx.records.modify_status(args.record, settle)
    if closed:
        raise CheckFailed(
            f"{ctx.service}: the record {ctx.namespace}/{args.record} of this run was closed at {closed[0]} while the "
            f"run waited for promotion, so the run does not switch; `kubectl bluegreen history {ctx.service}` shows "
            "what closed it"
        )
    if aborted:
        outcome = aborted[-1]
        message = (
            f"aborted by {outcome.by} at {outcome.at}"
            + (f": {outcome.reason}" if outcome.reason else "")
            + "; a recorded abort ends the run whatever the promotion gate's node says"
        )
        ctx.records.append(args.record, "confirm-promotion", "promotion-aborted", message, by=outcome.by)
        raise CheckFailed(f"{ctx.service}: {message}; traffic stays on the live slot and the run rolls back")
    if outcome.state is not spec.PromotionState.promoted:
        ctx.records.append(args.record, "confirm-promotion", "promotion-expired", outcome.reason)
        raise CheckFailed(f"{ctx.service}: {outcome.reason}; traffic stays on the live slot and the run rolls back")
    if replaced:
        ctx.records.append(
            args.record,
            "confirm-promotion",
            "promoted",
            f"promoted by {outcome.by} via {outcome.how}",
            by=outcome.by,
            how=outcome.how,
        )
    ctx.log("promotion-confirmed", by=outcome.by, how=outcome.how, at=outcome.at)
    return 0


__all__ = ["run"]
