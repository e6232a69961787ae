"""``switch``: write the intent, then move all traffic to the new slot in one update, then read it back.

Invariant I3: the status says ``Switching`` (from, to) before the route changes, so a crash at any point can be
finished or undone by the exit handler or the repair cron. Invariant I1: the new slot must have every replica
available at the moment of the switch, not only when deploy-green finished.
"""

from __future__ import annotations

import argparse
import time

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, Output
from steps import gates, progress, slots, traffic
from steps.announce import announce
from steps.clock import now
from steps.context import StepContext, write_outputs
from steps.errors import CheckFailed
from steps.kube import Kube
from steps.metrics import RunMetrics
from steps.service_state import update_status


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The switch step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "switch")
    target = spec.Slot(args.slot)
    switched_before = progress.done_after_switch(ctx, args.record, target, finished_only=True)
    if switched_before:
        # No second switch time: the metric reads a negative duration as "not switched by this attempt".
        write_outputs(args.output_dir, {Output.switched_at: switched_before, Output.switch_seconds: "-1"})
        return 0
    name = slots.deployment_name(ctx.service, target)
    deployment = kube.must_get(DEPLOYMENTS, ctx.namespace, name)
    state = slots.availability(deployment)
    if not state.available:
        raise CheckFailed(
            f"Deployment {ctx.namespace}/{name} is not fully available ({state.ready}/{state.wanted}); "
            "traffic stays where it is"
        )
    image = slots.current_image(deployment, ctx.resource.spec.container)
    gates.require_proven(ctx, args.record, target, image)
    live = ctx.router.live_slot()
    started = now()
    clock_started = time.monotonic()

    ctx.records.set_phase(args.record, spec.Phase.switching)
    # The data plane's lag fails a switch: the exit handler then puts traffic back while the previous slot is warm.
    moved = traffic.move_all_traffic(
        ctx,
        target,
        args.record,
        "switch",
        intent=spec.Phase.switching,
        describe_intent=f"switching from {live.value if live else 'nothing'} to {target.value}",
        lag_fails=True,
    )
    changed, propagation = moved.changed, moved.propagation
    switched_at = now()

    def switched(status: spec.BlueGreenDeploymentStatus) -> None:
        if status.active_slot is not target:
            status.previous_slot = status.active_slot
            status.previous_image = status.active_image
        status.active_slot = target
        status.active_image = image
        status.phase = spec.Phase.verifying

    update_status(kube, ctx.namespace, ctx.service, switched)
    ctx.records.set_phase(args.record, spec.Phase.verifying, switched_at=switched_at)
    ctx.records.append(
        args.record,
        "switch",
        "switched",
        f"all traffic on {target.value}",
        changed=changed,
        started=started,
        propagation=propagation,
    )
    ctx.records.event("Switched", f"all traffic on slot {target.value} ({image})")
    switch_seconds = time.monotonic() - clock_started
    metrics = RunMetrics.from_env(ctx.service)
    metrics.observe_switch(switch_seconds)
    metrics.push()
    announce(ctx, spec.Stage.switched, args.record)
    ctx.log("switched", slot=target.value, changed=changed, propagation=propagation)
    write_outputs(args.output_dir, {Output.switched_at: switched_at, Output.switch_seconds: f"{switch_seconds:.3f}"})
    return 0


__all__ = ["run"]
