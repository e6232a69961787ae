"""The emergency route against what runs beside it: a stuck deploy, the repair cron, a new deploy, a forced aside run.

``kubectl bluegreen route`` is used when a workflow is stuck or gone, so these start from exactly that: a deploy that
switched traffic to a bad version and whose workflow no longer exists. The route runs in-process as an operator with
the admin's rights, and is stopped dead right after it moved the Service's selector, as a killed terminal or a lost
laptop would stop it.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, RUN_WORKFLOW_ENV, WORKFLOWS
from kubectl_bluegreen.commands import route
from kubectl_bluegreen.connection import Cluster, Connection, Target
from kubectl_bluegreen.errors import PluginError
from steps.kube import ApiRetryPolicy, Kube
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


class Interrupted(BaseException):
    """The route's process dies here: no handler in it can tidy up."""


class DiesAfterMovingTraffic(Kube):
    """The operator's client, which dies right after the first write to the service's own Service."""

    def __init__(self, sut: ServiceUnderTest) -> None:
        super().__init__(sut.admin, retry=ApiRetryPolicy(deadline_seconds=10.0))
        self.service_path = f"/namespaces/{sut.namespace}/services/{sut.name}"

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = super()._send(method, path, **kwargs)
        if method in {"PUT", "PATCH"} and path.endswith(self.service_path):
            raise Interrupted(f"{method} {path}")
        return answer


def operator_cluster(sut: ServiceUnderTest, kube: Kube) -> Cluster:
    """The plugin's connection for an operator with the admin's rights, talking through ``kube``."""
    cluster = Cluster(Target(namespace=sut.namespace))
    connection = Connection(
        configuration=sut.admin.configuration, namespace=sut.namespace, context="", user="operator"
    )
    connection.kube = kube
    cluster._connection = connection
    return cluster


def run_route(sut: ServiceUnderTest, kube: Kube, to: spec.Slot, *, force: bool = False) -> int:
    args = argparse.Namespace(service=sut.name, to=to.value, force=force, reason="v3 is broken")
    return route.run(operator_cluster(sut, kube), args)


def stuck_on_a_bad_version(sut: ServiceUnderTest, tmp_path: Path) -> tuple[spec.Slot, spec.Slot]:
    """v2 deployed and retained as good; then a deploy of v3 that switched and whose workflow is gone."""
    good = spec.Slot(sut.deploy(IMAGE_V2, "wf-good", tmp_path / "good", cleanup=False))
    target, record = sut.preflight(IMAGE_V3, "wf-gone", tmp_path / "gone")  # no Workflow object: it is gone
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    sut.prove(target, record)
    assert sut.run_switch(target, record) == 0
    assert sut.live_slot() is spec.Slot(target)
    return good, spec.Slot(target)


def interrupted_route_back(sut: ServiceUnderTest, good: spec.Slot) -> None:
    with pytest.raises(Interrupted):
        run_route(sut, DiesAfterMovingTraffic(sut), good)
    assert sut.live_slot() is good, "the route died after moving traffic"


def open_route_record(sut: ServiceUnderTest) -> dict[str, Any]:
    record = sut.record(str(sut.status().record))
    assert record["spec"]["workflow"].startswith(route.RUN_PREFIX), record["spec"]
    return record


