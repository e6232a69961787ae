"""Deploys back to back through Argo across several services, under steady real HTTP load, with the cleanup running.

The shape of a busy day (the issue's "fifty deploys a day") squeezed together: ``BLUEGREEN_BENCH_DEPLOYS`` deploys
(default 10) round-robin over ``BLUEGREEN_BENCH_SERVICES`` services (default 2), every fifth one an image whose smoke
test fails so that its exit handler rolls it back, one manual rollback after the first successful deploy, and the
cleanup CronWorkflow submitted every :data:`CRON_EVERY_SECONDS` besides its own schedule. Each service has its own load
harness (a share of the 200 requests per second, directly and through HAProxy). ``make bench DEPLOYS=50 SERVICES=5``
runs the full day.

Printed: whether every run ended as expected, the failed requests, the p50/p95 deploy time and the total time. The
failed requests are asserted to be 0 (as in the end-to-end tests); the timings are figures only.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack

import pytest

from benchmarks.results import BenchResults
from testenv.demo_service import (
    CLEANUP_CRON,
    ROLLBACK_TEMPLATE,
    DemoService,
    create_demo_service,
    demo_image,
    install_manifests,
)
from testenv.load_harness import DEFAULT_RATE, LoadHarness, missing_tools
from testenv.local_cluster import ClusterTuning, LocalCluster
from testenv.traffic_report import Phase, percentile, summarise, table

DEPLOYS = int(os.environ.get("BLUEGREEN_BENCH_DEPLOYS", "10"))
SERVICES = int(os.environ.get("BLUEGREEN_BENCH_SERVICES", "2"))
#: The suite's 15-minute default cannot hold 50 deploys: allow each deploy 2 minutes, plus the set-up.
SECONDS_PER_DEPLOY = 120

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600 + SECONDS_PER_DEPLOY * DEPLOYS)]
FAILING_EVERY = 5  # every fifth deploy's smoke test fails
CRON_EVERY_SECONDS = 60.0
TUNED_REQUEUE = "1s"


class CronSubmitter:
    """Submits the cleanup CronWorkflow every so often while the deploys run, and notes how each sweep ended.

    Each sweep is waited for before the next: the CronWorkflow keeps only its last three successful runs, so a sweep
    looked up at the end might already be gone.
    """

    def __init__(self, service: DemoService) -> None:
        self._service = service
        self.phases: list[str] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cron", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(CRON_EVERY_SECONDS):
            sweep = self._service.submit(CLEANUP_CRON, wait=False)
            self.phases.append(self._service.wait_workflow(sweep.name).phase)

    def stop(self) -> list[str]:
        """Stop submitting; how every sweep ended, once the last one has."""
        self._stopped.set()
        self._thread.join()
        return self.phases


def test_deploys_back_to_back_under_load(local_cluster: LocalCluster, bench_results: BenchResults) -> None:
    """The day's deploys on one cluster, one after the other, each service under its own load."""
    if missing_tools():
        pytest.skip("; ".join(missing_tools()))
    install_manifests(local_cluster)
    if local_cluster.owned:
        local_cluster.retune(ClusterTuning(default_requeue_time=TUNED_REQUEUE))
    services = [create_demo_service(local_cluster, name=f"bench-{index}") for index in range(SERVICES)]
    for service in services:
        adopted = service.deploy(demo_image("v1"))
        assert adopted.phase == "Succeeded", adopted.summary()
    outcomes: list[tuple[str, str, str]] = []  # (what, expected phase, actual phase)
    deploy_seconds: list[float] = []
    began = time.time()
    with ExitStack() as stack:
        loads = []
        for service in services:
            ip = service.service()["spec"]["clusterIP"]
            load = LoadHarness(local_cluster, ip, service.namespace, service.name, rate=DEFAULT_RATE / SERVICES)
            loads.append(stack.enter_context(load))
        cron = CronSubmitter(services[0])
        rolled_back = False
        for index in range(DEPLOYS):
            service = services[index % SERVICES]
            failing = index % FAILING_EVERY == FAILING_EVERY - 1
            tag = f"v{index + 2}" + ("-fail-smoke" if failing else "")
            expected = "Failed" if failing else "Succeeded"
            started = time.monotonic()
            run = service.deploy(demo_image(tag))
            deploy_seconds.append(time.monotonic() - started)
            outcomes.append((f"{service.name} {tag}", expected, run.phase))
            if not failing and not rolled_back:
                rollback = service.submit(ROLLBACK_TEMPLATE)
                outcomes.append((f"{service.name} manual rollback", "Succeeded", rollback.phase))
                rolled_back = True
        sweeps = cron.stop()
    total = time.time() - began
    unexpected = [o for o in outcomes if o[1] != o[2]]
    unexpected += [("cleanup sweep", "Succeeded", phase) for phase in sweeps if phase != "Succeeded"]
    lines = [line for load in loads for line in load.lines()]
    # Each harness's record starts once its Service answered on every path; nothing was deployed before that.
    whole = Phase("all deploys", max(load.started_at for load in loads), time.time(), "", "")
    summaries = summarise([whole], lines)
    failed = sum(s.failed for s in summaries)
    print(f"\n== {DEPLOYS} deploys over {SERVICES} services under load (DEFAULT_REQUEUE_TIME={TUNED_REQUEUE}) ==")
    print(f"runs: {len(outcomes)} ({DEPLOYS} deploys, 1 manual rollback), cleanup sweeps submitted: {len(sweeps)}")
    print("all ended as expected" if not unexpected else f"NOT as expected: {unexpected}")
    print(f"failed requests: {failed} of {sum(s.sent for s in summaries)}")
    print(f"deploy time: p50 {percentile(deploy_seconds, 50):.1f}s  p95 {percentile(deploy_seconds, 95):.1f}s")
    print(f"total time: {total:.0f}s")
    print(table(summaries))
    bench_results.record(
        "under_load",
        {
            "deploys": DEPLOYS,
            "services": SERVICES,
            "failing_every": FAILING_EVERY,
            "requeue": TUNED_REQUEUE if local_cluster.owned else None,
            "rate_per_second": DEFAULT_RATE,
            "runs": [{"what": what, "expected": expected, "phase": phase} for what, expected, phase in outcomes],
            "sweeps": sweeps,
            "deploy_s": deploy_seconds,
            "total_s": total,
            "paths": [
                {
                    "target": s.target,
                    "sent": s.sent,
                    "failed": s.failed,
                    "retried": s.retried,
                    "skipped": s.skipped,
                    "p50_ms": s.p50_ms,
                    "p99_ms": s.p99_ms,
                    "max_ms": s.max_ms,
                }
                for s in summaries
            ],
        },
    )
    assert not unexpected, unexpected
    assert failed == 0, table(summaries)
