"""``rollback``: put traffic back on the slot that served before, never onto an unavailable one.

Two triggers share the same restore:

* ``on-exit``: the deploy's exit handler, when the run did not succeed. It honours ``spec.rollbackOnFailure``,
  finds the run's record, restores the run's *from* slot if traffic had moved, retires the failed slot, and closes
  the record as ``RolledBack`` with the reason from ``{{workflow.failures}}``. A run that failed before it could
  open a record still gets one here, so no run goes unrecorded (I6).
* ``manual``: the one-click template. It opens its own record and moves traffic to the retained previous slot; when
  nothing is retained it fails with the image to redeploy. When the spec sets ``imagePolicy.reverifyOnRollback`` and
  this run has not verified the retained image yet, it only plans the cosign calls and reports ``deferred``; the
  template verifies the image and runs it again with ``--after-verification``. Without the flag the default path is
  the one Pod it always was.
"""

from __future__ import annotations

import argparse
import time

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, Output
from steps import (
    emergency_route,
    failures,
    gates,
    images,
    manual_rollback,
    retention,
    run_identity,
    slots,
    verification_plan,
)
from steps.announce import announce
from steps.clock import now
from steps.context import StepContext, record_name, write_outputs
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube
from steps.log import StepLog
from steps.metrics import RunMetrics
from steps.records import Records
from steps.restore import reinstate_retained, restore_traffic, retire_slot
from steps.service_state import add_history, update_status
from steps.workflows import RunState, run_state


def _finish(
    ctx: StepContext,
    record: str,
    workflow: str,
    image: str,
    phase: spec.Phase,
    reason: str,
    active: spec.Slot | None,
    active_image: str | None,
    keep_rollback_target: bool = False,
) -> None:
    def closed(status: spec.BlueGreenDeploymentStatus) -> None:
        status.phase = phase
        if status.workflow == workflow:
            status.workflow = None
        status.target_slot = None
        if active is not None:
            if status.active_slot is not active:
                status.active_slot = active
                status.active_image = active_image
            if not keep_rollback_target:
                # The other slot holds a failed or abandoned version: no rollback target any more.
                status.previous_slot = None
                status.previous_image = None
                status.retain_until = None
        add_history(
            status,
            spec.HistoryEntry(
                record=record,
                workflow=workflow,
                image=image,
                outcome=phase.value,
                finished_at=now(),
                reason=reason[:300],
            ),
        )

    update_status(ctx.kube, ctx.namespace, ctx.service, closed)
    ctx.records.close(record, phase, reason)
    stage = spec.Stage.rolled_back if phase is spec.Phase.rolled_back else spec.Stage.failed
    announce(ctx, stage, record, phase.value)


def _observe_rollback(ctx: StepContext, started: float) -> None:
    metrics = RunMetrics.from_env(ctx.service)
    metrics.observe_rollback(time.monotonic() - started)
    metrics.push()


def _record_for_failed_start(kube: Kube, args: argparse.Namespace, reason: str) -> int:
    """The run failed before preflight opened a record (bad input, missing spec): record that it happened."""
    log = StepLog("rollback", args.service)
    records = Records(kube, args.namespace, args.service, log)
    name = record_name(args.workflow)
    records.open(
        name,
        spec.DeploymentRecordSpec(
            service=args.service,
            workflow=args.workflow,
            image="",
            reason="run failed before it started",
            started_at=now(),
        ),
    )
    records.close(name, spec.Phase.failed, reason or "the run failed before preflight opened its record")
    log("nothing-to-roll-back", record=name, reason=reason)
    return 0


def retain_previous_after_switch(ctx: StepContext, record: str, from_slot: spec.Slot, to_slot: spec.Slot) -> None:
    """A run that failed after its switch, left as it is: the known-good previous slot keeps its retention window.

    Without the stamp the next cleanup sweep would count the previous slot as expired and delete the one version
    known to work, exactly when someone may want to roll back to it by hand.
    """
    if ctx.router.live_slot() is not to_slot:
        return
    name = slots.deployment_name(ctx.service, from_slot)
    if ctx.kube.get(DEPLOYMENTS, ctx.namespace, name) is None:
        return
    until = retention.until(ctx.resource.spec.retain_previous_version)
    ctx.kube.merge_patch(
        DEPLOYMENTS, ctx.namespace, name, {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: until}}}
    )

    def retained(status: spec.BlueGreenDeploymentStatus) -> None:
        status.previous_slot = from_slot
        status.retain_until = until

    update_status(ctx.kube, ctx.namespace, ctx.service, retained)
    ctx.records.append(record, "rollback", "retained", f"{name} kept warm until {until} for a manual rollback")


