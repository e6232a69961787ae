"""``kubectl bluegreen route SERVICE --to blue|green``: the emergency switch, for when Argo itself is down.

It moves traffic with the same router code as the pipeline's ``switch`` step and keeps the same promises: it refuses
a slot without every replica available (invariant I1) unless ``--force``; it writes the intent into the status and
a DeploymentRecord before the route changes (I3); it keeps the slot it moved away from warm for
``spec.retainPreviousVersion``, like a deploy does; and it refuses while a running workflow holds the service (I5)
unless ``--force``. While it works it holds the service itself (:mod:`steps.emergency_route`), so neither a deploy
nor the repair cron acts on it. An interrupted route leaves its intent in the status and its record open; running the
same command again finishes it, and a route to the other slot closes it as superseded.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import PluginError
from kubectl_bluegreen.service_view import read_service
from kubectl_bluegreen.submission import who_am_i
from steps import emergency_route, slots, traffic
from steps.clock import now
from steps.commands.rollback import retain_previous_after_switch
from steps.context import StepContext, record_name
from steps.gates import read_slot_image
from steps.service_state import add_history, update_status
from steps.workflows import RunState, run_state

HELP = "emergency switch of all traffic to one slot, without Argo (writes a deployment record)"
STEP = "route"
RUN_PREFIX = emergency_route.RUN_PREFIX


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE --to blue|green [--force] [--reason TEXT]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument(
        "--to", required=True, choices=[s.value for s in spec.Slot], help="the slot to send traffic to"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="route even when the slot is not fully available or a running workflow holds the service",
    )
    parser.add_argument("--reason", default="", help="why; kept in the deployment record")


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Check, record the intent, move the route, read it back, record the outcome."""
    kube, namespace = cluster.kube, cluster.namespace
    read_service(kube, namespace, args.service)
    # The steps' JSON log lines go to stderr, so stdout stays the summary.
    ctx = StepContext.open(kube, namespace, args.service, STEP, log_to=sys.stderr)
    target = spec.Slot(args.to)
    ctx.router.check()
    live = ctx.router.live_slot()
    name = slots.deployment_name(ctx.service, target)
    deployment = kube.get(DEPLOYMENTS, namespace, name)
    if deployment is None:
        raise PluginError(f"slot {target.value} has no Deployment {namespace}/{name}; traffic stays where it is")
    state = slots.availability(deployment)
    forced: list[str] = []
    if not state.available:
        problem = f"Deployment {namespace}/{name} is not fully available ({state.ready}/{state.wanted} ready)"
        if not args.force:
            raise PluginError(
                f"{problem}; traffic stays on {live.value if live else 'nothing'}. Scale it up and wait, or pass "
                "--force to route anyway (requests may fail)"
            )
        forced.append(problem)
    interrupted = emergency_route.open_route(ctx)
    if interrupted is not None and interrupted.spec.to_slot is target:
        print(f"finishing the interrupted route of record {namespace}/{interrupted.metadata.name}")
        return move_and_close(ctx, interrupted.metadata.name, interrupted.spec, ctx.status.workflow)
    if live is target and interrupted is None:
        print(f"{ctx.router.describe()} already sends all traffic to {target.value}; nothing changed")
        return 0
    holder = ctx.status.workflow
    if holder and not emergency_route.is_route(holder) and run_state(kube, namespace, holder) is RunState.running:
        problem = f"workflow {holder} is running for {ctx.service}"
        if not args.force:
            raise PluginError(
                f"{problem} and holds the service; wait for it, stop it (argo stop {holder} -n {namespace}), or "
                "pass --force"
            )
        forced.append(problem)
    image = slots.current_image(deployment, ctx.resource.spec.container)
    live_image = read_slot_image(ctx, live) if live is not None else None
    user = who_am_i(kube, cluster.connection.user)
    run_name = f"{RUN_PREFIX}{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:5]}"
    record = record_name(run_name)
    reason = args.reason or f"emergency route to {target.value} with kubectl bluegreen"
    route = spec.DeploymentRecordSpec(
        service=ctx.service,
        workflow=run_name,
        image=image,
        previous_image=live_image,
        from_slot=live,
        to_slot=target,
        triggered_by=user,
        reason=reason,
        started_at=now(),
    )
    ctx.records.open(record, route)
    ctx.records.set_phase(record, spec.Phase.switching)
    if interrupted is not None:
        ctx.records.close(
            interrupted.metadata.name,
            spec.Phase.aborted,
            f"superseded by the route of record {record} to {target.value}",
        )
    for problem in forced:
        ctx.records.append(record, STEP, "forced", f"{problem}; routed anyway (--force)")

    return move_and_close(ctx, record, route, holder)


def move_and_close(ctx: StepContext, record: str, route: spec.DeploymentRecordSpec, judged: str | None) -> int:
    """Move all traffic to the record's target, read it back, settle the status and close the record.

    ``judged`` is the holder the route already decided it may take the service from (an ended run, or a running one
    with ``--force``); anyone else who took the service since makes the route stop before traffic moves.
    """
    kube, namespace = ctx.kube, ctx.namespace
    target, live, image, live_image = route.to_slot, route.from_slot, route.image, route.previous_image
    run_name, reason = route.workflow, route.reason
    assert target is not None

    def held(status: spec.BlueGreenDeploymentStatus) -> None:
        # The route holds the service until it closes: a run it forced aside no longer does, and neither a deploy
        # nor the repair cron acts on it meanwhile.
        if status.workflow not in (None, run_name, judged):
            raise PluginError(
                f"{status.workflow} took {namespace}/{ctx.service} while the route was checking it, so traffic stays "
                f"on {status.active_slot.value if status.active_slot else 'its slot'}; run the route again"
            )
        status.workflow = run_name
        status.record = record

    # The data plane's lag only warns: the route already names the slot, and running it again finishes it.
    moving = f"routing from {live.value if live else 'nothing'} to {target.value} by {route.triggered_by}"
    try:
        moved = traffic.move_all_traffic(
            ctx,
            target,
            record,
            STEP,
            intent=spec.Phase.switching,
            describe_intent=moving,
            lag_fails=False,
            hold=held,
        )
    except PluginError as taken:
        ctx.records.close(record, spec.Phase.aborted, str(taken))
        raise
    changed = moved.changed
    finished = now()

    def routed(status: spec.BlueGreenDeploymentStatus) -> None:
        if live is not None and status.active_slot is not target:
            status.previous_slot = live
            status.previous_image = live_image
        status.active_slot = target
        status.active_image = image
        status.target_slot = None
        status.phase = spec.Phase.succeeded
        if status.workflow == run_name:
            status.workflow = None
        add_history(
            status,
            spec.HistoryEntry(
                record=record,
                workflow=run_name,
                image=image,
                outcome=spec.Phase.succeeded.value,
                finished_at=finished,
                reason=reason[:300],
            ),
        )

    update_status(kube, namespace, ctx.service, routed)
    ctx.records.append(record, STEP, "switched", f"all traffic on {target.value} ({image})", changed=changed)
    if live is not None:
        retain_previous_after_switch(ctx, record, live, target)
    ctx.records.close(record, spec.Phase.succeeded, reason)
    ctx.records.event(
        "Routed", f"all traffic on slot {target.value} ({image}) by {route.triggered_by}: {reason}", warning=True
    )
    print(f"{ctx.router.describe()}: all traffic on {target.value} ({image}); record {namespace}/{record}")
    return 0
