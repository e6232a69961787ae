"""``switch`` moves traffic only to a slot this run has proven: image policy, availability, probe and smoke.

Argo lets a submitter override the entrypoint, so ``switch`` cannot rely on the DAG having run the checks before
it; it reads their verdicts from the run's record. Every refusal happens before any write: the status keeps its
phase and the route its slot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENTS, RUN_WORKFLOW_ENV, RUN_WORKFLOW_UID_ENV, ExitCode
from bluegreen_spec import Slot
from steps.log import StepLog
from steps.records import Records
from steps.slots import deployment_name
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest, wait_routed
from tests.steps.http_servers import AppServer

pytestmark = pytest.mark.controlplane

#: One attempt decides the health check, so a failing probe takes a second rather than half a minute.
QUICK_HEALTH_CHECK = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}


def refused_switch(sut: ServiceUnderTest, slot: Slot, record: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``switch``, expect a refusal that changed nothing, and return its one-line reason."""
    before = sut.status()
    capsys.readouterr()
    assert sut.run_switch(slot, record) == ExitCode.FAILED
    reason = capsys.readouterr().err.strip()
    assert sut.live_slot() is slot.other, "a refused switch moved traffic"
    after = sut.status()
    assert (after.phase, after.target_slot, after.active_slot) == (
        before.phase,
        before.target_slot,
        before.active_slot,
    ), "a refused switch wrote its intent"
    return reason


