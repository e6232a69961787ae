"""``preflight``: validate everything before any write, take the service, open the run's record.

Order matters: the image, the policy, the spec, the Service and the lock are all checked before the first write.
Then the record is opened (idempotent: it is named after the workflow), the status takes the service, an unmanaged
Deployment is adopted if this is the first run, and zero-downtime prerequisites that are missing become warnings in
the record.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import (
    CREATOR_LABEL,
    CREATOR_USERNAME_LABEL,
    DEADLINE_OUTPUTS,
    DEPLOYMENTS,
    SERVICES,
    WORKFLOWS,
    Output,
    Step,
)
from steps import (
    autoscaling,
    disruption,
    emergency_route,
    identity_grant,
    images,
    isolation,
    opt_in,
    progress,
    registry,
    release_changes,
    release_images,
    run_identity,
    slots,
    verification_plan,
)
from steps.adoption import adopt, finish_interrupted_adoption, interrupted_original
from steps.announce import announce
from steps.clock import now
from steps.context import StepContext, record_name, write_outputs
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube, Obj
from steps.release_source import ReleaseSource, changing_container_name, release_source, team_deployment
from steps.service_state import update_status
from steps.workflows import RunState, run_state

UNVERIFIED_WARNING = (
    "images are not verified: spec.imagePolicy.signature is not set, so no signature or vulnerability attestation "
    "is checked before the image reaches a slot"
)

#: Seconds Istio's sidecar keeps draining after SIGTERM by default (terminationDrainDuration).
MESH_DRAIN_SECONDS = 5


def check_lock(ctx: StepContext, workflow: str) -> str:
    """Refuse when another run still holds the service; returns a note when an abandoned run is taken over."""
    status = ctx.status
    route = emergency_route.open_route(ctx)
    if route is not None:
        raise CheckFailed(emergency_route.held_by_route_message(ctx, route))
    holder = status.workflow
    if not holder or holder == workflow:
        return ""
    state = run_state(ctx.kube, ctx.namespace, holder)
    if state is RunState.running:
        raise CheckFailed(
            f"BlueGreenDeployment {ctx.namespace}/{ctx.service} is held by running workflow {holder} "
            f"(phase {status.phase.value}); wait for it to finish or stop it with `argo stop {holder}`"
        )
    return f"previous run {holder} is {state.value} but left phase {status.phase.value}; taking over"


def triggered_by(kube: Kube, namespace: str, workflow: str, given: str) -> str:
    """Who started the run: the parameter, else the Argo creator label of the workflow."""
    if given:
        return given
    found = kube.get(WORKFLOWS, namespace, workflow)
    labels = (found or {}).get("metadata", {}).get("labels") or {}
    return str(labels.get(CREATOR_USERNAME_LABEL) or labels.get(CREATOR_LABEL) or "")


def zero_downtime_warnings(ctx: StepContext, deployment: Obj) -> list[str]:
    """What the live Deployment lacks for a switch without dropped requests."""
    warnings = []
    pod_spec = deployment["spec"]["template"]["spec"]
    index = slots.container_index(
        deployment["spec"]["template"], ctx.resource.spec.container, f"Deployment {deployment['metadata']['name']}"
    )
    container = pod_spec["containers"][index]
    if not container.get("readinessProbe"):
        warnings.append(
            f"container {container.get('name')} has no readinessProbe: pods take traffic before they are ready"
        )
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    pre_stop_seconds = 0
    if not pre_stop:
        warnings.append(
            f"container {container.get('name')} has no preStop hook: pods may stop before endpoints "
            "and proxies forget them"
        )
    else:
        pre_stop_seconds = int((pre_stop.get("sleep") or {}).get("seconds") or 0)
    grace = int(pod_spec.get("terminationGracePeriodSeconds", 30))
    if grace < pre_stop_seconds + MESH_DRAIN_SECONDS:
        warnings.append(
            f"terminationGracePeriodSeconds {grace} is shorter than preStop {pre_stop_seconds} s plus "
            f"{MESH_DRAIN_SECONDS} s of proxy drain"
        )
    warnings.extend(disruption.budget_warnings(ctx, deployment))
    return warnings


def other_services_reaching_slots(ctx: StepContext, deployment: Obj) -> list[str]:
    """Services besides ours whose selector matches the slot pods: paths that do not follow the switch."""
    labels = {
        **(deployment["spec"]["template"].get("metadata", {}).get("labels") or {}),
        spec.SLOT_LABEL: spec.Slot.blue.value,  # both slots' pods differ only in this label
    }
    main = ctx.resource.router_service_name()
    warnings = []
    for service in ctx.kube.list(SERVICES, ctx.namespace):
        name = service["metadata"]["name"]
        selector = {k: v for k, v in (service["spec"].get("selector") or {}).items() if k != spec.SLOT_LABEL}
        ours = (service["metadata"].get("labels") or {}).get(spec.SERVICE_LABEL) == ctx.service
        if name == main or ours or not selector:
            continue
        if all(labels.get(key) == value for key, value in selector.items()):
            warnings.append(
                f"Service {ctx.namespace}/{name} selects the pods of both slots of {ctx.service} (selector "
                f"{selector}): its clients reach the idle slot before the switch and the previous one after it; "
                f"add {spec.SLOT_LABEL} to its selector, or point its clients at Service {main}"
            )
    return warnings


def isolation_warnings(ctx: StepContext, deployment: Obj) -> list[str]:
    """Why the slots will not be isolated from each other, when the team's NetworkPolicies already govern them."""
    if not ctx.resource.spec.traffic.isolate_slots:
        return []
    labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
    blocked_by = isolation.foreign_ingress_policies(ctx.kube, ctx.namespace, ctx.service, labels)
    return [isolation.skipped_warning(ctx.namespace, ctx.service, blocked_by)] if blocked_by else []


