"""What the rendered Argo objects promise: the DAG order, the exit handler, the lock, retries, deadlines, metrics."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen_contract import DEADLINE_OUTPUTS, SLACK_WEBHOOK_URL_ENV, WEBHOOK_URL_ENV, Step
from bluegreen_spec import STEP_DEADLINE_MARGIN_SECONDS, STEP_DEADLINE_SECONDS
from pipelines.step_container import POD_LOSS_RETRY_EXPRESSION

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "manifests" / "workflows" / f"{name}.yaml").read_text())
    return document


DEPLOY = load("blue-green-deploy")
ROLLBACK = load("blue-green-rollback")
CLEANUP = load("blue-green-cleanup")
SWEEP = load("blue-green-cleanup-template")


def templates(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = document["spec"].get("workflowSpec", document["spec"])
    return {t["name"]: t for t in spec["templates"]}


def tasks(document: dict[str, Any], dag: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in templates(document)[dag]["dag"]["tasks"]}


def release_output(name: str) -> str:
    return f"{{{{tasks.release.outputs.parameters.{name}}}}}"


VERIFIED = f"{release_output('verification-required')} == true"
MANUAL = f"{release_output('promotion-required')} == true"
STAGED = f"{VERIFIED} || {MANUAL}"
STAGED_PATH = [
    *("deploy-green", "probe", "smoke"),
    *("await-promotion", "wait-for-promotion", "confirm-promotion"),
    "switch",
]


def test_deploy_dag_runs_the_steps_in_order() -> None:
    dag = tasks(DEPLOY, "deploy")
    assert list(dag) == [
        *("release", "cosign-verify", "verify-image"),
        *STAGED_PATH,
        *("verify", "retain", "cleanup"),
    ]
    # The release Pod starts the run at once: no task before it, so no requeue of the controller either.
    assert "depends" not in dag["release"] and "when" not in dag["release"]
    assert dag["cosign-verify"]["depends"] == "release"
    # verify-image also runs after a failed cosign loop: see the verification test below.
    assert dag["deploy-green"]["depends"] == "release && verify-image"
    for before, after in itertools.pairwise(STAGED_PATH):
        assert dag[after]["depends"] == before
    # Whichever path ran, verify comes after it: a bare name in depends also accepts the other path's Skipped.
    assert dag["verify"]["depends"] == "release && switch"
    assert dag["retain"]["depends"] == "verify"
    assert dag["cleanup"]["depends"] == "retain"


def release_containers() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in templates(DEPLOY)["release"]["containerSet"]["containers"]}


def test_the_release_pod_runs_preflight_to_switch_and_a_staged_service_step_by_step() -> None:
    dag = tasks(DEPLOY, "deploy")
    # A service that verifies its images or waits for promotion releases one Pod per step after the set.
    assert all(dag[name]["when"] == STAGED for name in ("deploy-green", "probe", "smoke", "switch"))
    release = templates(DEPLOY)[dag["release"]["template"]]
    # One container per step, each a node of its own in the UI, in the order the step Pods run. Each step waits for
    # the one before it itself, so its program is loaded when that one ends; `main` only hands the set's outputs to
    # Argo, and Argo's executor starts it after every step.
    containers = release_containers()
    graph = {
        name: [a.removeprefix("--wait-for=") for a in c["args"] if a.startswith("--wait-for=")]
        for name, c in containers.items()
        if name != "main"
    }
    assert graph == {
        "preflight": [],
        "deploy-green": ["preflight"],
        "probe": ["deploy-green"],
        "smoke": ["probe"],
        "switch": ["smoke"],
    }
    assert {name: c.get("dependencies") for name, c in containers.items()} == {
        **dict.fromkeys(graph),
        "main": ["deploy-green", "preflight", "probe", "smoke", "switch"],
    }
    assert all("--set-state=/tmp/steps" in containers[name]["args"] for name in graph)
    steps = {name: c["args"][0] for name, c in release_containers().items() if name != "main"}
    assert steps == {name: name for name in graph if name != "main"}
    # The run's parameters go to preflight; the steps after it read preflight's choices from its files.
    arguments = {p["name"]: p["value"] for p in dag["release"]["arguments"]["parameters"]}
    assert arguments["image"] == "{{workflow.parameters.image}}"
    assert arguments["workflow"] == "{{workflow.name}}"
    assert "slot" not in arguments and "record" not in arguments
    for name in ("deploy-green", "probe", "smoke", "switch"):
        args = release_containers()[name]["args"]
        assert "--preflight-outputs=/tmp/outputs" in args
        assert not any(a.startswith(("--slot", "--record", "--image")) for a in args), args
    # Argo's metric for the switch reads the switch's own seconds, and only when the switch got that far.
    metrics = {metric["name"]: metric for metric in release["metrics"]["prometheus"]}
    switch = metrics["bluegreen_switch_duration_seconds"]
    assert switch["histogram"]["value"] == "{{outputs.parameters.switch-seconds}}"
    assert switch["when"] == "{{outputs.parameters.switch-seconds}} >= 0"
    assert metrics["bluegreen_deploy_started"]["counter"]["value"] == "1"
    outputs = {p["name"]: p["valueFrom"] for p in release["outputs"]["parameters"]}
    assert outputs["switch-seconds"] == {"path": "/tmp/outputs/switch-seconds", "default": "-1"}


def test_verify_is_skipped_without_analysis_and_retain_still_runs() -> None:
    dag = tasks(DEPLOY, "deploy")
    assert dag["verify"]["when"] == f"{release_output('analysis-enabled')} == true"
    # A bare task name in depends means Succeeded, Skipped or Daemoned in Argo.
    assert dag["retain"]["depends"] == "verify"


def test_manual_promotion_suspends_between_smoke_and_switch_only_when_preflight_says_so() -> None:
    dag = tasks(DEPLOY, "deploy")
    timeout = release_output("promotion-timeout")
    for name in ("await-promotion", "wait-for-promotion", "confirm-promotion"):
        assert dag[name]["when"] == MANUAL
        arguments = {p["name"]: p["value"] for p in dag[name]["arguments"]["parameters"]}
        assert arguments["timeout"] == timeout
    assert dag["switch"]["depends"] == "confirm-promotion"
    gate = templates(DEPLOY)[dag["wait-for-promotion"]["template"]]
    # Argo resumes a suspend node at its duration; the confirm step after it is what fails an expired wait.
    assert gate["suspend"] == {"duration": "{{inputs.parameters.timeout}}"}
    assert "container" not in gate
    confirm = templates(DEPLOY)[dag["confirm-promotion"]["template"]]["container"]["args"]
    assert confirm[0] == "confirm-promotion"
    assert "--timeout={{inputs.parameters.timeout}}" in confirm


def test_later_steps_read_preflight_outputs_from_files() -> None:
    release = templates(DEPLOY)["release"]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in release["outputs"]["parameters"]}
    assert outputs["target-slot"] == "/tmp/outputs/target-slot"
    assert outputs["record"] == "/tmp/outputs/record"
    # Every container of the set mounts the one /tmp where preflight writes and the later steps read.
    assert release["containerSet"]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    switch_args = {p["name"]: p["value"] for p in tasks(DEPLOY, "deploy")["switch"]["arguments"]["parameters"]}
    assert switch_args["slot"] == release_output("target-slot")


def test_exit_handler_rolls_back_on_failure_then_always_notifies() -> None:
    assert DEPLOY["spec"]["onExit"] == "exit-handler"
    handler = tasks(DEPLOY, "exit-handler")
    assert handler["rollback"]["when"] == "{{workflow.status}} != Succeeded"
    rollback_args = {p["name"]: p["value"] for p in handler["rollback"]["arguments"]["parameters"]}
    assert rollback_args["failures"] == "{{workflow.failures}}"
    assert set(handler["notify"]["depends"].split(" || ")) == {
        "rollback.Succeeded",
        "rollback.Failed",
        "rollback.Errored",
        "rollback.Skipped",
    }
    assert "--trigger" in templates(DEPLOY)["rollback"]["container"]["args"]


def test_manual_rollback_needs_only_the_service() -> None:
    parameters = ROLLBACK["spec"]["arguments"]["parameters"]
    required = [p["name"] for p in parameters if "value" not in p and "default" not in p]
    assert required == ["service"]
    assert all(p.get("description") for p in parameters)
    args = templates(ROLLBACK)["rollback"]["container"]["args"]
    assert args[args.index("--trigger") + 1] == "manual"


@pytest.mark.parametrize("document", [DEPLOY, ROLLBACK], ids=["deploy", "rollback"])
def test_deploys_and_rollbacks_share_one_mutex_per_namespace_and_service(document: dict[str, Any]) -> None:
    assert document["spec"]["synchronization"] == {
        "mutexes": [{"name": "bluegreen-{{workflow.namespace}}-{{workflow.parameters.service}}"}]
    }


def test_deploy_parameters_explain_themselves() -> None:
    parameters = {p["name"]: p for p in DEPLOY["spec"]["arguments"]["parameters"]}
    assert list(parameters) == ["service", "image", "triggered-by", "commit", "reason"]
    assert all(p.get("description") for p in parameters.values())
    assert [n for n, p in parameters.items() if "value" not in p] == ["service"]
    assert parameters["image"]["value"] == "", "a deploy without an image releases the team's Deployment as it is"
    annotations = DEPLOY["metadata"]["annotations"]
    assert annotations["workflows.argoproj.io/title"]
    assert annotations["workflows.argoproj.io/description"]


def test_retries_only_where_idempotent_and_useful() -> None:
    retried = {name for name, t in templates(DEPLOY).items() if "retryStrategy" in t}
    # probe, smoke and verify too (issue 8): a pod-level error retries them, a failed check (exit 1) does not.
    expected = {
        *("verify-image", "deploy-green", "probe", "smoke", "await-promotion", "confirm-promotion"),
        *("switch", "verify", "retain", "cleanup", "rollback"),
    }
    # cosign retries pod-level errors only: its refusal (exit 1) is the verdict verify-image reads. The release Pod
    # too: its steps retry exit code 75 in their own processes (test_step_contract checks their arguments).
    assert retried == {*expected, "cosign", "release"}
    assert templates(DEPLOY)["cosign"]["retryStrategy"]["retryPolicy"] == "OnError"
    assert templates(DEPLOY)["release"]["retryStrategy"]["expression"] == POD_LOSS_RETRY_EXPRESSION
    # Every step retries exit code 75 in its own process; Argo retries the Pod's errors, at once: it would wait out
    # a backoff before reading the expression, and so hold a failed check's rollback for that long.
    for name in expected:
        strategy = templates(DEPLOY)[name]["retryStrategy"]
        assert "backoff" not in strategy, name
        assert strategy["expression"] == POD_LOSS_RETRY_EXPRESSION, name
        assert "--transient-retries=3" in templates(DEPLOY)[name]["container"]["args"], name
    for name, container in release_containers().items():
        assert ("--transient-retries=3" in container.get("args", [])) == (name != "main"), name


def template_deadline(template: dict[str, Any]) -> int:
    """A template's fixed deadline, or the default of the input parameter that carries a per-run one."""
    deadline = str(template["activeDeadlineSeconds"])
    if deadline.isdigit():
        return int(deadline)
    inputs = template["inputs"]["parameters"]
    (default,) = [p["default"] for p in inputs if deadline == f"{{{{inputs.parameters.{p['name']}}}}}"]
    return int(default)