def test_switch_refuses_until_probe_and_smoke_pass_for_the_slot(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("gates", healthCheck=QUICK_HEALTH_CHECK, smokeTests=[{"name": "home", "endpoint": "/"}])
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    slot = Slot(target)
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == 0

    reason = refused_switch(sut, slot, record, capsys)
    assert "the health check (probe), the smoke tests (smoke)" in reason, reason
    assert "image policy" not in reason and "availability" not in reason, reason

    with AppServer() as app:
        app.route("/health", 200)
        app.route("/", 500)
        assert sut.run_probe(slot, record, app.url) == 0
        assert sut.run_smoke(slot, record, app.url) == ExitCode.FAILED
        reason = refused_switch(sut, slot, record, capsys)
        assert "the smoke tests (smoke)" in reason and "probe" not in reason, reason
        # The latest verdict counts: a probe that fails after passing withdraws the pass.
        app.route("/health", 503)
        app.route("/", 200)
        assert sut.run_smoke(slot, record, app.url) == 0
        assert sut.run_probe(slot, record, app.url) == ExitCode.FAILED
        reason = refused_switch(sut, slot, record, capsys)
        assert "the health check (probe)" in reason and "smoke" not in reason, reason

    sut.prove(slot, record)
    assert sut.run_switch(slot, record) == 0
    assert sut.live_slot() is slot
    gates = spec.DeploymentRecord.model_validate(sut.record(record)).status
    assert gates is not None
    # Image verification is a gate only for services whose image policy asks for a signature; this one does not.
    assert {(g.gate, g.slot, g.image, g.passed) for g in gates.gates} == {
        (gate, slot, IMAGE_V2, True) for gate in spec.Gate if gate is not spec.Gate.image_verification
    }


def test_switch_refuses_a_slot_whose_image_changed_after_its_checks(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("gates")
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    slot = Slot(target)
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == 0
    sut.prove(slot, record)

    # Someone (or something) rolls another image into the proven slot before the switch.
    def roll_another_image(deployment: dict[str, Any]) -> bool:
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE_V3
        return True

    sut.admin_kube.modify(DEPLOYMENTS, sut.namespace, f"{sut.name}-{slot.value}", roll_another_image)
    sut.wait_settled()
    reason = refused_switch(sut, slot, record, capsys)
    assert f"run {record} deploys {IMAGE_V2} to slot {slot.value}, but slot {slot.value} runs {IMAGE_V3}" in reason


def test_switch_refuses_the_record_of_an_earlier_run(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished run's record showed every gate passed; replaying it must not vouch for today's slot."""
    sut = make_service("gates")
    first = sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)  # green proven and live, then closed
    target, record = sut.preflight(IMAGE_V3, "wf-2", tmp_path / "2")
    assert Slot(target) is Slot(first).other
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0

    reason = refused_switch(sut, Slot(target), "wf-1", capsys)
    assert "record wf-1 is not the run that holds the service (status.record is wf-2)" in reason, reason
    reason = refused_switch(sut, Slot(target), "", capsys)
    assert "switch needs the run's record" in reason, reason

    sut.prove(target, record)
    assert sut.run_switch(target, record) == 0
    assert sut.run_retain(record) == 0
    # The run is over: its record cannot move traffic again, here back to the slot it just left.
    capsys.readouterr()
    assert sut.run_switch(Slot(first), record) == ExitCode.FAILED
    assert "wf-2" in capsys.readouterr().err
    assert sut.live_slot() is Slot(target)


def test_a_gate_takes_only_the_verdicts_of_the_run_its_pod_belongs_to(
    make_service: ServiceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A submitter picks the entrypoint and ``record``, but not the workflow Argo labels a Pod with.

    Run wf-1 has verified its image and proven its slot, and waits (for a promotion, say). Another workflow started at
    deploy-green or at switch and handed wf-1's record must not ride on those verdicts: deploy-green would put the
    image into a slot (the retained one, in an older run's case) and switch would skip the promotion.
    """
    sut = make_service("own-run")
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    slot = Slot(target)
    slot_deployment = deployment_name(sut.name, slot)
    before = sut.deployment(slot_deployment)

    # A workflow that names itself in --record, which no preflight opened, writes no slot either.
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-stray")
    capsys.readouterr()
    assert sut.run_deploy_green(IMAGE_V3, slot, "wf-stray") == ExitCode.FAILED
    reason = capsys.readouterr().err
    assert f"DeploymentRecord {sut.namespace}/wf-stray does not exist" in reason, reason
    assert sut.deployment(slot_deployment) == before, "deploy-green wrote a slot for a run preflight never opened"

    def signed(bgd: dict[str, Any]) -> bool:
        bgd["spec"]["imagePolicy"] = {"signature": {"keys": [{"configMap": "cosign-keys"}]}}
        return True

    sut.admin_kube.modify(BLUE_GREEN_DEPLOYMENTS, sut.namespace, sut.name, signed)
    # The verdict wf-1's verify-image writes; how cosign reached it is test_supply_chain's subject.
    verified = Records(sut.admin_kube, sut.namespace, sut.name, StepLog("verify-image", sut.name))
    verified.record_gate(record, spec.Gate.image_verification, slot, IMAGE_V2, passed=True, step="verify-image")

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-forged")
    capsys.readouterr()
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == ExitCode.FAILED
    reason = capsys.readouterr().err
    assert "deploy-green runs in workflow wf-forged and may use only its record wf-forged, not wf-1" in reason, reason
    assert sut.deployment(slot_deployment) == before, "a refused deploy-green wrote the slot"

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-1")
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == 0
    sut.prove(slot, record)

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-forged")
    reason = refused_switch(sut, slot, record, capsys)
    assert "switch runs in workflow wf-forged and may use only its record wf-forged, not wf-1" in reason, reason

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-1")
    assert sut.run_switch(slot, record) == 0
    assert sut.live_slot() is slot


def test_a_workflow_that_reuses_a_run_s_name_is_not_that_run(
    make_service: ServiceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A workflow's name is free again once the workflow is deleted (a TTL, ``argo delete``); its uid never is.

    Run wf-1 proved its slot and was deleted before it switched, leaving its record open and the service held. A new
    workflow that a submitter names wf-1 again gets Pods labelled wf-1, so the name alone would hand it the record,
    the hold and the verdicts; it must instead be refused by every step that would act on them.
    """
    sut = make_service("reused-name")
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-1")
    monkeypatch.setenv(RUN_WORKFLOW_UID_ENV, "11111111-first")
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path / "first")
    slot = Slot(target)
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == 0
    sut.prove(slot, record)
    slot_deployment = deployment_name(sut.name, slot)
    before = sut.deployment(slot_deployment)

    monkeypatch.setenv(RUN_WORKFLOW_UID_ENV, "22222222-second")
    reason = refused_switch(sut, slot, record, capsys)
    assert "belongs to workflow wf-1 with uid 11111111-first, not this one (uid 22222222-second)" in reason, reason

    # Nor may it vouch for a slot in the first run's record: a failed check there would hold that run's switch.
    first_status = sut.record(record)["status"]
    url = wait_routed(sut.preview_url())
    for run_check in (sut.run_probe, sut.run_smoke):
        capsys.readouterr()
        assert run_check(slot, record, url) == ExitCode.FAILED
        assert "belongs to workflow wf-1 with uid 11111111-first" in capsys.readouterr().err
    assert sut.record(record)["status"] == first_status, "the second wf-1 wrote into the first one's record"

    capsys.readouterr()
    assert sut.run_deploy_green(IMAGE_V3, slot, record) == ExitCode.FAILED
    reason = capsys.readouterr().err
    assert "belongs to workflow wf-1 with uid 11111111-first" in reason, reason
    assert sut.deployment(slot_deployment) == before, "the second wf-1 wrote the first one's slot"

    status = sut.status()
    assert sut.run_preflight(IMAGE_V3, "wf-1", out=tmp_path / "second") == ExitCode.FAILED
    reason = capsys.readouterr().err
    assert "belongs to workflow wf-1 with uid 11111111-first" in reason, reason
    assert sut.status() == status and sut.records()[0]["spec"]["image"] == IMAGE_V2
    # Neither its retain nor its exit handler closes the first run's record, restores traffic or changes slots.
    assert sut.run_retain(record) == ExitCode.FAILED
    assert "belongs to workflow wf-1 with uid 11111111-first" in capsys.readouterr().err
    assert sut.rollback_on_exit("wf-1") == 0
    assert sut.run_notify("wf-1") == 0
    [first] = sut.records()
    assert not first["status"].get("finishedAt"), first["status"]
    assert sut.status() == status and sut.deployment(slot_deployment) == before

    # The first wf-1's own retried Pod still resumes and finishes its run.
    monkeypatch.setenv(RUN_WORKFLOW_UID_ENV, "11111111-first")
    assert sut.run_switch(slot, record) == 0
    assert sut.live_slot() is slot


def test_a_finished_run_writes_no_slot(
    make_service: ServiceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run wf-1 ended and keeps its previous version warm; a ``deploy-green`` of wf-1 again may not touch it."""
    sut = make_service("finished-run")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path, cleanup=False)
    live = sut.live_slot()
    assert live is not None
    retained = live.other
    before = sut.deployment(deployment_name(sut.name, retained))
    assert before is not None

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-1")
    capsys.readouterr()
    assert sut.run_deploy_green(IMAGE_V3, retained, "wf-1") == ExitCode.FAILED
    reason = capsys.readouterr().err
    assert "DeploymentRecord wf-1 is closed (Succeeded); a finished run writes no slot" in reason, reason
    assert sut.deployment(deployment_name(sut.name, retained)) == before, "a finished run overwrote the retained slot"


def test_exit_handler_steps_act_only_for_their_own_workflow(
    make_service: ServiceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rollback``, ``notify`` and ``retain`` take the run to act for as a parameter, which a submitter chooses.

    Run wf-1 is mid-deploy and holds the service. Another workflow started at one of those steps and handed wf-1's
    name or record (under another service's name, so no mutex stands in its way) must leave wf-1 alone.
    """
    sut = make_service("exit-own")
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-1")
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    slot = Slot(target)
    assert sut.run_deploy_green(IMAGE_V2, slot, record) == 0
    sut.prove(slot, record)
    assert sut.run_switch(slot, record) == 0
    status = sut.status()

    monkeypatch.setenv(RUN_WORKFLOW_ENV, "wf-other")
    capsys.readouterr()
    assert sut.rollback_on_exit("wf-1") == ExitCode.BAD_INPUT
    refused = "runs in workflow wf-other and may act only for it, not for workflow wf-1"
    assert f"rollback {refused}" in capsys.readouterr().err
    assert sut.run_notify("wf-1", status="Succeeded") == ExitCode.BAD_INPUT
    assert f"notify {refused}" in capsys.readouterr().err
    assert sut.run_retain(record) == ExitCode.FAILED
    assert "retain runs in workflow wf-other and may use only its record wf-other, not wf-1" in capsys.readouterr().err
    [only] = sut.records()
    assert not only["status"].get("finishedAt"), only["status"]
    assert sut.status() == status and sut.live_slot() is slot, "another workflow moved or closed wf-1's run"
