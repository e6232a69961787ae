"""Whole runs that lose a step's Pod, as a node drain, a lost node or `kubectl delete pod` would take it.

Argo retries a step whose Pod errored (``retryStrategy`` on Pod errors), and a retried release Pod runs every step
of its set again from the start: preflight included. Each test below submits real deploys through ``argo submit``,
deletes (or evicts) the step's Pod at one boundary, and holds the run to the only two endings the product allows:

* it succeeded, with the new version live and the previous one retained, warm and unchanged; or
* it rolled back, with the previous version live and intact.

All the while the load harness sends real requests through kube-proxy (and an HAProxy hop) to the service router's
Service, and none of them may fail.

A boundary before the switch must be one the run cannot outrun: the release Pod's steps after deploy-green take a few
hundred milliseconds, less than it takes to see a container's end and send the delete. So the services of those runs
probe with an initial delay, which holds the release Pod between deploy-green and probe, and those runs must show the
Pod run again: preflight resumed the run, as its record says. The point between smoke and switch cannot be held from
outside without a hook in the product; a release Pod lost there and run again from preflight is proven on the real
API server in tests/integration/test_retried_release.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testenv.demo_service import NAMESPACE, DemoService, demo_image, workflow_pods
from testenv.load_harness import LoadHarness
from testenv.rest import request
from testenv.traffic_report import Phase, summarise, table
from testenv.workflow_run import WorkflowRun
from tests.e2e.test_zero_downtime import _require_haproxy

pytestmark = [pytest.mark.cluster]

#: How long a boundary may take to come: a step's Pod is scheduled, started and reaches it well within this.
BOUNDARY_TIMEOUT = 240.0
#: The Pod that runs preflight, deploy-green, probe, smoke and switch as the containers of one set.
RELEASE_POD = "release"
#: The probe's initial delay for runs that lose their Pod before the switch: far longer than a delete takes to land.
PROBE_HOLD_SECONDS = 10


@dataclass(frozen=True)
class Boundary:
    """Where in a run its Pod is taken away: once ``container`` of the Pod running ``template`` is in ``state``."""

    name: str
    template: str
    container: str
    #: ``finished``: the container ended with exit code 0 (the boundary after a step); ``running``: it runs now.
    state: str


AFTER_PREFLIGHT = Boundary("after preflight", RELEASE_POD, "preflight", "finished")
AFTER_DEPLOY_GREEN = Boundary("after deploy-green", RELEASE_POD, "deploy-green", "finished")
AFTER_SWITCH = Boundary("after switch", RELEASE_POD, "switch", "finished")
DURING_RETAIN = Boundary("during retain", "retain", "main", "running")


def _node_template(pod: dict[str, Any]) -> str:
    node = (pod["metadata"].get("annotations") or {}).get("workflows.argoproj.io/node-name", "")
    return str(node).rsplit(".", 1)[-1].split("(", 1)[0]


def _reached(pod: dict[str, Any], boundary: Boundary) -> bool:
    if _node_template(pod) != boundary.template or pod["metadata"].get("deletionTimestamp"):
        return False
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != boundary.container:
            continue
        state = status.get("state") or {}
        if boundary.state == "running":
            return "running" in state
        return (state.get("terminated") or {}).get("exitCode") == 0
    return False


def wait_for_boundary(service: DemoService, workflow: str, boundary: Boundary) -> str:
    """The name of the workflow's Pod once it reaches ``boundary``; fails when the run ends first."""
    deadline = time.monotonic() + BOUNDARY_TIMEOUT
    while True:
        for pod in workflow_pods(service.cluster, service.namespace, workflow):
            if _reached(pod, boundary):
                return str(pod["metadata"]["name"])
        run = service.workflow(workflow)
        if run.phase not in ("", "Pending", "Running"):
            # What ended the run early, for whoever reads the failure.
            events = service.cluster.run_tool(["kubectl", "get", "events", "-n", service.namespace], check=False)
            print(events.stdout[-20000:])
        assert run.phase in ("", "Pending", "Running"), f"{workflow} ended before {boundary.name}: {run.summary()}"
        assert time.monotonic() < deadline, f"{workflow} did not reach {boundary.name} in {BOUNDARY_TIMEOUT}s"
        time.sleep(0.1)  # bounded poll: a container's end shows only in its Pod's status


def delete_pod(service: DemoService, pod: str) -> None:
    """What `kubectl delete pod` does: a graceful delete; the node agent stops the Pod's containers."""
    service.cluster.run_tool(["kubectl", "delete", "pod", pod, "-n", service.namespace, "--wait=false"])


def evict_pod(service: DemoService, pod: str) -> None:
    """What `kubectl drain` does: the Eviction API, which checks PodDisruptionBudgets and then deletes gracefully."""
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": service.namespace},
    }
    request(service.cluster.api, "POST", f"/api/v1/namespaces/{service.namespace}/pods/{pod}/eviction", body=eviction)


def slot_image(service: DemoService, slot: str) -> tuple[str, int]:
    """The image a slot's Deployment runs and its available replicas; ("", 0) when the slot does not exist."""
    found = service.slot(slot)
    if found is None:
        return "", 0
    image = found["spec"]["template"]["spec"]["containers"][0]["image"]
    return str(image), int((found.get("status") or {}).get("availableReplicas") or 0)


