"""``smoke``: every smoke test against the idle slot, concurrently within the spec's budget; each result recorded.

The tests go to an address the router names for this slot alone, on the port users reach: right after the preview is
pointed at this slot, its virtual IP may still lead to the live version, which would pass the tests in the new
version's place.
"""

from __future__ import annotations

import argparse

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import gates, progress
from steps.context import StepContext
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube
from steps.metrics import RunMetrics
from steps.preview_address import smoke_base_url, target_number
from steps.slots import deployment_name
from steps.smoke import run_smoke_tests


def routed_or_smoke_port(ctx: StepContext) -> int:
    """The Service port the smoke tests call: spec.smokeTestPort, or the port the route sends users to."""
    if ctx.resource.spec.smoke_test_port is not None:
        return ctx.resource.spec.smoke_test_port
    try:
        return ctx.router.routed_port()
    except BadInput as error:
        raise BadInput(f"{error}; or set spec.smokeTestPort to the Service port the smoke tests call") from None


def preview_url(ctx: StepContext) -> str:
    """The preview Service on the port the smoke tests call: where a person tries the new version."""
    return smoke_base_url(ctx.resource, ctx.namespace, routed_or_smoke_port(ctx))


def smoke_address(ctx: StepContext, slot: spec.Slot) -> str:
    """Where the smoke tests reach ``slot`` alone, on the Service port users reach (or spec.smokeTestPort)."""
    port = routed_or_smoke_port(ctx)
    main = ctx.router.main_service()
    deployment = ctx.kube.get(DEPLOYMENTS, ctx.namespace, deployment_name(ctx.service, slot))
    template = None if deployment is None else deployment["spec"]["template"]
    # A named targetPort the slot's pods do not name leaves the Service port, as the Service's own fallback does.
    container_port = next(
        (target_number(p, template) for p in main["spec"].get("ports") or [] if int(p["port"]) == port), None
    )
    address = ctx.router.check_address(slot, port, container_port or port)
    return f"{ctx.resource.spec.health_check.http_get.scheme.lower()}://{address}"


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The smoke step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "smoke")
    gates.require_run_record(ctx, args.record, "nothing was checked or written")
    slot = spec.Slot(args.slot)
    if progress.done_after_switch(ctx, args.record, slot):
        return 0
    image = gates.read_slot_image(ctx, slot)
    tests = ctx.resource.spec.smoke_tests
    if not tests:
        ctx.records.append(args.record, "smoke", "smoke-skipped", "the spec lists no smoke tests")
        gates.record_verdict(ctx, args.record, spec.Gate.smoke, slot, image, passed=True)
        return 0
    base_url = args.base_url or smoke_address(ctx, slot)
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
