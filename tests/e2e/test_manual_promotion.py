"""Manual promotion through the real Argo controller: the run waits after smoke, and a person's decision ends it.

``spec.promotion.mode: manual`` suspends the deploy on an Argo ``suspend`` node. Promote and abort go through
:mod:`steps.promotion` (what ``kubectl bluegreen promote/abort`` call), the timeout and the Argo server's resume
(the UI's Resume button) go through Argo itself; each is checked on traffic, the workflow and the record.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from bluegreen_contract import PROMOTION_GATE_TASK
from kubectl_bluegreen.cli import main as plugin_main
from pipelines.settings import SERVICE_ACCOUNT
from steps import promotion
from steps.errors import ApiError, BadInput
from steps.kube import Kube
from testenv.demo_service import NAMESPACE, DemoService, demo_image
from testenv.workflow_run import StepNode, WorkflowRun

pytestmark = [pytest.mark.cluster]


def _set_promotion(service: DemoService, **promotion_spec: str) -> None:
    patch = json.dumps({"spec": {"promotion": promotion_spec}})
    service.cluster.run_tool(["kubectl", "patch", "bgd", service.name, "-n", NAMESPACE, "--type=merge", "-p", patch])


def _gate(run: WorkflowRun) -> StepNode | None:
    return next((n for n in run.nodes() if n.display_name == PROMOTION_GATE_TASK), None)


def _wait_at_gate(service: DemoService, workflow: str, timeout: float = 180.0) -> WorkflowRun:
    """Poll (bounded) until the run's promotion gate is suspended; fails if the run ends first."""
    deadline = time.monotonic() + timeout
    while True:
        run = service.workflow(workflow)
        gate = _gate(run)
        if gate is not None and gate.phase == "Running":
            return run
        # No phase yet: the controller has not picked the new workflow up.
        assert run.phase in {"", "Pending", "Running"}, f"the run ended before its promotion gate:\n{run.summary()}"
        assert time.monotonic() < deadline, f"no suspended promotion gate within {timeout}s:\n{run.summary()}"
        time.sleep(1.0)


