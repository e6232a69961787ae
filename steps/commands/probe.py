"""``probe``: the spec's health check against a pod of the idle slot that its preview offers; each attempt recorded.

The pod is called by its own address, not through the preview's virtual IP: right after the preview is pointed at
this slot, the node may still send that IP to the live slot's pods, whose health says nothing of the new version.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import gates
from steps.context import StepContext
from steps.endpoints import slot_pod_host
from steps.errors import CheckFailed
from steps.kube import Kube
from steps.metrics import RunMetrics
from steps.probe import ProbeAttempt, run_probe
from steps.slots import deployment_name


def slot_pod_url(ctx: StepContext, slot: spec.Slot) -> str:
    """A ready pod of ``slot`` on the health check's container port."""
    http_get = ctx.resource.spec.health_check.http_get
    host = slot_pod_host(ctx.kube, ctx.namespace, ctx.resource.preview_service_name(), ctx.service, slot)
    return f"{http_get.scheme.lower()}://{host}:{http_get.port}"


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The probe step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "probe")
    slot = kube.get(DEPLOYMENTS, ctx.namespace, deployment_name(ctx.service, spec.Slot(args.slot)))
    image = gates.slot_image(ctx, slot)
    base_url = args.base_url or slot_pod_url(ctx, spec.Slot(args.slot))
    metrics = RunMetrics.from_env(ctx.service)

    def attempt(result: ProbeAttempt) -> None:
        ctx.records.append(args.record, "probe", "probe-attempt", result.describe(), **result.to_record())
        ctx.log("probe-attempt", **result.to_record())
        metrics.observe_probe_latency(result.latency_ms / 1000)

    result = run_probe(ctx.resource.spec.health_check, base_url, on_attempt=attempt)
    metrics.push()
    ctx.records.append(args.record, "probe", "probe-result", result.reason, **result.to_record())
    gates.record_verdict(ctx, args.record, spec.Gate.probe, spec.Slot(args.slot), image, passed=result.healthy)
    if not result.healthy:
        raise CheckFailed(
            f"slot {args.slot} of {ctx.service} failed its health check: {result.reason}; "
            "traffic stays on the live slot"
        )
    return 0


__all__ = ["run"]
