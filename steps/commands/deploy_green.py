"""``deploy-green``: bring the new version up in the idle slot, beside the live one.

Reconciles, in order: the slot Deployment (the team's Deployment's pod template, as the team or git last wrote it,
with the run's image in the changing container, and at least as many replicas as the live slot has ready, so it can
take all of the live load under an HPA), its availability (a watch,
failing fast on ProgressDeadlineExceeded), the preview Service, and the slots' isolation policies. A re-run after a
crash converges to the same objects.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, Output
from steps import endpoints, gates, images, isolation, progress, release_changes, release_images, restore, slots
from steps.announce import announce
from steps.context import StepContext, write_outputs
from steps.errors import CheckFailed
from steps.kube import Kube, Obj
from steps.release_source import ReleaseSource, changing_container_name, release_source
from steps.routing.base import PROPAGATION_TIMEOUT_SECONDS
from steps.service_state import update_status


def note_template_moved(ctx: StepContext, record: str, source: ReleaseSource, live: Obj, desired: Obj) -> None:
    """Say in the record when the team's Deployment changed between preflight's summary and this build."""
    changing = changing_container_name(source.deployment, ctx.resource.spec.container)
    changes = release_changes.summarize(live["spec"]["template"], desired["spec"]["template"], changing)
    opened = ctx.records.get(record)
    if opened is not None and opened.spec.changes != changes:
        ctx.records.append(
            record,
            "deploy-green",
            "template-moved",
            f"Deployment {source.name} changed after preflight; the slot runs it as it is now: "
            + release_changes.describe(changes),
        )


def recreate_for_new_selector(ctx: StepContext, target: spec.Slot, name: str, record: str) -> None:
    """Delete the idle slot, whose selector the team changed, giving up the rollback target it held first.

    The slot's pods are replaced by this deploy in any case; what is lost is the retained previous version, which
    could not be put back under the new selector. The route is read again just before, so a slot an operator routed
    to meanwhile is never deleted.
    """

    def give_up(status: spec.BlueGreenDeploymentStatus) -> None:
        if status.previous_slot is target:
            status.previous_slot = None
            status.previous_image = None
            status.retain_until = None

    update_status(ctx.kube, ctx.namespace, ctx.service, give_up)
    if ctx.router.live_slot() is target:
        raise CheckFailed(f"slot {target.value} of {ctx.service} became live; refusing to delete it")
    ctx.records.append(
        record,
        "deploy-green",
        "slot-recreated",
        f"Deployment {name} is recreated for the team's new selector; the version it retained is no longer a "
        "rollback target",
    )
    slots.delete_and_wait(ctx.kube, ctx.namespace, name, ctx.log)


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The deploy-green step."""
    reference = images.parse(args.image)
    ctx = StepContext.open(kube, args.namespace, args.service, "deploy-green")
    # Argo lets a submitter pick the entrypoint, so preflight may not have run: the policy is checked here too.
    images.check_policy(reference, ctx.resource.spec.image_policy, ctx.service)
    target = spec.Slot(args.slot)
    gates.require_verified(ctx, args.record, target, args.image)
    if progress.done_after_switch(ctx, args.record, target):
        write_outputs(args.output_dir, {Output.deployment: slots.deployment_name(ctx.service, target)})
        return 0
    live = ctx.router.live_slot()
    if live is target:
        raise CheckFailed(
            f"slot {target.value} of {ctx.service} is live; refusing to deploy over it. "
            "Run the pipeline again so preflight picks the idle slot"
        )
    if live is None:
        raise CheckFailed(f"{ctx.router.describe()} routes nowhere; run preflight first (it adopts the service)")
    live_deployment = kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, live))
    replicas = max(ctx.resource.spec.replicas, slots.ready_replicas(live_deployment), 1)
    source = release_source(kube, ctx.resource, ctx.namespace, live_deployment)
    # Again here: the team's Deployment may have changed since preflight, or preflight may not have run.
    release_images.check(source.deployment, live_deployment, ctx.resource)
    desired = slots.slot_deployment(
        source.deployment, ctx.service, target, args.image, ctx.resource.spec.container, replicas, args.record
    )
    note_template_moved(ctx, args.record, source, live_deployment, desired)
    name = desired["metadata"]["name"]
    existing = kube.get(DEPLOYMENTS, ctx.namespace, name)
    if slots.selector_changed(existing, desired):
        recreate_for_new_selector(ctx, target, name, args.record)
    elif not restore.remember_retained(existing, desired, args.record) and existing is not None:
        ctx.log("retained-template-not-kept", deployment=name, reason="too large, or kept by no earlier attempt")
    kube.apply(DEPLOYMENTS, ctx.namespace, desired)
    ctx.log("slot-applied", deployment=name, image=args.image, replicas=replicas)
    ctx.records.append(args.record, "deploy-green", "slot-applied", f"{name} runs {args.image}", replicas=replicas)
    timeout = spec.parse_duration(ctx.resource.spec.readiness_timeout).total_seconds()

    def verdict(gate: spec.Gate, *, passed: bool) -> None:
        ctx.records.record_gate(args.record, gate, target, args.image, passed=passed, step="deploy-green")

    verdict(spec.Gate.image_policy, passed=True)
    try:
        slots.wait_available(kube, ctx.namespace, name, timeout, ctx.log)
    except CheckFailed as failure:
        ctx.records.append(args.record, "deploy-green", "not-available", str(failure))
        verdict(spec.Gate.available, passed=False)
        raise
    slots.point_preview(kube, ctx.resource, ctx.router.main_service(), target)
    # The preview may have offered the live slot until a moment ago; probe and smoke must reach only this slot.
    preview = endpoints.wait_serving_slot(
        kube, ctx.namespace, ctx.resource.preview_service_name(), ctx.service, target, PROPAGATION_TIMEOUT_SECONDS
    )
    ctx.log("preview-serving", slot=target.value, endpoints=preview)
    if ctx.resource.spec.traffic.isolate_slots:
        pod_labels = desired["spec"]["template"]["metadata"].get("labels") or {}
        isolated = isolation.ensure_isolation(kube, ctx.namespace, ctx.service, pod_labels, ctx.log)
        if not isolated.isolated:
            ctx.records.append(
                args.record, "deploy-green", "isolation-skipped", isolated.describe(ctx.namespace, ctx.service)
            )
    ctx.records.append(args.record, "deploy-green", "slot-available", f"{name}: {replicas} replicas available")
    verdict(spec.Gate.available, passed=True)
    ctx.records.event("GreenReady", f"{name} is available with {args.image}")
    announce(ctx, spec.Stage.green_ready, args.record)
    write_outputs(args.output_dir, {Output.deployment: name})
    return 0


__all__ = ["run"]
