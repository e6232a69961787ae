"""Stage messages: each step announces its own moment of the run through the same notifier as the summary.

A stage message must never hold a deploy up, so it gets a short retry budget; what happened to it goes into the
run's record either way.
"""

from __future__ import annotations

from datetime import UTC, datetime

import bluegreen_spec as spec
from steps.clock import parse_timestamp
from steps.context import StepContext
from steps.notifier import DeliveryRetryPolicy, Notifier, RunMessage

STAGE_RETRY = DeliveryRetryPolicy(
    max_attempts=2, first_backoff_seconds=0.5, total_seconds=5.0, request_timeout_seconds=3.0
)


def seconds_since(stamp: str | None) -> float:
    """Seconds from an API timestamp to now; 0 when there is none."""
    started = parse_timestamp(stamp)
    if started is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - started).total_seconds())


def run_message(ctx: StepContext, record_name: str, outcome: str, reason: str = "") -> RunMessage:
    """The facts of the run as its record has them."""
    record = ctx.records.get(record_name)
    if record is None:
        return RunMessage(ctx.service, ctx.namespace, record_name, outcome, None, "", 0.0, reason)
    return RunMessage(
        service=ctx.service,
        namespace=ctx.namespace,
        workflow=record.spec.workflow,
        outcome=outcome,
        old_image=record.spec.previous_image,
        new_image=record.spec.image,
        duration_seconds=seconds_since(record.spec.started_at),
        reason=reason or (record.status.reason if record.status else ""),
        triggered_by=record.spec.triggered_by,
    )


def announce(
    ctx: StepContext, stage: spec.Stage, record_name: str, outcome: str = "Running", reason: str = ""
) -> None:
    """Send ``stage`` if the spec asks for it (or it asks a person to act), and record how delivery went."""
    notifier = Notifier.from_env(ctx.resource.spec.notifications, retry=STAGE_RETRY)
    for result in notifier.send_stage(stage, run_message(ctx, record_name, outcome, reason)):
        ctx.records.append(record_name, ctx.log.step, "stage-notification", stage.value, **result.to_record())


__all__ = ["announce", "run_message", "seconds_since"]