def release_warnings(asked: str, image: str, live_image: str, changes: list[str], source: ReleaseSource) -> list[str]:
    """A deploy without an image that changes the live image, or nothing at all: easy to start by mistake."""
    if asked:
        return []
    if not changes:
        return [
            f"this release changes nothing: Deployment {source.name} runs what the live slot runs; it still replaces "
            "the retained previous version"
        ]
    if image != live_image:
        return [
            f"no image was given, so this release runs the image of Deployment {source.name} ({image}), not the live "
            f"{live_image}; pass the image to keep the live one"
        ]
    return []


def release_summary(
    ctx: StepContext, source: ReleaseSource, live: Obj, target: spec.Slot, image: str, record: str
) -> list[str]:
    """What the new slot will run that the live one does not, from the very template deploy-green builds."""
    desired = slots.slot_deployment(
        source.deployment, ctx.service, target, image, ctx.resource.spec.container, 1, record
    )
    changing = changing_container_name(source.deployment, ctx.resource.spec.container)
    return release_changes.summarize(live["spec"]["template"], desired["spec"]["template"], changing)


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The preflight step."""
    if args.image:
        images.parse(args.image)  # a malformed image fails before anything is read
    ctx = StepContext.open(kube, args.namespace, args.service, "preflight")
    ctx.router.main_service()
    ctx.router.check()
    name = record_name(args.workflow)
    live = ctx.router.live_slot()
    live_deployment = None
    if live is not None:
        live_deployment = kube.get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, live))
        if live_deployment is None:
            raise CheckFailed(
                f"{ctx.router.describe()} routes to {live.value}, but Deployment "
                f"{ctx.namespace}/{slots.deployment_name(ctx.service, live)} does not exist; "
                "restore it or point the route at an existing slot"
            )
        source = release_source(kube, ctx.resource, ctx.namespace, live_deployment)
    else:
        adopted = ctx.resource.adopted_deployment_name()
        team = team_deployment(kube, ctx.resource, ctx.namespace)
        if team is None:
            raise BadInput(
                f"service {ctx.namespace}/{ctx.service} has no route and no Deployment {adopted} to "
                "adopt; deploy the application once (or name its Deployment in spec.deployment), then run the pipeline"
            )
        source = ReleaseSource(team, from_team=True)
    earlier = ctx.records.get(name)
    # A retried Pod of this run: its record, not the route (which may already name the new slot), holds its choices,
    # the image among them: what was verified and opened must be what is deployed, whatever git says by now.
    resumed = progress.resumed_choices(ctx, earlier) if earlier is not None else None
    # A deploy without an image releases the team's Deployment as it is, its image included.
    image = resumed.image if resumed is not None else args.image or source.image(ctx.resource.spec.container)
    reference = images.parse(image)
    policy = ctx.resource.spec.image_policy
    images.check_policy(reference, policy, ctx.service)
    # The verification plan reads the keys and the tag's digest now, so a missing key or tag fails before any write.
    digest = ""
    calls: list[dict[str, str]] = []
    if policy.signature is not None:
        if resumed is None:
            digest = registry.resolve_digest(reference)
            image = registry.pinned(reference, digest)
        calls = verification_plan.for_policy(kube, ctx.namespace, ctx.service, policy, image)
    takeover = check_lock(ctx, args.workflow)

    current = live_deployment if live_deployment is not None else source.deployment
    # The team's objects this run changes or lets the slots join must be lent to it before the first write.
    opt_in.require(
        ctx,
        source.deployment["spec"]["template"].get("metadata", {}).get("labels") or {},
        source.deployment if live is None else interrupted_original(ctx),
    )
    # So must the ServiceAccount and Secrets the new slot's pods will use, which the policies ask RBAC about.
    identity_grant.require(ctx, source.deployment)
    if resumed is not None:
        from_slot, previous_image = resumed.from_slot, resumed.previous_image
    else:
        from_slot = live or spec.Slot.blue
        previous_image = slots.current_image(current, ctx.resource.spec.container)
    changes = (
        list(earlier.spec.changes)
        if earlier is not None and resumed is not None
        else release_summary(ctx, source, current, from_slot.other, image, name)
    )
    if resumed is None:
        release_images.check(source.deployment, current, ctx.resource)
    record = spec.DeploymentRecordSpec(
        service=ctx.service,
        workflow=args.workflow,
        workflow_uid=run_identity.pod_workflow_uid(),
        image=image,
        previous_image=previous_image,
        from_slot=from_slot,
        to_slot=from_slot.other,
        commit=args.commit,
        triggered_by=triggered_by(kube, ctx.namespace, args.workflow, args.triggered_by),
        reason=args.reason,
        started_at=now(),
        changes=changes,
    )
    ctx.records.open(name, record)
    if resumed is not None:
        ctx.records.append(
            name,
            "preflight",
            "resumed",
            f"a retried attempt resumes the run: {image} into slot {from_slot.other.value}",
        )
    elif digest:
        ctx.records.set_phase(name, spec.Phase.deploying, digest=digest)
    ctx.records.record_gate(name, spec.Gate.image_policy, from_slot.other, image, passed=True, step="preflight")
    if takeover:
        ctx.records.append(name, "preflight", "warning", takeover)

    def take(status: spec.BlueGreenDeploymentStatus) -> None:
        # An adoption interrupted after it routed leaves the live slot for the status to learn here.
        status.active_slot = status.active_slot or live
        status.active_image = status.active_image or (previous_image if live else None)
        if status.workflow == args.workflow and status.record == name and resumed is not None:
            return  # this run holds the service already, at whatever phase it reached
        status.workflow = args.workflow
        status.record = name
        status.phase = spec.Phase.deploying
        status.target_slot = from_slot.other
        status.observed_generation = int(ctx.raw["metadata"].get("generation") or 0)

    update_status(kube, ctx.namespace, ctx.service, take)
    if resumed is None:
        ctx.records.event("Deploying", f"workflow {args.workflow} deploys {image} to slot {from_slot.other.value}")

    if live is None:
        adopt(ctx, source.deployment, name)
        live = from_slot
        live_deployment = kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, from_slot))
    else:
        finish_interrupted_adoption(ctx, name)

    assert live_deployment is not None
    # After an adoption, and for an autoscaler the team added since: it must scale the slot that serves, which after
    # a switch this run already made is no longer the one it started from.
    autoscaling.follow_live_slot(ctx, live, name, "preflight")
    disruption.pin_to_live_slot(ctx, live, name, "preflight")
    warnings = (
        []
        if resumed is not None
        else [
            # Of what this release will run: the team's template, which git may have changed since the live slot.
            *zero_downtime_warnings(ctx, source.deployment),
            *other_services_reaching_slots(ctx, source.deployment),
            *isolation_warnings(ctx, source.deployment),
            *release_warnings(args.image, image, previous_image, changes, source),
            *autoscaling.autoscaler_warnings(ctx),
            *([] if policy.verification_required() else [UNVERIFIED_WARNING]),
        ]
    )
    if not source.from_team:
        warnings.append(source.warning(ctx.namespace, ctx.resource))
    for warning in warnings:
        ctx.records.append(name, "preflight", "warning", warning)
        ctx.log("warning", message=warning)
    write_outputs(
        args.output_dir,
        {
            Output.record: name,
            Output.live_slot: from_slot.value,
            Output.target_slot: from_slot.other.value,
            Output.previous_image: previous_image,
            Output.analysis_enabled: "true" if ctx.resource.spec.analysis else "false",
            Output.promotion_required: (
                "true" if ctx.resource.spec.promotion.mode is spec.PromotionMode.manual else "false"
            ),
            Output.promotion_timeout: str(ctx.resource.spec.promotion.timeout_seconds()),
            Output.image: image,
            Output.changes: release_changes.describe(changes),
            Output.verification_required: "true" if policy.verification_required() else "false",
            Output.verification_plan: verification_plan.encode(calls),
            Output.verification_calls: verification_plan.encode_indexes(calls),
            **{
                DEADLINE_OUTPUTS[Step(step)]: str(seconds)
                for step, seconds in ctx.resource.spec.run_deadlines().items()
            },
        },
    )
    if resumed is None:
        announce(ctx, spec.Stage.started, name)
    ctx.log("preflight-passed", record=name, live=from_slot.value, target=from_slot.other.value)
    return 0


__all__ = ["run"]