def test_waiting_steps_take_their_deadline_from_preflight() -> None:
    """The spec sets how long deploy-green, probe, smoke and verify wait; preflight turns that into their deadlines."""
    dag = {task["name"]: task for task in templates(DEPLOY)["deploy"]["dag"]["tasks"]}
    preflight_outputs = {p["name"] for p in templates(DEPLOY)["release"]["outputs"]["parameters"]}
    for step, output in DEADLINE_OUTPUTS.items():
        template = templates(DEPLOY)[step.value]
        assert template["activeDeadlineSeconds"] == "{{inputs.parameters.deadline}}"
        assert template_deadline(template) == STEP_DEADLINE_SECONDS[step], "the default is the cap"
        arguments = {p["name"]: p["value"] for p in dag[step.value]["arguments"]["parameters"]}
        assert arguments["deadline"] == release_output(output.value)
        assert output.value in preflight_outputs
    fixed = {"switch", "retain", "cleanup"}
    assert all(str(templates(DEPLOY)[name]["activeDeadlineSeconds"]).isdigit() for name in fixed)


def test_steps_in_the_release_pod_take_the_same_deadlines_and_the_pod_their_sum() -> None:
    release = templates(DEPLOY)["release"]
    # Each step's cap is on its command line; the steps whose deadline preflight sets read it from preflight's file.
    for step in (Step.preflight, Step.deploy_green, Step.probe, Step.smoke, Step.switch):
        assert f"--deadline-seconds={STEP_DEADLINE_SECONDS[step]}" in release_containers()[step.value]["args"]
    # The Pod's own deadline only backs the steps' up: all their caps, plus a margin for the Pod's start.
    caps = sum(
        STEP_DEADLINE_SECONDS[s] for s in (Step.preflight, Step.deploy_green, Step.probe, Step.smoke, Step.switch)
    )
    assert release["activeDeadlineSeconds"] == str(caps + 60)
    # A step waits for those before it at most as long as their caps allow, plus the same margin.
    waited = 0
    for earlier, step in itertools.pairwise((Step.preflight, Step.deploy_green, Step.probe, Step.smoke, Step.switch)):
        waited += STEP_DEADLINE_SECONDS[earlier]
        assert f"--wait-seconds={waited + 60}" in release_containers()[step.value]["args"], step


