"""``probe``: the spec's health check against the idle slot alone; every attempt recorded.

Not through the preview's virtual IP: right after the preview is pointed at this slot, the node may still send that
IP to the live slot's pods, whose health says nothing of the new version. The router names an address that leads to
this slot only (:meth:`steps.routing.base.Router.check_address`).
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import gates, progress
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Kube, Obj
from steps.metrics import RunMetrics
from steps.preview_address import service_port_for
from steps.probe import ProbeAttempt, run_probe
from steps.slots import deployment_name


def slot_check_url(ctx: StepContext, slot: spec.Slot, template: Obj | None) -> str:
    """Where the health check reaches ``slot`` alone (see :meth:`Router.check_address`)."""
    http_get = ctx.resource.spec.health_check.http_get
    service_port = service_port_for(ctx.router.main_service(), http_get.port, template)
    return f"{http_get.scheme.lower()}://{ctx.router.check_address(slot, service_port, http_get.port)}"


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The probe step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "probe")
    gates.require_run_record(ctx, args.record, "nothing was checked or written")
    if progress.done_after_switch(ctx, args.record, spec.Slot(args.slot)):
        return 0
    slot = kube.get(DEPLOYMENTS, ctx.namespace, deployment_name(ctx.service, spec.Slot(args.slot)))
    image = gates.slot_image(ctx, slot)
    template = None if slot is None else slot["spec"]["template"]
    base_url = args.base_url or slot_check_url(ctx, spec.Slot(args.slot), template)
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
