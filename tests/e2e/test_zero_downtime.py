"""Zero downtime, measured on a real data path: steady HTTP load through kube-proxy and HAProxy during every phase.

The load harness (``testenv/load_harness.py``) sends real requests from a client network namespace to the
application Service's ClusterIP, directly and through an HAProxy hop, on kept-alive and new connections, while the
deploy and rollback templates run through the real Argo controller with ``argo submit ... --wait``. Every request
that did not get a 200 is a failure, and the goal is none. At the end a mutant (a cleanup that deletes the live slot)
runs under the same load, to show that the harness does count failures when there are some.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from testenv.demo_service import CLEANUP_CRON, NAMESPACE, ROLLBACK_TEMPLATE, DemoService, demo_image
from testenv.load_harness import LoadHarness, missing_tools
from testenv.traffic_picture import Band, draw, step_bands
from testenv.traffic_report import PathSummary, Phase, failed, summarise, table
from testenv.workflow_run import WorkflowRun

pytestmark = [pytest.mark.cluster]

SETTLE_SECONDS = 3.0  # after the last run, so requests already in flight are in the record
SCALE_DOWN_TIMEOUT = 60.0
MUTANT_TIMEOUT = 60.0


def _require_haproxy() -> None:
    problems = missing_tools()
    if problems and os.environ.get("CI"):
        pytest.fail(f"{'; '.join(problems)} (CI is set, so this is a failure rather than a skip)", pytrace=False)
    if problems:
        pytest.skip("; ".join(problems))


@dataclass
class Story:
    """The runs submitted under load, each as a phase with the versions it should leave."""

    service: DemoService
    load: LoadHarness
    phases: list[Phase]
    bands: list[Band]

    def run(self, name: str, old: str, new: str, expected: str, submit: Callable[[], WorkflowRun]) -> WorkflowRun:
        started = time.time()
        run = submit()
        ended = time.time()
        assert run.phase == expected, f"{name}: {run.summary()}"
        assert self.service.serving_version() == new, name
        assert self.load.watch is not None
        before = [c.slot for c in self.load.watch.changes if c.at < started]
        switches = [c.at for c in self.load.watch.changes if started <= c.at <= ended and c.slot != before[-1]]
        self.phases.append(Phase(name, started, ended, old, new, switches[0] if switches else None))
        self.bands.extend(step_bands(run))
        return run


def _scale_to_zero(service: DemoService, deployment: str) -> None:
    service.cluster.run_tool(["kubectl", "scale", f"deployment/{deployment}", "-n", NAMESPACE, "--replicas=0"])
    deadline = time.monotonic() + SCALE_DOWN_TIMEOUT
    while True:
        found = service.deployment(deployment)
        if found is not None and not (found.get("status") or {}).get("replicas"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{deployment} still has Pods {SCALE_DOWN_TIMEOUT}s after scaling to 0: {found}")
        time.sleep(0.2)  # bounded poll: the deployment controller reports the scale-down in its status


def _print_table(title: str, summaries: list[PathSummary]) -> str:
    text = f"\n{title}\n{table(summaries)}"
    print(text)
    return text


def test_every_phase_serves_every_request(demo_service: Callable[..., DemoService], tmp_path: Path) -> None:
    _require_haproxy()
    service = demo_service(retainPreviousVersion="1h")
    cluster_ip = service.service()["spec"]["clusterIP"]
    # The record and the client's and HAProxy's logs stay in pytest's temporary directory, to read after a failure.
    harness = LoadHarness(service.cluster, cluster_ip, NAMESPACE, service.name, workdir=tmp_path, keep_workdir=True)
    with harness as load:
        story = Story(service, load, [], [])
        story.run("adopt v1", "v1", "v1", "Succeeded", lambda: service.deploy(demo_image("v1")))
        story.run("deploy v2 (switch, retain v1)", "v1", "v2", "Succeeded", lambda: service.deploy(demo_image("v2")))
        story.run(
            "deploy v3: smoke fails, exit rollback",
            "v2",
            "v2",
            "Failed",
            lambda: service.deploy(demo_image("v3-fail-smoke")),
        )
        story.run("manual rollback to retained v1", "v2", "v1", "Succeeded", lambda: service.submit(ROLLBACK_TEMPLATE))
        story.run("deploy v4 (switch, retain v1)", "v1", "v4", "Succeeded", lambda: service.deploy(demo_image("v4")))
        retained = service.status().get("previousSlot")
        assert retained, service.status()

        def rollback_from_zero() -> WorkflowRun:
            _scale_to_zero(service, f"{service.name}-{retained}")
            return service.submit(ROLLBACK_TEMPLATE)

        story.run("rollback to v1 scaled to 0", "v4", "v1", "Succeeded", rollback_from_zero)
        short_retention = json.dumps({"spec": {"retainPreviousVersion": "1s"}})
        service.cluster.run_tool(
            ["kubectl", "patch", "bgd", service.name, "-n", NAMESPACE, "--type=merge", "-p", short_retention]
        )

        def deploy_and_clean() -> WorkflowRun:
            run = service.deploy(demo_image("v5"))
            old = service.slot(str(service.status().get("previousSlot") or ""))
            if run.phase == "Succeeded" and old is not None and old["spec"].get("replicas"):
                # The run's own cleanup found the 1s window still open; the cron removes the slot, as it would.
                cron = service.submit(CLEANUP_CRON)
                assert cron.phase == "Succeeded", cron.summary()
            return run

        before_cleanup = service.live_slot()
        story.run("deploy v5, cleanup removes v1", "v1", "v5", "Succeeded", deploy_and_clean)
        gone = service.slot(before_cleanup)
        assert gone is None or not gone["spec"].get("replicas"), gone
        time.sleep(SETTLE_SECONDS)  # not a wait for cluster state: the last requests' answers arrive
        real_end = time.time()
        # The mutant: a cleanup that deletes the live slot instead of the expired one.
        live = f"{service.name}-{service.live_slot()}"
        service.cluster.run_tool(["kubectl", "delete", "deployment", live, "-n", NAMESPACE, "--wait=false"])
        deadline = time.monotonic() + MUTANT_TIMEOUT
        while not any(line.start > real_end and failed(line) for line in load.lines()):
            assert time.monotonic() < deadline, f"no request failed within {MUTANT_TIMEOUT}s of deleting {live}"
            time.sleep(0.25)  # bounded poll of the harness's own record
        time.sleep(SETTLE_SECONDS)  # not a wait for cluster state: a few seconds of the outage on record
    lines = load.lines()
    overall = Phase("all real runs", load.started_at, real_end, "", "")
    mutant = Phase("MUTANT: cleanup deletes live slot", real_end, load.stopped_at, "v5", "v5")
    summaries = summarise([*story.phases, overall, mutant], lines)
    shown = _print_table(f"zero downtime on {service.name}: {len(lines)} requests", summaries)
    print(f"before every path first answered (Service not yet routed): {load.warmup_failed} failed")
    # Beside the record, in pytest's temporary directory, which pytest prunes; nothing is left in /tmp.
    picture = draw(lines, story.bands, tmp_path / "zero-downtime.png", service.name)
    print(f"picture: {picture}; the record: {load.out_path}")
    for summary in summaries:
        assert summary.sent > 0, shown
        # A client that fell behind would hide failures in requests it never sent.
        assert summary.skipped <= 0.05 * (summary.sent + summary.skipped), shown
        if summary.phase == mutant.name:
            assert summary.failed > 0, shown
            continue
        assert summary.failed == 0, shown
        assert summary.old_after_new == 0, shown
    for phase in story.phases:
        if phase.old_version != phase.new_version:
            assert phase.switch_at is not None, f"{phase.name}: the watch saw no selector change"