@pytest.mark.parametrize("document", [DEPLOY, ROLLBACK, SWEEP], ids=["deploy", "rollback", "cleanup"])
def test_every_container_is_hardened_bounded_and_uses_the_steps_image(document: dict[str, Any]) -> None:
    spec = document["spec"].get("workflowSpec", document["spec"])
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["podGC"]["strategy"] == "OnPodSuccess"
    assert spec["ttlStrategy"]["secondsAfterFailure"] >= spec["ttlStrategy"]["secondsAfterSuccess"]
    containers = [(t, t["container"]) for t in spec["templates"] if "container" in t]
    containers += [(t, c) for t in spec["templates"] if "containerSet" in t for c in t["containerSet"]["containers"]]
    for template, container in containers:
        assert container["securityContext"] == {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert set(container["resources"]) == {"requests", "limits"}
        if "container" in template:  # the release Pod's deadline is checked by its own test
            assert template_deadline(template) > 0
        if template["name"] == "cosign":
            # sigstore's image; its entrypoint is cosign, and it gets no notification URLs (it reads no API).
            assert container["image"] == "ghcr.io/sigstore/cosign/cosign:v2.6.5"
            assert container["command"] == ["/ko-app/cosign"], "named, so Argo's executor needs no registry lookup"
            continue
        assert container["image"] == "ghcr.io/argo-bluegreen/steps:0.1.0"
        if "containerSet" in template and container["name"] == "main":
            assert container["command"] == ["true"], "the set's outputs container runs nothing"
            continue
        assert container["command"] == ["bluegreen-step"]
        env = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        # Each step knows its workflow from the Pod's Argo label, which no submitted parameter can change.
        (workflow,) = [e for e in container["env"] if e["name"] == "BLUEGREEN_WORKFLOW"]
        assert workflow["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['workflows.argoproj.io/workflow']"}
        }
        assert all(ref["optional"] is True for ref in env.values())
        assert {SLACK_WEBHOOK_URL_ENV, WEBHOOK_URL_ENV} <= env.keys()