@dataclass
class PodLossStory:
    """Deploys under load, each losing its Pod at one boundary; what each ended as, for the table."""

    service: DemoService
    load: LoadHarness
    phases: list[Phase]
    endings: list[str]

    def deploy_losing_pod(
        self,
        tag: str,
        boundary: Boundary,
        take_away: Callable[[DemoService, str], None] = delete_pod,
        *,
        retried: bool = False,
    ) -> WorkflowRun:
        """One deploy whose Pod is taken away at ``boundary``; ``retried``: Argo must have run the Pod again."""
        old_tag = self.service.serving_version()
        old_slot = self.service.live_slot()
        old_image, _ = slot_image(self.service, old_slot)
        started = time.time()
        submitted = self.service.deploy(demo_image(tag), wait=False)
        pod = wait_for_boundary(self.service, submitted.name, boundary)
        take_away(self.service, pod)
        run = self.service.wait_workflow(submitted.name)
        ended = time.time()
        self.phases.append(Phase(f"{tag}: Pod lost {boundary.name}", started, ended, old_tag, tag))
        self.endings.append(f"{tag} ({boundary.name}): {run.phase}")
        live = self.service.live_slot()
        live_image, live_ready = slot_image(self.service, live)
        status = self.service.status()
        where = f"{tag}, Pod {pod} lost {boundary.name}: {run.summary()}\nstatus: {json.dumps(status)}"
        record = self.service.record_of(run.name)
        outcome = (record.get("status") or {}).get("outcome")
        if retried:
            # Argo either retries the node (a new Pod) or, when it finds the Pod gone before it saw it fail, creates
            # the node's Pod again under the same name; either way preflight runs again and says it resumed the run.
            entries = (record.get("status") or {}).get("entries") or []
            resumed = [e for e in entries if (e.get("step"), e.get("event")) == ("preflight", "resumed")]
            assert resumed, f"the Pod taken away was not run again: its record shows no resumed preflight; {where}"
        if run.phase == "Succeeded":
            assert live != old_slot and live_image == demo_image(tag), where
            assert self.service.settles_on(tag) == tag, where
            retained_image, retained_ready = slot_image(self.service, old_slot)
            assert retained_image == old_image and retained_ready > 0, (
                f"the previous version must stay warm in slot {old_slot}: it runs {retained_image!r} with "
                f"{retained_ready} available; {where}"
            )
            assert status.get("previousSlot") == old_slot and status.get("previousImage") == old_image, where
            assert outcome == "Succeeded", where
        else:
            assert live == old_slot and live_image == old_image and live_ready > 0, where
            assert self.service.settles_on(old_tag) == old_tag, where
            assert outcome == "RolledBack", where
        return run

    def assert_no_failed_requests(self) -> None:
        lines = self.load.lines()
        summaries = summarise(self.phases, lines)
        shown = f"\n{self.service.name}: {len(lines)} requests\n{table(summaries)}\n" + "\n".join(self.endings)
        print(shown)
        for summary in summaries:
            assert summary.sent > 0, shown
            assert summary.skipped <= 0.05 * (summary.sent + summary.skipped), shown
            assert summary.failed == 0, shown


def _story(service: DemoService, load: LoadHarness) -> PodLossStory:
    return PodLossStory(service, load, [], [])


def _adopted_under_load(
    demo_service: Callable[..., DemoService], tmp_path: Path, *, hold_before_probe: bool = False
) -> tuple[DemoService, LoadHarness]:
    _require_haproxy()
    held = {
        "healthCheck": {
            "httpGet": {"path": "/health", "port": 8080},
            "initialDelaySeconds": PROBE_HOLD_SECONDS,
            "periodSeconds": 1,
        }
    }
    service = demo_service(retainPreviousVersion="1h", **(held if hold_before_probe else {}))
    run = service.deploy(demo_image("v1"))
    assert run.phase == "Succeeded", run.summary()
    cluster_ip = service.service()["spec"]["clusterIP"]
    load = LoadHarness(service.cluster, cluster_ip, NAMESPACE, service.name, workdir=tmp_path, keep_workdir=True)
    return service, load


def test_a_release_pod_deleted_or_evicted_before_the_switch_resumes_the_run(
    demo_service: Callable[..., DemoService], tmp_path: Path
) -> None:
    """`kubectl delete pod` after preflight, and a drain's eviction after deploy-green: both Pods are run again."""
    service, harness = _adopted_under_load(demo_service, tmp_path, hold_before_probe=True)
    with harness as load:
        story = _story(service, load)
        deleted = story.deploy_losing_pod("v2", AFTER_PREFLIGHT, retried=True)
        # The Eviction API checks PodDisruptionBudgets, then deletes gracefully; the README says such a Pod is retried.
        evicted = story.deploy_losing_pod("v3", AFTER_DEPLOY_GREEN, evict_pod, retried=True)
    story.assert_no_failed_requests()
    assert deleted.phase == "Succeeded" and evicted.phase == "Succeeded", story.endings


def test_a_release_pod_lost_after_the_switch_keeps_the_previous_version(
    demo_service: Callable[..., DemoService], tmp_path: Path
) -> None:
    service, harness = _adopted_under_load(demo_service, tmp_path)
    with harness as load:
        story = _story(service, load)
        story.deploy_losing_pod("v2", AFTER_SWITCH)
        story.deploy_losing_pod("v3", DURING_RETAIN)
    story.assert_no_failed_requests()