def test_the_cron_never_reverses_an_interrupted_route(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("route-cron", router="service")
    good, bad = stuck_on_a_bad_version(sut, tmp_path)
    interrupted_route_back(sut, good)
    record = open_route_record(sut)

    assert sut.run_cleanup(all_services=True) == 0

    assert sut.live_slot() is good, "the cron sent traffic back to the broken slot"
    assert sut.replicas(f"{sut.name}-{good.value}"), "the cron scaled the good slot down"
    assert (sut.record(record["metadata"]["name"]).get("status") or {}).get("finishedAt") is None
    # The operator finishes the route by running it again.
    assert run_route(sut, sut.admin_kube, good) == 0
    closed = sut.record(record["metadata"]["name"])["status"]
    assert closed["outcome"] == spec.Phase.succeeded.value, closed
    status = sut.status()
    assert status.workflow is None and status.active_slot is good and status.phase is spec.Phase.succeeded, status
    assert sut.replicas(f"{sut.name}-{bad.value}"), "the slot routed away from stays for its retention"


def test_a_deploy_waits_for_an_interrupted_route(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("route-lock", router="service")
    good, _ = stuck_on_a_bad_version(sut, tmp_path)
    interrupted_route_back(sut, good)
    record = open_route_record(sut)

    assert sut.run_preflight(IMAGE_V3, "wf-next", out=tmp_path / "next") != 0
    status = sut.status()
    assert status.record == record["metadata"]["name"] and status.workflow != "wf-next", status
    assert not any(r["metadata"]["name"] == "wf-next" for r in sut.records()), "preflight wrote before refusing"
    assert sut.live_slot() is good


def test_the_exit_handler_of_a_run_a_route_forced_aside_leaves_traffic_alone(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("route-force", router="service")
    sut.deploy(IMAGE_V2, "wf-good", tmp_path / "good", cleanup=False)
    # A run that proved v3 and then hung before its switch, while the live v2 started failing.
    target, record = sut.preflight(IMAGE_V3, "wf-stuck", tmp_path / "stuck")
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    sut.prove(target, record)
    fixed = spec.Slot(target)
    # The operator sends traffic to the proven v3 by hand; the route takes the service from the hung run.
    assert run_route(sut, sut.admin_kube, fixed, force=True) == 0
    assert sut.live_slot() is fixed

    sut.exit_handler("wf-stuck", '[{"displayName": "switch", "message": "Stopped with strategy \'Stop\'"}]')

    assert sut.live_slot() is fixed, "the forced-aside run's exit handler undid the route"
    assert sut.replicas(f"{sut.name}-{fixed.value}"), "the forced-aside run's exit handler retired the routed slot"
    stuck = sut.record("wf-stuck")["status"]
    assert stuck["finishedAt"] and stuck["outcome"] == spec.Phase.failed.value, stuck


class RoutesBeforeScalingDown(Kube):
    """The sweep's client, which lets an operator's route run just before the sweep scales a slot down."""

    def __init__(self, sut: ServiceUnderTest, slot: spec.Slot) -> None:
        super().__init__(sut.steps_kube.api, retry=sut.steps_kube.retry)
        self.sut = sut
        self.slot = slot
        self.slot_path = f"/namespaces/{sut.namespace}/deployments/{sut.name}-{slot.value}"
        self.route_outcome = ""

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        if method == "PATCH" and path.endswith(self.slot_path) and not self.route_outcome:
            try:
                self.route_outcome = f"exit {run_route(self.sut, self.sut.admin_kube, self.slot)}"
            except PluginError as refused:
                self.route_outcome = f"refused: {refused}"
        return super()._send(method, path, **kwargs)


def test_the_cleanup_never_removes_a_slot_a_route_moves_to(
    make_service: ServiceFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sut = make_service("route-sweep", router="service")
    sut.deploy(IMAGE_V2, "wf-v2", tmp_path / "v2", cleanup=False)
    old = sut.live_slot().other  # type: ignore[union-attr]
    # Its retention is over, so the sweep removes it; meanwhile an operator wants that old version back.
    sut.admin_kube.merge_patch(
        DEPLOYMENTS,
        sut.namespace,
        f"{sut.name}-{old.value}",
        {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: "2000-01-01T00:00:00Z"}}},
    )
    # The sweep runs in a workflow of its own, which Argo shows as running for as long as the sweep lasts.
    sweep_workflow = "blue-green-cleanup-1"
    sut.admin_kube.create(
        WORKFLOWS,
        sut.namespace,
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": sweep_workflow, "labels": {"workflows.argoproj.io/controller-instanceid": "tests"}},
            "spec": {"workflowTemplateRef": {"name": "blue-green-deploy"}},
        },
    )
    monkeypatch.setenv(RUN_WORKFLOW_ENV, sweep_workflow)
    racing = RoutesBeforeScalingDown(sut, old)

    assert dataclasses.replace(sut, steps_kube=racing).run_cleanup(all_services=True) == 0

    assert racing.route_outcome, "the race never happened"
    live = sut.live_slot()
    assert live is not None and sut.replicas(f"{sut.name}-{live.value}"), (
        f"traffic is on slot {live}, which the sweep scaled down or removed (route: {racing.route_outcome})"
    )
    assert sut.status().workflow is None, "the sweep let go of the service"