def on_exit(kube: Kube, args: argparse.Namespace) -> int:
    """Roll back the run named by ``--workflow`` after it failed."""
    started = time.monotonic()
    reason = failures.reason(args.failures, f"workflow ended {args.workflow_status or 'unsuccessfully'}")
    name = record_name(args.workflow)
    if Records(kube, args.namespace, args.service, StepLog("rollback", args.service)).get(name) is None:
        return _record_for_failed_start(kube, args, reason)
    ctx = StepContext.open(kube, args.namespace, args.service, "rollback")
    record = ctx.records.get(name)
    assert record is not None
    if record.status is not None and record.status.finished_at:
        ctx.log("already-closed", record=name)
        return 0
    if not run_identity.same_workflow(record):
        # A workflow that reused a deleted run's name, refused at its first step: that run's record, hold and slots
        # are not this one's to close or restore. The repair cron finishes the deleted run.
        ctx.log(
            "not-this-run", record=name, recorded_uid=record.spec.workflow_uid, uid=run_identity.pod_workflow_uid()
        )
        return 0
    from_slot, to_slot = record.spec.from_slot, record.spec.to_slot
    if from_slot is None or to_slot is None:
        raise CheckFailed(f"DeploymentRecord {ctx.namespace}/{name} names no slots; restore traffic by hand")
    holder = ctx.status
    if holder.record != name and holder.workflow != args.workflow:
        # Someone took the service from this run (an emergency route with --force, say), or the run failed before
        # it took it: the traffic and the slots are no longer this run's to restore.
        superseded = f"{reason}; the service is held by {holder.workflow or holder.record or 'no run'}, so this run "
        superseded += "left traffic and slots as they are"
        ctx.records.close(name, spec.Phase.failed, superseded)
        ctx.log("not-holding", record=name, holder=holder.workflow or "", holder_record=holder.record or "")
        return 0
    if not ctx.resource.spec.rollback_on_failure:
        ctx.records.append(name, "rollback", "skipped", "spec.rollbackOnFailure is false: traffic left as it is")
        retain_previous_after_switch(ctx, name, from_slot, to_slot)
        _finish(
            ctx,
            name,
            args.workflow,
            record.spec.image,
            spec.Phase.failed,
            f"{reason}; not rolled back (spec.rollbackOnFailure is false)",
            None,
            None,
        )
        return 0
    verification = record.status.verification if record.status is not None else None
    if record.status is not None and verification is not None and not verification.passed:
        # verify-image refused the image after preflight finished and before deploy-green: no slot was written.
        ctx.records.append(
            name,
            "rollback",
            "nothing-to-roll-back",
            f"the image was refused before any slot changed; traffic stays on {from_slot.value}",
        )
        # The refusal itself, not Argo's list of failed nodes, which also names each refused cosign call.
        refusal = next((e.message for e in reversed(record.status.entries) if e.event == "image-refused"), reason)
        _finish(ctx, name, args.workflow, record.spec.image, spec.Phase.failed, refusal, None, None)
        return 0
    ctx.records.set_phase(name, spec.Phase.rolling_back)
    live = ctx.router.live_slot()
    if live is from_slot:
        ctx.records.append(name, "rollback", "traffic-unchanged", f"traffic never left {from_slot.value}")
        image = slots.current_image(
            kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, from_slot)),
            ctx.resource.spec.container,
        )
    else:
        image, _ = restore_traffic(ctx, from_slot, name, "rollback")
    retained = ctx.status
    keeps_rollback_target = (
        live is from_slot
        and retained.previous_slot is to_slot
        and bool(retained.previous_image)
        and not retention.has_expired(retained.retain_until)
    )
    if keeps_rollback_target:
        assert retained.previous_image is not None and retained.retain_until is not None
        # A slot gone since (recreated for a new selector, or deleted by hand) is no rollback target any more.
        keeps_rollback_target = reinstate_retained(
            ctx, to_slot, retained.previous_image, retained.retain_until, name, "rollback"
        )
    elif kube.get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, to_slot)) is not None:
        retire_slot(ctx, to_slot, name, "rollback")
    _finish(
        ctx,
        name,
        args.workflow,
        record.spec.image,
        spec.Phase.rolled_back,
        reason,
        from_slot,
        image,
        keep_rollback_target=keeps_rollback_target,
    )
    ctx.records.event("RolledBack", f"traffic on slot {from_slot.value} ({image}): {reason}", warning=True)
    _observe_rollback(ctx, started)
    return 0


