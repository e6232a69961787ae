"""Adoption: the first run takes over an unmanaged Deployment and Service without downtime or app changes.

The original Deployment (``spec.deployment``, else the one named like the service) is first annotated with the slot
that takes it over, then copied into the blue slot (same image, same pod template, plus the slot labels, minus
Argo CD's tracking labels); once every blue replica is available the router sends all traffic to blue; only then is
the original scaled to zero. It is kept, so a person can compare or revert by hand. Because the annotation is
written first, a re-run after a crash finishes only an adoption that really started: a Deployment without it (one
Argo CD or a person created later under the same name) is never scaled down.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import slots
from steps.context import StepContext
from steps.errors import BadInput, CheckFailed
from steps.kube import Obj
from steps.service_state import update_status


def adopt(ctx: StepContext, original: Obj, record: str) -> None:
    """Copy, wait, route, then scale the original down; each part converges when run again."""
    slot = spec.Slot.blue
    mark_adopted(ctx, original, slots.deployment_name(ctx.service, slot))
    image = slots.current_image(original, ctx.resource.spec.container)
    replicas = max(ctx.resource.spec.replicas, slots.ready_replicas(original), 1)
    desired = slots.slot_deployment(original, ctx.service, slot, image, ctx.resource.spec.container, replicas, record)
    ctx.kube.apply(DEPLOYMENTS, ctx.namespace, desired)
    ctx.records.append(
        record,
        "preflight",
        "adoption",
        f"copied Deployment {ctx.service} into slot blue",
        replicas=replicas,
        image=image,
    )
    slots.wait_available(
        ctx.kube,
        ctx.namespace,
        desired["metadata"]["name"],
        spec.parse_duration(ctx.resource.spec.readiness_timeout).total_seconds(),
        ctx.log,
    )
    ctx.router.point_to(slot)
    ctx.router.verify(slot)

    def routed(status: spec.BlueGreenDeploymentStatus) -> None:
        status.active_slot = slot
        status.active_image = image

    update_status(ctx.kube, ctx.namespace, ctx.service, routed)
    retire_original(ctx, original, desired["metadata"]["name"], record)


def mark_adopted(ctx: StepContext, original: Obj, slot_deployment: str) -> None:
    """Annotate the original with the slot taking it over, before anything else: the proof an adoption started."""
    if (original["metadata"].get("annotations") or {}).get(slots.ADOPTED_ANNOTATION) == slot_deployment:
        return
    ctx.kube.merge_patch(
        DEPLOYMENTS,
        ctx.namespace,
        original["metadata"]["name"],
        {"metadata": {"annotations": {slots.ADOPTED_ANNOTATION: slot_deployment}}},
    )


def retire_original(ctx: StepContext, original: Obj, slot_deployment: str, record: str) -> None:
    """Scale the adopted original to zero, once traffic is on the slot; kept, annotated, for people to compare."""
    original_replicas = int(original["spec"].get("replicas", 1))
    ctx.kube.merge_patch(
        DEPLOYMENTS,
        ctx.namespace,
        original["metadata"]["name"],
        {
            "metadata": {"annotations": {slots.ADOPTED_ANNOTATION: slot_deployment}},
            "spec": {"replicas": 0},
        },
    )
    ctx.records.append(
        record,
        "preflight",
        "adoption",
        f"traffic on slot blue; original Deployment {original['metadata']['name']} scaled from "
        f"{original_replicas} to 0",
        original=original["metadata"]["name"],
        original_replicas=original_replicas,
    )
    ctx.records.event("Adopted", f"Deployment {original['metadata']['name']} adopted; original scaled to 0")


def interrupted_original(ctx: StepContext) -> Obj | None:
    """The adopted original a run died before scaling down, if there is one: what the next run finishes.

    Only a Deployment carrying our adopted-by annotation counts: once a slot is live no route leads to it. An
    unannotated Deployment of that name is someone else's, and stays as it is.
    """
    original = ctx.kube.get(DEPLOYMENTS, ctx.namespace, ctx.resource.adopted_deployment_name())
    if original is None or int(original["spec"].get("replicas", 1)) == 0:
        return None
    if slots.ADOPTED_ANNOTATION not in (original["metadata"].get("annotations") or {}):
        return None
    return original


def scale_original_down_again(ctx: StepContext, original: Obj) -> None:
    """Scale an adopted original someone scaled up again back to zero: its pods run, and take no traffic.

    Argo CD does this at each sync when the team's git still says ``replicas: N`` and the Application lacks the
    documented ``ignoreDifferences`` for it; the Event says so, so the team fixes the cause instead of watching the two
    take turns.
    """
    replicas = int(original["spec"].get("replicas", 1))
    slot_deployment = original["metadata"]["annotations"][slots.ADOPTED_ANNOTATION]
    try:
        ctx.kube.merge_patch(
            DEPLOYMENTS,
            ctx.namespace,
            original["metadata"]["name"],
            {
                # Conditional on the object that was read: the API server refuses a uid that is not the stored
                # object's (422, immutable), so a Deployment recreated since is left alone. Not on its
                # resourceVersion: the deployment controller rewrites the status of a Deployment just scaled up
                # again and again, and each such write would make the scale-down conflict until a later sweep.
                "metadata": {
                    "uid": original["metadata"]["uid"],
                    "annotations": {slots.ADOPTED_ANNOTATION: slot_deployment},
                },
                "spec": {"replicas": 0},
            },
        )
    except (CheckFailed, BadInput):
        # The server's 422 (BadInput before this step's first accepted write, CheckFailed after it): nothing else in
        # this patch can be invalid, so the Deployment was recreated after it was read.
        ctx.log("original-recreated", deployment=original["metadata"]["name"])
        return
    ctx.log("original-scaled-down", deployment=original["metadata"]["name"], replicas=replicas)
    ctx.records.event(
        "OriginalScaledUp",
        f"Deployment {original['metadata']['name']} ran {replicas} replicas that take no traffic ({slot_deployment} "
        "took it over); scaled back to 0. If Argo CD syncs it, ignore spec.replicas with "
        "RespectIgnoreDifferences=true (see the GitOps guide)",
        warning=True,
    )


def finish_interrupted_adoption(ctx: StepContext, record: str) -> None:
    """A run that died after routing to the new slot but before scaling the original down is finished here."""
    original = interrupted_original(ctx)
    if original is not None:
        retire_original(ctx, original, slots.deployment_name(ctx.service, spec.Slot.blue), record)


__all__ = [
    "adopt",
    "finish_interrupted_adoption",
    "interrupted_original",
    "mark_adopted",
    "retire_original",
    "scale_original_down_again",
]
