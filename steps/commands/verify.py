"""``verify``: post-switch analysis against Prometheus; a breach fails the run so the exit handler rolls back."""

from __future__ import annotations

import argparse

from steps.analysis import AnalysisSample, run_analysis
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Kube


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The verify step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "verify")
    analysis = ctx.resource.spec.analysis
    if analysis is None:
        ctx.records.append(args.record, "verify", "analysis-skipped", "the spec has no analysis")
        return 0

    def sample(result: AnalysisSample) -> None:
        ctx.records.append(args.record, "verify", "analysis-sample", result.detail, **result.to_record())
        ctx.log("analysis-sample", **result.to_record())

    report = run_analysis(analysis, on_sample=sample)
    ctx.records.append(args.record, "verify", "analysis-result", report.reason, **report.to_record())
    if not report.passed:
        raise CheckFailed(f"post-switch analysis of {ctx.service} failed: {report.reason}; the run rolls back")
    return 0


__all__ = ["run"]
