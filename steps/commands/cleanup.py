"""``cleanup``: repair runs that died without their exit handler, re-aim what a sync reset, remove expired slots.

For one service (the last step of a deploy) or every managed service in the namespace (the CronWorkflow). A sweep
reads each kind once per namespace; before it reroutes or removes anything for a service it forgets those reads and
re-reads the live route and the service's status itself, because a stale view must never cost a live or retained
slot (invariant I2). A service whose run is still going is left alone.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import bluegreen_spec as spec
from bluegreen_contract import (
    BLUE_GREEN_DEPLOYMENTS,
    DEPLOYMENT_RECORDS,
    DEPLOYMENTS,
    HPAS,
    PDBS,
    RUN_WORKFLOW_ENV,
    WORKFLOWS,
    Output,
)
from steps import autoscaling, disruption, emergency_route, retention, slots
from steps.adoption import interrupted_original, scale_original_down_again
from steps.clock import now
from steps.context import StepContext, write_outputs
from steps.errors import ApiError, Conflict, NotFound, Transient
from steps.kube import Kube
from steps.log import StepLog
from steps.records import OPEN_PHASES
from steps.restore import restore_traffic, retire_slot
from steps.routing import router_class
from steps.service_state import add_history, update_status
from steps.workflows import RunState, run_state


@dataclass
class SweepReport:
    """What a sweep did, for the log and the benchmark."""

    services: int = 0
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Slots past their retention that are still there after the sweep: removal failed, was skipped or is blocked
    #: (a finalizer, say). The CronWorkflow reports their number as a metric, so a stuck cleanup alerts.
    overdue: list[str] = field(default_factory=list)
    #: Services whose HPA, PDB or adopted original had drifted off the live slot (a sync reset it) and were put back.
    converged: list[str] = field(default_factory=list)


def repair(ctx: StepContext, report: SweepReport) -> None:
    """A run left in an open phase whose workflow is gone or finished: restore its from-slot, close as Aborted."""
    status = ctx.status
    if not status.workflow or status.phase.value not in OPEN_PHASES:
        return
    route = emergency_route.open_route(ctx)
    if route is not None:
        # Undoing a route would send traffic back to the slot an operator moved it away from; only the route's own
        # command may finish it.
        message = emergency_route.held_by_route_message(ctx, route)
        ctx.log("repair-skipped", record=route.metadata.name, reason=message)
        ctx.records.event("RouteUnfinished", message, warning=True)
        report.skipped.append(f"{ctx.service}: an emergency route has not finished")
        return
    state = run_state(ctx.kube, ctx.namespace, status.workflow)
    if state is RunState.running:
        return
    with ctx.kube.fresh_reads():
        _repair(ctx, report, state, status.workflow)


class _TakenOver(Exception):
    """Another run holds the service now; the repair's judgement is stale."""


def _claim(ctx: StepContext, judged: str) -> bool:
    """Take the service from the abandoned run ``judged`` in one guarded write, before any other write.

    The decision to repair was made on a snapshot. If another run has taken the service over since, its preflight
    wrote ``status.workflow``; the write here is conditional on the resourceVersion read, so a take-over in between
    makes it re-read and see the new holder, and the repair skips instead of scaling down that run's green.
    """

    def claim(status: spec.BlueGreenDeploymentStatus) -> None:
        if status.workflow != judged or status.phase.value not in OPEN_PHASES:
            raise _TakenOver
        status.phase = spec.Phase.rolling_back

    try:
        update_status(ctx.kube, ctx.namespace, ctx.service, claim)
    except _TakenOver:
        return False
    return True


