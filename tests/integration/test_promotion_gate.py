"""The manual-promotion gate on the real API server: one decision, written once, and none passed by a failed write.

Each test stops a manual run at its promotion gate: preflight as the deploy runs it, then a stand-in Workflow whose
gate node is suspended, which the cluster's real Argo controller leaves alone (another controller instance's label).
What Argo itself would do to the node (resume it at its duration, or on the UI's Resume) the test writes as Argo
does, and ``confirm-promotion`` then judges as the run's next step. The refused writes are the API server's own: the
deployer ServiceAccount may patch ``deploymentrecords/status`` but not ``workflows``, which makes it the attacker a
promotion gate must withstand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENT_RECORDS, PROMOTION_GATE_TASK, WORKFLOWS, Step
from steps import promotion
from steps.clock import format_timestamp, now
from steps.errors import ApiError, BadInput, CheckFailed
from steps.log import StepLog
from steps.records import Records
from steps.service_state import update_status
from tests.integration.service_helpers import IMAGE_V2, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane

#: The promotion timeout these runs wait, in seconds, as the deploy passes it to the gate and to confirm-promotion.
TIMEOUT = 60
GATE_NODE = "gate-node"


def _waiting_run(sut: ServiceUnderTest, workflow: str, out: Path) -> str:
    """Preflight ``workflow`` and stand in for its Workflow, suspended at the gate since ``TIMEOUT`` seconds ago."""
    _, record = sut.preflight(IMAGE_V2, workflow, out)
    started = format_timestamp(datetime.now(UTC) - timedelta(seconds=TIMEOUT))
    gate = {
        "id": GATE_NODE,
        "name": f"{workflow}.{PROMOTION_GATE_TASK}",
        "displayName": PROMOTION_GATE_TASK,
        "type": "Suspend",
        "phase": "Running",
        "startedAt": started,
    }
    sut.admin_kube.create(
        WORKFLOWS,
        sut.namespace,
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            # The cluster's real Argo controller handles only workflows of its own instance, so it leaves this one.
            "metadata": {"name": workflow, "labels": {"workflows.argoproj.io/controller-instanceid": "tests"}},
            "spec": {"workflowTemplateRef": {"name": "blue-green-deploy"}},
            "status": {"phase": "Running", "startedAt": started, "nodes": {GATE_NODE: gate}},
        },
    )
    return record


def _gate(sut: ServiceUnderTest, workflow: str) -> dict[str, Any]:
    node: dict[str, Any] = sut.admin_kube.must_get(WORKFLOWS, sut.namespace, workflow)["status"]["nodes"][GATE_NODE]
    return node


def _argo_resumes(sut: ServiceUnderTest, workflow: str, message: str = "", actor: str = "") -> None:
    """What Argo writes when it ends the suspend node: at its duration with no message, or on a person's Resume."""

    def resume(live: dict[str, Any]) -> bool:
        node = live["status"]["nodes"][GATE_NODE]
        node.update({"phase": "Succeeded", "finishedAt": now(), **({"message": message} if message else {})})
        if actor:
            live["metadata"]["labels"].update({promotion.ACTION_LABEL: "Resume", "workflows.argoproj.io/actor": actor})
        return True

    sut.admin_kube.modify(WORKFLOWS, sut.namespace, workflow, resume)


def _suspend_again(sut: ServiceUnderTest, workflow: str) -> None:
    """Put the stand-in's gate back to waiting, for the next case of the same test."""

    def suspend(live: dict[str, Any]) -> bool:
        node = live["status"]["nodes"][GATE_NODE]
        node["phase"] = "Running"
        node.pop("finishedAt", None)
        node.pop("message", None)
        return True

    sut.admin_kube.modify(WORKFLOWS, sut.namespace, workflow, suspend)


def _confirm(sut: ServiceUnderTest, workflow: str, record: str) -> int:
    argv = ["--service", sut.name, "--record", record, "--workflow", workflow, "--timeout", str(TIMEOUT)]
    return sut.step(Step.confirm_promotion, *argv)


def _decision(sut: ServiceUnderTest, record: str) -> dict[str, Any]:
    return dict(sut.record(record)["status"].get("promotion") or {})


def _forge_promotion(sut: ServiceUnderTest, record: str, by: str) -> None:
    """Write a promotion straight into the record's status, as the deployer ServiceAccount may."""
    records = Records(sut.steps_kube, sut.namespace, sut.name, StepLog("test", sut.name))

    def forge(status: spec.DeploymentRecordStatus) -> None:
        status.promotion = spec.PromotionRecord(
            state=spec.PromotionState.promoted, by=by, at=now(), how=promotion.VIA_PLUGIN
        )

    records.modify_status(record, forge)


