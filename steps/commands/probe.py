"""``probe``: the spec's health check against the idle slot, through its preview Service; every attempt recorded."""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import gates
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Kube
from steps.metrics import RunMetrics
from steps.preview_address import preview_base_url
from steps.probe import ProbeAttempt, run_probe
from steps.slots import deployment_name


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The probe step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "probe")
    slot = kube.get(DEPLOYMENTS, ctx.namespace, deployment_name(ctx.service, spec.Slot(args.slot)))
    template = None if slot is None else slot["spec"]["template"]
    image = gates.slot_image(ctx, slot)
    base_url = args.base_url or preview_base_url(ctx.resource, ctx.router.main_service(), ctx.namespace, template)
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
