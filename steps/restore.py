"""Restoring traffic to a slot, shared by rollback and repair: never onto a slot that is not available (I1).

If the slot was scaled down, it is scaled back up and waited for first; the intent (``RollingBack`` to that slot)
is written before the route changes (I3); the route is read back afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import retention, slots, traffic
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Obj

#: On a slot Deployment: the pod template it ran before this run's deploy replaced it, as JSON. A release now carries
#: the team's whole template, so a failed deploy must put that template back, not only its image.
RETAINED_TEMPLATE_ANNOTATION = f"{spec.API_GROUP}/retained-template"
#: A template larger than this is not kept (annotations share 256 KiB per object); the rollback then puts back only
#: the image, as the record says.
RETAINED_TEMPLATE_LIMIT = 64 * 1024


def make_available(ctx: StepContext, slot: spec.Slot, record: str, step: str) -> str:
    """Scale ``slot`` up if needed and wait until every replica is available; returns its image."""
    name = slots.deployment_name(ctx.service, slot)
    deployment = ctx.kube.get(DEPLOYMENTS, ctx.namespace, name)
    if deployment is None:
        raise CheckFailed(
            f"Deployment {ctx.namespace}/{name} no longer exists, so traffic cannot go back to slot "
            f"{slot.value}; redeploy the last good image with blue-green-deploy"
        )
    wanted = max(ctx.resource.spec.replicas, int(deployment["spec"].get("replicas", 0)), 1)
    if int(deployment["spec"].get("replicas", 0)) < wanted:
        slots.scale(ctx.kube, ctx.namespace, name, wanted, ctx.log)
        ctx.records.append(record, step, "scaled-up", f"{name} scaled to {wanted} before taking traffic back")
    if not slots.availability(ctx.kube.must_get(DEPLOYMENTS, ctx.namespace, name)).available:
        slots.wait_available(
            ctx.kube,
            ctx.namespace,
            name,
            spec.parse_duration(ctx.resource.spec.readiness_timeout).total_seconds(),
            ctx.log,
        )
    return slots.current_image(ctx.kube.must_get(DEPLOYMENTS, ctx.namespace, name), ctx.resource.spec.container)


def restore_traffic(ctx: StepContext, slot: spec.Slot, record: str, step: str) -> tuple[str, bool]:
    """Make ``slot`` available, then move all traffic to it (intent ``RollingBack``); returns (image, changed)."""
    image = make_available(ctx, slot, record, step)
    # The data plane's lag only warns: failing would leave a rollback that a re-run finds already done.
    moved = traffic.move_all_traffic(
        ctx,
        slot,
        record,
        step,
        intent=spec.Phase.rolling_back,
        describe_intent=f"restoring traffic to {slot.value}",
        lag_fails=False,
    )
    ctx.records.append(record, step, "restored", f"all traffic on {slot.value} ({image})", changed=moved.changed)
    return image, moved.changed


def retire_slot(ctx: StepContext, slot: spec.Slot, record: str, step: str) -> None:
    """The slot that failed: scaled to zero, or kept for ``spec.keepFailedVersion`` for debugging."""
    name = slots.deployment_name(ctx.service, slot)
    if ctx.router.live_slot() is slot:
        raise CheckFailed(f"refusing to retire slot {slot.value}: it is live")
    keep = spec.parse_duration(ctx.resource.spec.keep_failed_version)
    if keep.total_seconds() > 0:
        stamp = retention.until(ctx.resource.spec.keep_failed_version)
        if ctx.kube.get(DEPLOYMENTS, ctx.namespace, name) is not None:
            ctx.kube.merge_patch(
                DEPLOYMENTS, ctx.namespace, name, {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: stamp}}}
            )
        ctx.records.append(record, step, "kept", f"{name} kept for debugging until {stamp}")
    elif slots.scale(ctx.kube, ctx.namespace, name, 0, ctx.log):
        ctx.records.append(record, step, "scaled-down", f"{name} scaled to 0")


def remember_retained(existing: Obj | None, desired: Obj, record: str) -> bool:
    """Carry the idle slot's current template into ``desired``'s annotation, so a failed deploy can put it back.

    A retry of the same run keeps what its first attempt kept: by then the slot runs this run's template. Returns
    False when there was nothing to keep, or it was too large to keep.
    """
    if existing is None:
        return False
    annotations = existing["metadata"].get("annotations") or {}
    if annotations.get(slots.RECORD_ANNOTATION) == record:
        kept = annotations.get(RETAINED_TEMPLATE_ANNOTATION) or ""
    else:
        kept = json.dumps(existing["spec"]["template"], sort_keys=True, separators=(",", ":"))
    if not kept or len(kept) > RETAINED_TEMPLATE_LIMIT:
        return False
    desired["metadata"].setdefault("annotations", {})[RETAINED_TEMPLATE_ANNOTATION] = kept
    return True


def reinstate_retained(ctx: StepContext, slot: spec.Slot, image: str, until: str, record: str, step: str) -> bool:
    """Put the retained previous version back into the idle slot that a failed deploy borrowed.

    With two slots, a deploy goes into the slot that held the previous version; when that deploy fails before its
    switch, retiring the slot would also throw away the one-click rollback target that was still inside its retention
    window. Instead the slot gets its previous template back (kept by deploy-green; without it, the previous image),
    is waited on until available, and keeps its retain-until stamp. Returns False (nothing done) when the slot no
    longer exists.
    """
    name = slots.deployment_name(ctx.service, slot)
    container = ctx.resource.spec.container

    def put_back(deployment: dict[str, Any]) -> bool:
        template = deployment["spec"]["template"]
        index = slots.container_index(template, container, f"Deployment {ctx.namespace}/{name}")
        annotations = deployment["metadata"].setdefault("annotations", {}) or {}
        deployment["metadata"]["annotations"] = annotations
        kept = annotations.pop(RETAINED_TEMPLATE_ANNOTATION, None)
        if kept:
            deployment["spec"]["template"] = json.loads(kept)
            annotations[spec.RETAIN_UNTIL_ANNOTATION] = until
            return True
        if (
            template["spec"]["containers"][index]["image"] == image
            and annotations.get(spec.RETAIN_UNTIL_ANNOTATION) == until
        ):
            return False
        template["spec"]["containers"][index]["image"] = image
        annotations[spec.RETAIN_UNTIL_ANNOTATION] = until
        return True

    if ctx.kube.get(DEPLOYMENTS, ctx.namespace, name) is None:
        return False
    ctx.kube.modify(DEPLOYMENTS, ctx.namespace, name, put_back)
    make_available(ctx, slot, record, step)
    ctx.records.append(record, step, "reinstated", f"{name} runs the retained {image} again, kept until {until}")
    return True


__all__ = [
    "RETAINED_TEMPLATE_ANNOTATION",
    "make_available",
    "reinstate_retained",
    "remember_retained",
    "restore_traffic",
    "retire_slot",
]
