"""``await-promotion``: before a manual run suspends, leave in its record what a person needs to decide, and tell them.

The record already holds the probe and smoke results; this step adds the preview URL where the new version can be
tried, how long the run waits, and a ``Waiting`` promotion state, then sends the ``awaiting-promotion``
notification. Running it again rewrites the same waiting state (invariant I4) and keeps a decision already made.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from steps import promotion
from steps.announce import announce
from steps.commands.smoke import preview_url as preview_service_url
from steps.context import StepContext
from steps.kube import Kube


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The await-promotion step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "await-promotion")
    preview_url = preview_service_url(ctx)
    waiting = promotion.waiting_record(preview_url, args.timeout)

    def wait(status: spec.DeploymentRecordStatus) -> None:
        if status.promotion is None or status.promotion.state is spec.PromotionState.waiting:
            status.promotion = waiting

    ctx.records.modify_status(args.record, wait)
    message = (
        f"slot {args.slot} passed probe and smoke and waits up to {args.timeout}s for promotion; try it at "
        f"{preview_url}, then `kubectl bluegreen promote {ctx.service}` (or Resume in the Argo UI), or "
        f"`kubectl bluegreen abort {ctx.service}` to roll back"
    )
    ctx.records.append(args.record, "await-promotion", "awaiting-promotion", message, preview_url=preview_url)
    ctx.records.event("AwaitingPromotion", message)
    announce(ctx, spec.Stage.awaiting_promotion, args.record, reason=message)
    ctx.log("awaiting-promotion", preview_url=preview_url, timeout_seconds=args.timeout)
    return 0


__all__ = ["run"]