def test_metrics_count_runs_durations_and_rollbacks() -> None:
    workflow_metrics = {m["name"]: m for m in DEPLOY["spec"]["metrics"]["prometheus"]}
    assert workflow_metrics["bluegreen_deploy_runs"]["counter"] == {"value": "1"}
    assert workflow_metrics["bluegreen_deploy_duration_seconds"]["histogram"]["value"] == "{{workflow.duration}}"
    labels = {label["key"]: label["value"] for label in workflow_metrics["bluegreen_deploy_runs"]["labels"]}
    assert labels == {"service": "{{workflow.parameters.service}}", "status": "{{workflow.status}}"}
    rollback_metrics = {m["name"] for m in templates(DEPLOY)["rollback"]["metrics"]["prometheus"]}
    assert rollback_metrics == {"bluegreen_rollbacks", "bluegreen_rollback_duration_seconds"}


def test_cleanup_cron_sweeps_every_service_without_overlap() -> None:
    spec = CLEANUP["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["schedules"] == ["*/5 * * * *"]
    # Under templateReferencing: Strict the controller runs only Workflows that reference a template.
    assert spec["workflowSpec"] == {"workflowTemplateRef": {"name": SWEEP["metadata"]["name"]}}
    assert SWEEP["kind"] == "WorkflowTemplate" and SWEEP["metadata"]["name"] == CLEANUP["metadata"]["name"]
    args = templates(SWEEP)["cleanup-all"]["container"]["args"]
    assert args[0] == "cleanup"
    assert "--all-services" in args
    # One sweep per namespace however it was started; a name no per-service mutex can have.
    assert SWEEP["spec"]["synchronization"] == {"mutexes": [{"name": "bluegreen.cleanup.{{workflow.namespace}}"}]}


def test_the_sweep_outlasts_a_repair_that_waits_the_whole_readiness_timeout() -> None:
    """A repair waits up to readinessTimeout (capped) for the previous slot, as the rollback step does."""
    (sweep,) = [t for t in SWEEP["spec"]["templates"] if "container" in t]
    readiness_cap = STEP_DEADLINE_SECONDS["rollback"] - STEP_DEADLINE_MARGIN_SECONDS
    assert template_deadline(sweep) >= readiness_cap + 2 * STEP_DEADLINE_MARGIN_SECONDS
    assert SWEEP["spec"]["activeDeadlineSeconds"] > template_deadline(sweep)


def test_image_verification_runs_between_preflight_and_any_slot_write_only_when_the_spec_asks() -> None:
    dag = tasks(DEPLOY, "deploy")
    plan = release_output("verification-plan")
    cosign, verify = dag["cosign-verify"], dag["verify-image"]
    assert cosign["depends"] == "release"
    # A refused signer fails its loop iteration: that is the verdict verify-image reads, so it runs after either.
    assert verify["depends"] == "cosign-verify.Succeeded || cosign-verify.Failed || cosign-verify.Skipped"
    assert "continueOn" not in cosign, "Argo refuses continueOn beside depends"
    assert cosign["when"] == verify["when"] == VERIFIED
    assert cosign["withParam"] == release_output("verification-calls")
    # Each iteration gets the whole plan and its call's index; the template reads the call's fields from them.
    assert {p["name"]: p["value"] for p in cosign["arguments"]["parameters"]} == {"plan": plan, "index": "{{item}}"}
    arguments = {p["name"]: p["value"] for p in verify["arguments"]["parameters"]}
    assert arguments["verified"] == "{{tasks.cosign-verify.outputs.parameters}}"
    assert arguments["plan"] == plan
    assert arguments["slot"] == release_output("target-slot")
    # The deploy puts the image preflight pinned (tag resolved to its digest) into the slot, and only after the
    # verdict: a verifying service's release containers end at once (steps.preflight_handoff).
    deploy_args = {p["name"]: p["value"] for p in dag["deploy-green"]["arguments"]["parameters"]}
    assert deploy_args["image"] == release_output("image")
    assert dag["deploy-green"]["depends"] == "release && verify-image"
    assert dag["deploy-green"]["when"].startswith(VERIFIED + " || ")


def test_a_rollback_verifies_the_retained_image_again_only_when_its_first_pass_defers() -> None:
    dag = tasks(ROLLBACK, "one-click-rollback")
    deferred = "{{tasks.rollback.outputs.parameters.deferred}} == true"
    assert "depends" not in dag["rollback"], "the default rollback is still one Pod with nothing before it"
    assert dag["cosign-verify"]["depends"] == "rollback"
    assert dag["rollback-verified"]["depends"] == "verify-image"
    for name in ("cosign-verify", "verify-image", "rollback-verified"):
        assert dag[name]["when"] == deferred, name
    outputs = {p["name"]: p["valueFrom"]["default"] for p in templates(ROLLBACK)["rollback"]["outputs"]["parameters"]}
    assert outputs["deferred"] == "false", "a rollback that fails or needs no verification reports not deferred"
    # A deferred pass moved no traffic: the rollback metrics leave it out; the pass after verification counts.
    for metric in templates(ROLLBACK)["rollback"]["metrics"]["prometheus"]:
        assert metric["when"] == "{{outputs.parameters.deferred}} != true"
    assert all("when" not in m for m in templates(ROLLBACK)["rollback-verified"]["metrics"]["prometheus"])
    assert "--after-verification" in templates(ROLLBACK)["rollback-verified"]["container"]["args"]