def test_a_promote_whose_node_write_was_refused_does_not_pass_the_gate_at_its_timeout(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("promo", replicas=1, promotion={"mode": "manual", "timeout": f"{TIMEOUT}s"})
    workflow = "wf-refused-promote"
    record = _waiting_run(sut, workflow, tmp_path)
    # An identity that may write the record's status but not the workflow promotes: the node write is refused.
    with pytest.raises(ApiError) as refused:
        promotion.promote(sut.steps_kube, sut.namespace, sut.name, "mallory")
    assert refused.value.status == 403, refused.value
    assert _gate(sut, workflow)["phase"] == "Running"
    assert _decision(sut, record).get("state", "Waiting") == "Waiting", "a refused promote left a promotion behind"
    assert "was not promoted and nothing was recorded" in str(refused.value)
    assert "update on workflows" in str(refused.value)
    # Argo resumes the node at its duration, and the step after the gate judges how the wait ended.
    _argo_resumes(sut, workflow)
    assert _confirm(sut, workflow, record) == 1, "a promotion whose node write failed passed the gate by waiting"
    decided = _decision(sut, record)
    assert (decided["state"], decided["how"]) == ("Expired", promotion.VIA_TIMEOUT), decided
    assert "promotion-expired" in [e["event"] for e in sut.record(record)["status"]["entries"]]


def test_a_promotion_written_straight_into_the_record_approves_nothing(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("forge", replicas=1, promotion={"mode": "manual", "timeout": f"{TIMEOUT}s"})
    workflow = "wf-forged"
    record = _waiting_run(sut, workflow, tmp_path)
    _forge_promotion(sut, record, "mallory")
    # Argo resumes the node at its duration: the judge reads the node, and the record's claim is overruled.
    _argo_resumes(sut, workflow)
    assert _confirm(sut, workflow, record) == 1, "a promotion found only in the record passed the gate"
    decided = _decision(sut, record)
    assert (decided["state"], decided["how"]) == ("Expired", promotion.VIA_TIMEOUT), decided
    assert "mallory" in decided["reason"] and "does not count" in decided["reason"], decided


def test_a_recorded_abort_wins_over_a_later_resume(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("abort", replicas=1, promotion={"mode": "manual", "timeout": f"{TIMEOUT}s"})
    workflow = "wf-refused-abort"
    record = _waiting_run(sut, workflow, tmp_path)
    # A promotion forged into the record does not stand in the abort's way: only the node counts for a promotion.
    _forge_promotion(sut, record, "mallory")
    # The abort is recorded, but the person may not write the workflow: the node stays suspended.
    with pytest.raises(ApiError) as refused:
        promotion.abort(sut.steps_kube, sut.namespace, sut.name, "dave", "errors on /checkout")
    assert refused.value.status == 403, refused.value
    assert "the abort is recorded" in str(refused.value)
    assert _gate(sut, workflow)["phase"] == "Running"
    assert (_decision(sut, record)["state"], _decision(sut, record)["by"]) == ("Aborted", "dave")
    # A promote by someone who may write the workflow is refused before it touches the node.
    with pytest.raises(CheckFailed, match="already aborted by dave"):
        promotion.promote(sut.admin_kube, sut.namespace, sut.name, "carol")
    assert _gate(sut, workflow)["phase"] == "Running"
    # Someone presses Resume in the Argo UI before the timeout: the recorded abort still ends the run.
    _argo_resumes(sut, workflow, "Resumed by: map[User:erin]", actor="erin")
    assert _confirm(sut, workflow, record) == 1, "a resume overrode the abort the record holds"
    decided = _decision(sut, record)
    assert (decided["state"], decided["by"], decided["reason"]) == ("Aborted", "dave", "errors on /checkout")


def test_promote_and_abort_refuse_a_record_that_is_not_the_waiting_runs_open_record(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("route", replicas=1, promotion={"mode": "manual", "timeout": f"{TIMEOUT}s"})
    workflow = "wf-stuck"
    record = _waiting_run(sut, workflow, tmp_path)
    # As a forced `kubectl bluegreen route` leaves the service: status.record names the route's own closed record,
    # while status.workflow still names the run stuck at its gate.
    routed = "kubectl-bluegreen-route-20260101-100000-abcde"
    records = Records(sut.admin_kube, sut.namespace, sut.name, StepLog("test", sut.name))
    records.open(
        routed,
        spec.DeploymentRecordSpec(
            service=sut.name, workflow=routed, image=IMAGE_V2, triggered_by="ops", reason="emergency", started_at=now()
        ),
    )
    records.close(routed, spec.Phase.succeeded, "emergency")

    def route(status: spec.BlueGreenDeploymentStatus) -> None:
        status.record = routed

    update_status(sut.admin_kube, sut.namespace, sut.name, route)
    assert sut.status().workflow == workflow

    def versions() -> list[str]:
        names = (routed, record)
        return [
            sut.admin_kube.must_get(DEPLOYMENT_RECORDS, sut.namespace, n)["metadata"]["resourceVersion"] for n in names
        ]

    before = versions()
    with pytest.raises(BadInput, match=f"{routed}.*{record}.*{workflow}"):
        promotion.promote(sut.admin_kube, sut.namespace, sut.name, "carol")
    with pytest.raises(BadInput, match=f"{routed}.*{record}.*{workflow}"):
        promotion.abort(sut.admin_kube, sut.namespace, sut.name, "carol", "stuck")
    assert versions() == before and _gate(sut, workflow)["phase"] == "Running"
    # Nor does a Resume from Argo move the run the route took the service from, and neither record is written.
    _argo_resumes(sut, workflow, "Resumed by: map[User:erin]", actor="erin")
    assert _confirm(sut, workflow, record) == 1, "a run the route took the service from passed the gate"
    assert versions() == before
    _suspend_again(sut, workflow)

    # The status names the run's own record again, but that record is closed: nothing is written into it either.
    def back(status: spec.BlueGreenDeploymentStatus) -> None:
        status.record = record

    update_status(sut.admin_kube, sut.namespace, sut.name, back)
    records.close(record, spec.Phase.failed, "closed by hand")
    before = versions()
    with pytest.raises(BadInput, match=f"{record}.*closed"):
        promotion.promote(sut.admin_kube, sut.namespace, sut.name, "carol")
    with pytest.raises(BadInput, match=f"{record}.*closed"):
        promotion.abort(sut.admin_kube, sut.namespace, sut.name, "carol", "stuck")
    assert versions() == before and _gate(sut, workflow)["phase"] == "Running"
    # Nor does a Resume from Argo move a run whose record is over: confirm-promotion fails it and leaves the record.
    _argo_resumes(sut, workflow, "Resumed by: map[User:erin]", actor="erin")
    assert _confirm(sut, workflow, record) == 1, "a run whose record was closed passed the gate"
    assert versions() == before