def _repair(ctx: StepContext, report: SweepReport, state: RunState, judged: str) -> None:
    ctx.reload()
    status = ctx.status
    if status.workflow != judged or status.phase.value not in OPEN_PHASES:
        ctx.log("repair-skipped", judged=judged, holder=status.workflow or "", reason="another run holds the service")
        report.skipped.append(f"{ctx.service}: run {status.workflow} took over from {judged}")
        return
    record_name = status.record or ""
    record = ctx.records.get(record_name) if record_name else None
    from_slot = (record.spec.from_slot if record else None) or status.active_slot
    reason = (
        f"workflow {status.workflow} is {state.value} but left phase {status.phase.value} (its exit handler "
        "did not run, e.g. after `argo terminate`)"
    )
    ctx.log("repair", workflow=status.workflow, phase=status.phase.value, state=state.value)
    if not _claim(ctx, judged):
        ctx.log("repair-skipped", judged=judged, reason="another run took the service over")
        report.skipped.append(f"{ctx.service}: another run took over from {judged}")
        return
    restored = None
    if from_slot is not None:
        if ctx.router.live_slot() is not from_slot:
            restored, _ = restore_traffic(ctx, from_slot, record_name, "cleanup")
        to_slot = from_slot.other
        if ctx.kube.get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, to_slot)) is not None:
            retire_slot(ctx, to_slot, record_name, "cleanup")
    workflow = status.workflow

    def aborted(current: spec.BlueGreenDeploymentStatus) -> None:
        current.phase = spec.Phase.aborted
        current.workflow = None
        current.target_slot = None
        if from_slot is not None:
            if current.active_slot is not from_slot:
                current.active_slot = from_slot
                current.active_image = restored or current.active_image
            current.previous_slot = None
            current.previous_image = None
        add_history(
            current,
            spec.HistoryEntry(
                record=record_name or workflow,
                workflow=workflow,
                image=record.spec.image if record else "",
                outcome=spec.Phase.aborted.value,
                finished_at=now(),
                reason=reason[:300],
            ),
        )

    # The record is closed before the status lets go of the run: the status is what makes the next sweep look
    # again, so a crash in between is repaired by the next sweep instead of leaving the record open (I6).
    if record is not None:
        ctx.records.close(record_name, spec.Phase.aborted, reason)
    update_status(ctx.kube, ctx.namespace, ctx.service, aborted)
    ctx.records.event("Aborted", reason, warning=True)
    report.repaired.append(ctx.service)


def _held(status: spec.BlueGreenDeploymentStatus) -> bool:
    """A run holds the service: it moves the team's objects itself."""
    return bool(status.workflow) and status.phase.value in OPEN_PHASES


def _drifted(ctx: StepContext, live: spec.Slot) -> bool:
    """Whether the HPA, a PDB or the adopted original no longer follows ``live``; reads the sweep's snapshots."""
    return (
        autoscaling.misaimed(ctx, live) is not None
        or bool(disruption.unpinned(ctx, live))
        or interrupted_original(ctx) is not None
    )


def converge_team_objects(ctx: StepContext, report: SweepReport) -> None:
    """Between runs, put the team's objects a sync may reset back on the live slot: HPA, PDB, the original's zero.

    Argo CD restores what git says at each sync, so without the documented ``ignoreDifferences`` the HPA would scale
    an idle Deployment, and the PDB would count idle pods, until the next deploy. The decision is made on the sweep's
    snapshots and confirmed on fresh reads, since a run may have started and moved the traffic in between.
    """
    if _held(ctx.status) or emergency_route.open_route(ctx) is not None:
        return
    live = ctx.router.live_slot()
    if live is None or not _drifted(ctx, live):
        return
    try:
        with ctx.kube.fresh_reads():
            ctx.reload()
            live = ctx.router.live_slot()
            if _held(ctx.status) or live is None or emergency_route.open_route(ctx) is not None:
                return
            moved = autoscaling.follow_live_slot(ctx, live, "", "cleanup")
            pinned = disruption.pin_to_live_slot(ctx, live, "", "cleanup")
            original = interrupted_original(ctx)
            if original is not None:
                scale_original_down_again(ctx, original)
    except (ApiError, Transient) as failure:
        # Best effort, like every move of a team object: a refusal (the team took its label back) or a conflict
        # must neither fail a deploy's own cleanup nor keep the sweep from removing expired slots.
        ctx.log("converge-failed", error=str(failure))
        report.skipped.append(f"{ctx.service}: could not put its team objects back on the live slot: {failure}")
        return
    if moved or pinned or original is not None:
        report.converged.append(ctx.service)


