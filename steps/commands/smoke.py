"""``smoke``: every smoke test against the idle slot, concurrently within the spec's budget; each result recorded."""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from steps import gates
from steps.context import StepContext
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube
from steps.metrics import RunMetrics
from steps.preview_address import smoke_base_url
from steps.smoke import run_smoke_tests


def smoke_address(ctx: StepContext) -> str:
    """The preview Service on the port users reach, or on spec.smokeTestPort."""
    if ctx.resource.spec.smoke_test_port is not None:
        return smoke_base_url(ctx.resource, ctx.namespace, ctx.resource.spec.smoke_test_port)
    try:
        port = ctx.router.routed_port()
    except BadInput as error:
        raise BadInput(f"{error}; or set spec.smokeTestPort to the Service port the smoke tests call") from None
    return smoke_base_url(ctx.resource, ctx.namespace, port)


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The smoke step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "smoke")
    slot = spec.Slot(args.slot)
    image = gates.read_slot_image(ctx, slot)
    tests = ctx.resource.spec.smoke_tests
    if not tests:
        ctx.records.append(args.record, "smoke", "smoke-skipped", "the spec lists no smoke tests")
        gates.record_verdict(ctx, args.record, spec.Gate.smoke, slot, image, passed=True)
        return 0
    base_url = args.base_url or smoke_address(ctx)
    budget = spec.parse_duration(ctx.resource.spec.smoke_test_budget).total_seconds()
    report = run_smoke_tests(tests, base_url, budget)
    metrics = RunMetrics.from_env(ctx.service)
    for result in report.results:
        ctx.records.append(args.record, "smoke", "smoke-result", result.reason or "passed", **result.to_record())
        ctx.log("smoke-result", **result.to_record())
        metrics.observe_smoke_latency(result.name, result.latency_ms / 1000)
    metrics.push()
    gates.record_verdict(ctx, args.record, spec.Gate.smoke, slot, image, passed=report.passed)
    if not report.passed:
        raise CheckFailed(
            f"smoke tests failed on slot {args.slot} of {ctx.service}: {report.summary()}; "
            "traffic stays on the live slot"
        )
    return 0


__all__ = ["run"]