def _verified(ctx: StepContext, record: str, to: manual_rollback.RollbackTarget) -> bool:
    found = ctx.records.get(record)
    return found is not None and not gates.unpassed(found, to.target, to.image, [spec.Gate.image_verification])


def _defer_for_verification(
    ctx: StepContext, args: argparse.Namespace, record: str, to: manual_rollback.RollbackTarget
) -> int:
    """Plan the retained image's re-verification and move no traffic; the template verifies, then runs us again."""
    if images.parse(to.image).digest is None:
        raise BadInput(
            f"BlueGreenDeployment {ctx.namespace}/{ctx.service} sets spec.imagePolicy.reverifyOnRollback, but the "
            f"retained image {to.image} is not pinned by digest, so what runs cannot be verified again; redeploy "
            "the version you want by digest with blue-green-deploy"
        )
    calls = verification_plan.for_policy(
        ctx.kube, ctx.namespace, ctx.service, ctx.resource.spec.image_policy, to.image
    )
    ctx.records.append(record, "rollback", "verification-planned", f"verifying {to.image} again before traffic moves")
    write_outputs(
        args.output_dir,
        {
            Output.deferred: "true",
            Output.record: record,
            Output.target_slot: to.target.value,
            Output.image: to.image,
            Output.verification_plan: verification_plan.encode(calls),
            Output.verification_calls: verification_plan.encode_indexes(calls),
        },
    )
    ctx.log("rollback-deferred", record=record, image=to.image, calls=len(calls))
    return 0


def manual(kube: Kube, args: argparse.Namespace) -> int:
    """Move traffic to the retained previous slot on request."""
    started = time.monotonic()
    ctx = StepContext.open(kube, args.namespace, args.service, "rollback")
    route = emergency_route.open_route(ctx)
    if route is not None:
        raise CheckFailed(emergency_route.held_by_route_message(ctx, route))
    holder = ctx.status.workflow
    if holder and holder != args.workflow and run_state(kube, ctx.namespace, holder) is RunState.running:
        raise CheckFailed(
            f"BlueGreenDeployment {ctx.namespace}/{ctx.service} is held by running workflow {holder}; wait for it or "
            f"stop it (argo stop {holder}), then roll back"
        )
    to = manual_rollback.retained_target(ctx)
    name = manual_rollback.open_record(ctx, args.workflow, args.reason, args.triggered_by, to)
    live, target = to.live, to.target
    policy = ctx.resource.spec.image_policy
    if policy.reverify_on_rollback and policy.signature is not None:
        if args.after_verification:
            gates.require_verified(ctx, name, target, to.image)
        elif not _verified(ctx, name, to):
            return _defer_for_verification(ctx, args, name, to)

    def held(current: spec.BlueGreenDeploymentStatus) -> None:
        # Whoever took the service since the check above (a cleanup sweep removing this very slot, say) keeps it.
        if current.workflow not in (None, args.workflow, holder):
            raise CheckFailed(
                f"BlueGreenDeployment {ctx.namespace}/{ctx.service} was taken by {current.workflow} while the "
                "rollback checked it; traffic stays where it is, run the rollback again"
            )
        current.workflow = args.workflow
        current.record = name

    try:
        update_status(kube, ctx.namespace, ctx.service, held)
    except CheckFailed as taken:
        ctx.records.close(name, spec.Phase.failed, str(taken))
        raise
    image, _ = restore_traffic(ctx, target, name, "rollback")
    retire_slot(ctx, live, name, "rollback")
    _finish(ctx, name, args.workflow, image, spec.Phase.rolled_back, args.reason or "manual rollback", target, image)
    ctx.records.event("RolledBack", f"traffic back on slot {target.value} ({image}) by request", warning=True)
    _observe_rollback(ctx, started)
    return 0


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The rollback step."""
    return on_exit(kube, args) if args.trigger == "on-exit" else manual(kube, args)


__all__ = ["run"]