def remove_expired(ctx: StepContext, report: SweepReport) -> None:
    """Scale down, then delete, slots that are neither live nor retained, holding the service while it does."""
    status = ctx.status
    stale = ""
    if status.workflow:
        if (
            status.phase.value in OPEN_PHASES
            or run_state(ctx.kube, ctx.namespace, status.workflow) is RunState.running
        ):
            report.skipped.append(f"{ctx.service}: run {status.workflow} in progress")
            return
        stale = status.workflow  # a holder that ended without letting go, such as a sweep that was killed
    live = ctx.router.live_slot()
    if live is None:
        return
    for slot in spec.Slot:
        if slot is live:
            continue
        name = slots.deployment_name(ctx.service, slot)
        deployment = ctx.kube.get(DEPLOYMENTS, ctx.namespace, name)
        if deployment is None or not retention.has_expired(retention.stamp_of(deployment)):
            continue
        # About to remove: read the route, the status and the slot afresh, not from the sweep's view (I2).
        with ctx.kube.fresh_reads():
            _remove(ctx, report, slot, live, stale)


REMOVAL_ATTEMPTS = 5


def sweep_holder() -> str:
    """The name a sweep holds a service under while it removes a slot: its workflow's, as for any run."""
    return os.environ.get(RUN_WORKFLOW_ENV) or "bluegreen-cleanup"


def _hold(ctx: StepContext, holder: str, stale: str) -> bool:
    """Take the service for the removal in one guarded write; False when anyone else holds it.

    A route or a rollback to the expired slot takes the service the same way before it moves traffic, so between
    this write and the release nothing can send traffic to the slot being removed, and a move that took the
    service first makes this write see it and skip.
    """

    def hold(status: spec.BlueGreenDeploymentStatus) -> None:
        if status.workflow not in (None, holder, stale or None) or status.phase.value in OPEN_PHASES:
            raise _TakenOver
        status.workflow = holder

    try:
        update_status(ctx.kube, ctx.namespace, ctx.service, hold)
    except _TakenOver:
        return False
    return True


def _release(ctx: StepContext, holder: str, removed: spec.Slot | None) -> None:
    def release(current: spec.BlueGreenDeploymentStatus) -> None:
        if current.workflow == holder:
            current.workflow = None
        if removed is not None and current.previous_slot is removed:
            current.previous_slot = None
            current.previous_image = None
            current.retain_until = None

    update_status(ctx.kube, ctx.namespace, ctx.service, release)


def _remove(ctx: StepContext, report: SweepReport, slot: spec.Slot, live: spec.Slot, stale: str) -> None:
    """Remove one expired slot while holding the service, re-reading everything the decision rests on first.

    The writes to the slot carry the resourceVersion that was read, so any change in between (a controller updating
    status, a deploy starting to reuse the slot) makes them fail; then everything is read and decided again.
    """
    name = slots.deployment_name(ctx.service, slot)
    holder = sweep_holder()
    if not _hold(ctx, holder, stale):
        ctx.log("removal-skipped", deployment=name, reason="another run or route holds the service")
        report.skipped.append(f"{ctx.service}: held by another run while removing {name}")
        return
    removed = False
    try:
        removed = _remove_held(ctx, slot, live, holder)
    finally:
        _release(ctx, holder, slot if removed else None)
    if not removed:
        return
    ctx.log("slot-removed", deployment=name)
    report.removed.append(name)
    ctx.records.event("PreviousRemoved", f"slot {slot.value} ({name}) removed after its retention")


