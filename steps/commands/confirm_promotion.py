"""``confirm-promotion``: after the promotion gate, go on only if a person promoted the run; the timeout fails it.

Argo resumes a suspend node whose ``duration`` has passed, exactly as if someone had pressed Resume. This step reads
how the wait ended (see :func:`steps.promotion.how_the_wait_ended`), writes who promoted the run and when into the
record, and exits 1 when nobody did, so the DAG fails before ``switch`` and the exit handler rolls back.
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
    record = ctx.records.get(args.record)
    decided = record.status.promotion if record and record.status else None
    workflow = kube.must_get(WORKFLOWS, ctx.namespace, args.workflow)
    outcome = promotion.how_the_wait_ended(workflow, args.timeout, decided)

    def settle(status: spec.DeploymentRecordStatus) -> None:
        current = status.promotion or spec.PromotionRecord(state=spec.PromotionState.waiting)
        if current.state is spec.PromotionState.waiting:
            status.promotion = current.model_copy(
                update={"state": outcome.state, "by": outcome.by, "at": outcome.at, "how": outcome.how}
                | ({"reason": outcome.reason} if outcome.reason else {})
            )

    ctx.records.modify_status(args.record, settle)
    if outcome.state is not spec.PromotionState.promoted:
        ctx.records.append(args.record, "confirm-promotion", "promotion-expired", outcome.reason)
        raise CheckFailed(f"{ctx.service}: {outcome.reason}; traffic stays on the live slot and the run rolls back")
    if outcome is not decided:
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