def _plugin(service: DemoService, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``kubectl bluegreen <args> -o json`` with the cluster's kubeconfig; what it printed."""
    capsys.readouterr()
    argv = [*args, service.name, "-n", NAMESPACE, "--kubeconfig", str(service.cluster.kubeconfig_path), "-o", "json"]
    assert plugin_main(argv) == 0, capsys.readouterr().err
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


def _promotion(service: DemoService, workflow: str) -> dict[str, Any]:
    return dict(service.record_of(workflow)["status"].get("promotion") or {})


def test_abort_promote_timeout_and_a_resume_from_the_argo_server(
    demo_service: Callable[..., DemoService],
    capsys: pytest.CaptureFixture[str],
    impersonating_client: Callable[[str, str], client.ApiClient],
) -> None:
    """Four decisions on one adopted service, each run starting from where the one before left it.

    One replica per slot: the decisions are about the run, its record and which slot serves, which one Pod shows as
    well as two.
    """
    service = demo_service(replicas=1)
    adopted = service.deploy(demo_image("v1"))
    assert adopted.phase == "Succeeded", adopted.summary()
    live = service.live_slot()
    kube = Kube(service.cluster.api)
    _set_promotion(service, mode="manual", timeout="10m")

    # Abort: the suspended node fails, the DAG fails, the exit handler rolls back.
    aborted = service.deploy(demo_image("v2"), wait=False)
    waiting = _wait_at_gate(service, aborted.name)
    assert "switch" not in waiting.step_order(), waiting.summary()
    assert service.live_slot() == live and service.serving_version() == "v1"
    held = _promotion(service, aborted.name)
    assert held["state"] == "Waiting", held
    assert held["previewUrl"].startswith(f"http://{service.name}-preview.{NAMESPACE}.svc:"), held
    assert held["timeoutSeconds"] == 600, held
    events = {e["event"] for e in service.record_of(aborted.name)["status"]["entries"]}
    assert {"smoke-result", "awaiting-promotion"} <= events, events
    with pytest.raises(BadInput, match="needs a reason"):
        promotion.abort(kube, NAMESPACE, service.name, "someone", " ")
    done = _plugin(service, capsys, "abort", "--reason", "latency on /checkout")
    user = done["by"]
    assert user and done["workflow"] == aborted.name, done
    ended = service.wait_workflow(aborted.name)
    assert ended.phase == "Failed", ended.summary()
    gate = _gate(ended)
    assert gate is not None and gate.phase == "Failed", ended.summary()
    assert gate.message == f"Aborted by {user} via kubectl-bluegreen: latency on /checkout", gate
    assert "switch" not in ended.step_order() and "rollback" in ended.step_order(), ended.summary()
    assert service.live_slot() == live and service.serving_version() == "v1"
    decided = _promotion(service, aborted.name)
    assert (decided["state"], decided["by"], decided["how"]) == ("Aborted", user, "kubectl-bluegreen"), decided
    assert service.record_of(aborted.name)["status"]["outcome"] in {"RolledBack", "Failed"}

    # Promote: the suspended node succeeds, confirm-promotion accepts it, the switch moves traffic.
    promoted = service.deploy(demo_image("v2"), wait=False)
    _wait_at_gate(service, promoted.name)
    done = _plugin(service, capsys, "promote")
    assert (done["workflow"], done["by"]) == (promoted.name, user), done
    ended = service.wait_workflow(promoted.name)
    assert ended.phase == "Succeeded", ended.summary()
    assert ended.finished_before("confirm-promotion", "switch"), ended.summary()
    assert service.live_slot() != live and service.serving_version() == "v2"
    decided = _promotion(service, promoted.name)
    assert (decided["state"], decided["by"], decided["how"]) == ("Promoted", user, "kubectl-bluegreen"), decided
    assert decided["at"] == done["at"]
    with pytest.raises(BadInput, match=r"no run in progress|not running"):
        promotion.promote(kube, NAMESPACE, service.name, user)

    live = service.live_slot()
    # Long enough for the refused promote below to reach the gate while it still waits.
    _set_promotion(service, mode="manual", timeout="20s")

    # A promote by an identity that may write the record's status but not the workflow (the deployer
    # ServiceAccount) is refused at the node. Argo then resumes the suspend node at its duration, and confirm-promotion
    # must turn that into a failure: a failed promote does not approve the run by waiting.
    expired = service.deploy(demo_image("v3"), wait=False)
    _wait_at_gate(service, expired.name)
    deployer = Kube(impersonating_client(NAMESPACE, SERVICE_ACCOUNT))
    with pytest.raises(ApiError) as refused:
        promotion.promote(deployer, NAMESPACE, service.name, "mallory")
    assert refused.value.status == 403, refused.value
    expired = service.wait_workflow(expired.name)
    assert expired.phase == "Failed", expired.summary()
    gate = _gate(expired)
    assert gate is not None and gate.phase == "Succeeded", expired.summary()
    confirm = expired.runs_of("confirm-promotion")
    assert confirm and confirm[-1].phase == "Failed" and len(confirm) == 1, expired.summary()
    assert "switch" not in expired.step_order() and "rollback" in expired.step_order(), expired.summary()
    assert service.live_slot() == live and service.serving_version() == "v2"
    decided = _promotion(service, expired.name)
    assert (decided["state"], decided["how"]) == ("Expired", "timeout"), decided

    # The UI's Resume button: the Argo server's resume API, which knows nothing of this project.
    _set_promotion(service, mode="manual", timeout="10m")
    resumed = service.deploy(demo_image("v3"), wait=False)
    _wait_at_gate(service, resumed.name)
    request = urllib.request.Request(
        f"{service.cluster.argo_server_url}/api/v1/workflows/{NAMESPACE}/{resumed.name}/resume",
        data=json.dumps({"namespace": NAMESPACE, "name": resumed.name}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    ended = service.wait_workflow(resumed.name)
    assert ended.phase == "Succeeded", ended.summary()
    assert service.live_slot() != live and service.serving_version() == "v3"
    decided = _promotion(service, resumed.name)
    assert (decided["state"], decided["how"]) == ("Promoted", "argo"), decided
    gate = _gate(ended)
    assert gate is not None and gate.phase == "Succeeded", ended.summary()
    # Argo names the user in the node's message only when the request carried identity claims.
    named = promotion.argo_resumer(gate.message)
    assert decided["by"] == (named or promotion.UNKNOWN_ARGO_USER), (gate.message, decided)