def _remove_held(ctx: StepContext, slot: spec.Slot, live: spec.Slot, holder: str) -> bool:
    name = slots.deployment_name(ctx.service, slot)
    for _ in range(REMOVAL_ATTEMPTS):
        ctx.reload()
        status = ctx.status
        fresh = ctx.kube.get(DEPLOYMENTS, ctx.namespace, name)
        if fresh is None:
            return False
        if (
            ctx.router.live_slot() is not live
            or status.workflow != holder
            or not retention.has_expired(retention.stamp_of(fresh))
        ):
            ctx.log("removal-skipped", deployment=name, reason="state changed since the sweep read it")
            return False
        try:
            if int(fresh["spec"].get("replicas", 0)) > 0:
                fresh = ctx.kube.merge_patch(
                    DEPLOYMENTS,
                    ctx.namespace,
                    name,
                    {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}, "spec": {"replicas": 0}},
                )
            ctx.kube.delete(DEPLOYMENTS, ctx.namespace, name, resource_version=fresh["metadata"]["resourceVersion"])
            return True
        except Conflict:
            continue  # changed since it was read: decide again
        except NotFound:
            return False
    ctx.log("removal-skipped", deployment=name, reason=f"still changing after {REMOVAL_ATTEMPTS} fresh reads")
    return False


def sweep(kube: Kube, namespace: str, services: list[str] | None) -> SweepReport:
    """Repair and clean the given services, or all managed ones in the namespace."""
    report = SweepReport()
    whole_namespace = services is None
    if services is None:
        resources = kube.snapshot(BLUE_GREEN_DEPLOYMENTS, namespace)
        services = sorted(r["metadata"]["name"] for r in resources)
        kube.snapshot(DEPLOYMENTS, namespace)
        kube.snapshot(WORKFLOWS, namespace)
        kube.snapshot(DEPLOYMENT_RECORDS, namespace)
        kube.snapshot(HPAS, namespace)
        kube.snapshot(PDBS, namespace)
        routers = {r.get("spec", {}).get("traffic", {}).get("router", "istio") for r in resources}
        for router in routers:
            for resource in router_class(spec.RouterKind(router)).ROUTE_KINDS:
                kube.snapshot(resource, namespace)
    for service in services:
        report.services += 1
        try:
            ctx = StepContext.open(kube, namespace, service, "cleanup")
            repair(ctx, report)
            converge_team_objects(ctx, report)
            remove_expired(ctx, report)
        except Exception as error:  # one broken service must not stop the sweep of the others
            if len(services) == 1:
                raise
            StepLog("cleanup", service)("service-failed", error=str(error))
            report.skipped.append(f"{service}: {error}")
    kube.forget()
    if whole_namespace:
        # Counted from two fresh lists, not a read per service and slot: the sweep's own snapshots predate its
        # removals, and a thousand services must not cost three thousand requests more.
        kube.snapshot(BLUE_GREEN_DEPLOYMENTS, namespace)
        kube.snapshot(DEPLOYMENTS, namespace)
    for service in services:
        report.overdue += overdue_slots(kube, namespace, service)
    kube.forget()
    return report


def overdue_slots(kube: Kube, namespace: str, service: str) -> list[str]:
    """The service's slot Deployments, other than the live one, still present past their retention.

    Read after the sweep's removals, and from the status rather than the route, so that a service whose sweep failed
    is counted too. A service with a run in progress is not: its run owns the idle slot.
    """
    resource = kube.get(BLUE_GREEN_DEPLOYMENTS, namespace, service)
    if resource is None:
        return []
    status = resource.get("status") or {}
    if status.get("workflow"):
        return []
    overdue = []
    for slot in spec.Slot:
        if slot.value == status.get("activeSlot"):
            continue
        name = slots.deployment_name(service, slot)
        deployment = kube.get(DEPLOYMENTS, namespace, name)
        if deployment is not None and retention.has_expired(retention.stamp_of(deployment)):
            overdue.append(f"{namespace}/{name}")
    return overdue


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The cleanup step."""
    report = sweep(kube, args.namespace, None if args.all_services else [args.service])
    StepLog("cleanup", args.service or "*")(
        "sweep-done",
        services=report.services,
        repaired=report.repaired,
        removed=report.removed,
        skipped=report.skipped,
        overdue=report.overdue,
        converged=report.converged,
        api_requests=kube.requests,
    )
    write_outputs(args.output_dir, {Output.overdue_slots: str(len(report.overdue))})
    return 0


__all__ = ["SweepReport", "run", "sweep"]
