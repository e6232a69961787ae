"""End-to-end figures through the real Argo controller on the local cluster: printed as medians, never asserted.

For each controller setting (Argo's default requeue time, then a tuned one) it measures, with the demo app ready at
once:

- submit to ``Succeeded`` of the deploy template;
- for every step, where its time went: controller queueing (the previous step's end to its Pod's creation), Pod start
  (creation to the step's container starting), the step's own work (its container running), and the controller
  noticing the end (the container's end to the node's end); a step in the release Pod after the first has no queueing
  or Pod start of its own, and its work runs from the previous step's exit (see ``testenv.step_timing``);
- a failed smoke test's program ending to the exit handler's rollback program ending (the containers' own times,
  not the nodes', which Argo stamps when it next looks);
- submit of the rollback template to traffic restored (the Service selecting the old slot again).

Kubernetes and Argo stamp times to the second, so the per-step split is coarse; the wall times are measured here.
Set ``BLUEGREEN_BENCH_E2E_RUNS`` for more runs than the default 3.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from typing import Any

import pytest

from benchmarks.results import BenchResults
from testenv.demo_service import (
    ROLLBACK_TEMPLATE,
    DemoService,
    create_demo_service,
    demo_image,
    install_manifests,
)
from testenv.local_cluster import ClusterTuning, LocalCluster
from testenv.step_timing import program_ended, step_split

pytestmark = [pytest.mark.cluster]

RUNS = int(os.environ.get("BLUEGREEN_BENCH_E2E_RUNS", "3"))
TUNED_REQUEUE = "1s"


def _spread(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    low, high = min(samples), max(samples)
    return f"median {statistics.median(samples):6.1f}s  (min {low:.1f}, max {high:.1f}, n={len(samples)})"


def _wait_live_slot(service: DemoService, slot: str, deadline_seconds: float = 300.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while service.live_slot() != slot:
        if time.monotonic() > deadline:
            raise AssertionError(f"{service.name} never went back to {slot}")
        time.sleep(0.05)  # bounded poll of the Service selector, the route itself


def _measure(cluster: LocalCluster, label: str) -> dict[str, Any]:
    """Deploys, failed smoke tests and rollbacks under the cluster's current setting; their raw samples."""
    service = create_demo_service(cluster, replicas=2)
    first = service.deploy(demo_image("v1"))
    assert first.phase == "Succeeded", first.summary()
    deploys: list[float] = []
    splits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    failure_to_safe: list[float] = []
    rollbacks: list[float] = []
    for index in range(RUNS):
        before = service.live_slot()
        started = time.monotonic()
        run = service.deploy(demo_image(f"v{index + 2}"))
        deploys.append(time.monotonic() - started)
        assert run.phase == "Succeeded", run.summary()
        for template, parts in step_split(cluster, run).items():
            for part, seconds in parts.items():
                splits[template][part].append(seconds)

        # The previous version is warm in the slot the deploy left: the one-click rollback puts traffic back on it.
        started = time.monotonic()
        rollback = service.submit(ROLLBACK_TEMPLATE, wait=False)
        _wait_live_slot(service, before)
        rollbacks.append(time.monotonic() - started)
        assert service.wait_workflow(rollback.name).phase == "Succeeded"

        failed = service.deploy(demo_image(f"v{index + 2}-fail-smoke"))
        assert failed.phase == "Failed", failed.summary()
        smoke_ended = program_ended(cluster, failed, "smoke")
        rollback_ended = program_ended(cluster, failed, "rollback")
        if smoke_ended is not None and rollback_ended is not None:
            failure_to_safe.append((rollback_ended - smoke_ended).total_seconds())

    print(f"\n== end to end through Argo, {label} ==")
    print(f"deploy, submit to Succeeded:          {_spread(deploys)}")
    print(f"failed smoke to rollback done:        {_spread(failure_to_safe)}")
    print(f"rollback template, submit to restored: {_spread(rollbacks)}")
    print("where each step's time goes (medians, seconds; Kubernetes stamps whole seconds):")
    print(f"  {'step':<14}{'queueing':>10}{'pod start':>11}{'own work':>10}{'noticing':>10}")
    for template, by_part in splits.items():
        cells = "".join(f"{statistics.median(by_part[p]):>10.1f}" for p in ("queueing", "pod start", "own work"))
        print(f"  {template:<14}{cells}{statistics.median(by_part['noticing']):>10.1f}")
    return {
        "deploy_s": deploys,
        "failed_smoke_to_rollback_s": failure_to_safe,
        "rollback_s": rollbacks,
        "steps": {template: dict(by_part) for template, by_part in splits.items()},
    }


def test_end_to_end_figures_default_and_tuned(local_cluster: LocalCluster, bench_results: BenchResults) -> None:
    """Both controller settings on one cluster, one after the other."""
    install_manifests(local_cluster)
    if local_cluster.owned:
        local_cluster.retune(ClusterTuning(default_requeue_time=None))
    default = _measure(local_cluster, "Argo's default requeue time (10s)")
    if not local_cluster.owned:
        pytest.skip("an attached cluster cannot be retuned; start the benchmark without BLUEGREEN_TEST_CLUSTER")
    local_cluster.retune(ClusterTuning(default_requeue_time=TUNED_REQUEUE))
    tuned = _measure(local_cluster, f"DEFAULT_REQUEUE_TIME={TUNED_REQUEUE}")
    bench_results.record(
        "end_to_end",
        {"runs": RUNS, "default": {"requeue": "10s", **default}, "tuned": {"requeue": TUNED_REQUEUE, **tuned}},
    )
