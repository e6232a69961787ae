"""``notify``: the run's summary to Slack and the webhook, and its metrics to the Pushgateway. Never fails the run.

Delivery results go into the run's record, so a notification that did not arrive is visible in the audit trail.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from steps import failures, run_identity
from steps.announce import run_message
from steps.context import StepContext, record_name
from steps.errors import StepError
from steps.kube import Kube
from steps.log import StepLog
from steps.metrics import RunMetrics
from steps.notifier import Notifier


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The notify step."""
    log = StepLog("notify", args.service)
    try:
        ctx = StepContext.open(kube, args.namespace, args.service, "notify")
    except StepError as error:
        log("notify-skipped", reason=str(error))
        return 0
    name = record_name(args.workflow)
    record = ctx.records.get(name)
    if record is not None and not run_identity.same_workflow(record):
        # A workflow that reused a deleted run's name: that run's record and its notifications are not this one's.
        log("not-this-run", record=name, recorded_uid=record.spec.workflow_uid, uid=run_identity.pod_workflow_uid())
        return 0
    record_status = (record.status if record else None) or spec.DeploymentRecordStatus()
    outcome = record_status.outcome or args.workflow_status or "Unknown"
    message = run_message(ctx, name, outcome, failures.reason(args.failures))
    deliveries = Notifier.from_env(ctx.resource.spec.notifications).send_summary(message)
    metrics = RunMetrics.from_env(ctx.service)
    metrics.record_run(outcome)
    pushed = metrics.push()
    outcomes = [d.to_record() for d in deliveries] + ([pushed.to_record()] if pushed else [])
    for details in outcomes:
        log("delivery", **details)
        if record is not None:
            ctx.records.append(name, "notify", "delivery", "", **details)
    if record is None:
        log("no-record", record=name, outcome=outcome)
    elif not record_status.finished_at:
        # The run ended without any step closing its record (e.g. it failed and rollback is off): close it now.
        ctx.records.close(name, spec.Phase.failed if outcome != "Succeeded" else spec.Phase.succeeded, message.reason)
    return 0


__all__ = ["run"]
