"""The rendered templates, run by the real Argo workflow-controller and argoexec, driven as users drive them.

Each test installs nothing by hand: the manifests went in with `kubectl apply --server-side -k manifests/`, every
run starts with `argo submit --from ...`, and the application is the demo app in real Pods behind a real Service.
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import time
import urllib.request
from collections.abc import Callable

import pytest

from bluegreen_spec import SERVICE_LABEL, SLOT_LABEL, STEP_DEADLINE_SECONDS, load_resource
from testenv.demo_service import (
    CLEANUP_CRON,
    DEPLOY_TEMPLATE,
    NAMESPACE,
    ROLLBACK_TEMPLATE,
    DemoService,
    demo_image,
)
from testenv.image_mirror import build_images
from testenv.node.image_store import Reference
from testenv.node.images import ARGOEXEC_REPOSITORY, STEPS_REPOSITORY
from testenv.rest import request
from tests.e2e.failing_webhook import FailingWebhook
from tests.unit.metric_catalog import emitted_series

pytestmark = [pytest.mark.cluster]

MAIN_PATH = ["preflight", "deploy-green", "probe", "smoke", "switch", "retain", "cleanup"]


def _other(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def test_deploy_succeeds_in_dag_order_and_moves_traffic(adopted_service: DemoService) -> None:
    service = adopted_service
    before = service.live_slot()

    run = service.deploy(demo_image("v2"))

    assert run.phase == "Succeeded", run.summary()
    main_steps = [t for t in run.step_order() if t in MAIN_PATH]
    assert main_steps == MAIN_PATH, run.summary()
    for first, then in itertools.pairwise(MAIN_PATH):
        assert run.finished_before(first, then), f"{first} overlapped {then}\n{run.summary()}"
    # Outputs pass between steps: preflight names the target slot that the later steps act on.
    target = run.output("preflight", "target-slot")
    assert target == _other(before)
    assert service.live_slot() == target
    assert service.serving_version() == "v2"
    status = service.status()
    assert status["activeSlot"] == target and status["activeImage"] == demo_image("v2")
    record = service.record_of(run.name)
    assert record["status"]["outcome"] == "Succeeded", record["status"]
    assert record["spec"]["image"] == demo_image("v2")
    assert record["spec"]["toSlot"] == target
    # The controller substituted the run's uid into the steps' environment: the record is bound to this workflow.
    assert record["spec"]["workflowUid"] == run.raw["metadata"]["uid"], record["spec"]
    # Preflight turned the spec's waits into per-run deadlines, and each step after it in the release Pod took its
    # own from preflight's files (its log says so; successful Pods stay ten minutes for their logs).
    deadlines = load_resource(service.bgd()).spec.run_deadlines()
    for step in ("deploy-green", "probe", "smoke"):
        assert run.output("preflight", f"{step}-deadline") == str(deadlines[step]), run.summary()
        assert service.pod_deadline(run.name, step) == deadlines[step], run.summary()
    # The switch wrote its outputs into the shared Pod, and Argo collected them there.
    assert run.output("switch", "switched-at"), run.summary()
    assert float(run.output("switch", "switch-seconds")) >= 0, run.summary()
    assert_steps_ran_the_image_built_from_this_tree(service, run.name)


def assert_steps_ran_the_image_built_from_this_tree(service: DemoService, workflow: str) -> None:
    """Every steps container of the run reports the digest the mirror serves for the image `make image` built."""
    statuses = [
        status
        for pod in service.workflow_pods(workflow)
        for status in pod["status"].get("containerStatuses") or []
        if status["image"].startswith(STEPS_REPOSITORY + ":")
    ]
    assert statuses, f"no steps container in the Pods of {workflow}"
    digests = {status["imageID"].removeprefix(STEPS_REPOSITORY + "@") for status in statuses}
    assert len(digests) == 1 and next(iter(digests)).startswith("sha256:"), digests
    digest = next(iter(digests))
    mirror = service.cluster.registry_mirror
    public = Reference.parse(statuses[0]["image"])
    with urllib.request.urlopen(
        urllib.request.Request(
            f"http://{mirror}/v2/{public.repository}/manifests/{digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ),
        timeout=30,
    ) as answer:
        manifest = json.loads(answer.read())
    # The image ID is its config's digest, the same however the layers were compressed for the push.
    built = {image["name"]: image for image in build_images(["steps"])}
    assert manifest["config"]["digest"] == built["steps"]["id"], (manifest["config"], built["steps"])
    # Argo's init and wait containers ran the executor image, pulled through the same mirror.
    executors = [
        status
        for pod in service.workflow_pods(workflow)
        for status in [*(pod["status"].get("initContainerStatuses") or []), *pod["status"]["containerStatuses"]]
        if status["name"] in {"init", "wait"}
    ]
    assert executors and all(s["imageID"].startswith(f"{ARGOEXEC_REPOSITORY}@sha256:") for s in executors), executors


@pytest.mark.parametrize(
    ("tag", "readiness", "failing_step"),
    [
        pytest.param("v2-fail-smoke", "http", "smoke", id="smoke-fails"),
        pytest.param("v2-never-ready", "tcp", "probe", id="probe-fails"),
    ],
)
def test_failed_check_is_rolled_back_by_the_exit_handler(
    demo_service: Callable[..., DemoService], tag: str, readiness: str, failing_step: str
) -> None:
    service = demo_service(readiness=readiness)
    first = service.deploy(demo_image("v1"))
    assert first.phase == "Succeeded", first.summary()
    live = service.live_slot()

    run = service.deploy(demo_image(tag))

    assert run.phase == "Failed", run.summary()
    failed = run.runs_of(failing_step)
    assert failed and failed[-1].phase == "Failed", run.summary()
    # A failed check is final: Argo does not retry it (only pod errors and exit 75 are retried).
    assert len(failed) == 1, run.summary()
    assert "switch" not in run.step_order(), run.summary()
    assert run.finished_before("rollback", "notify"), run.summary()
    # The failed Pod stays (podGC removes successful ones only): Argo gave it this run's deadline, not the cap.
    deadline = load_resource(service.bgd()).spec.run_deadlines()[failing_step]
    assert deadline < STEP_DEADLINE_SECONDS[failing_step]
    assert service.pod_deadline(run.name, failing_step) == deadline
    assert service.live_slot() == live
    assert service.serving_version() == "v1"
    record = service.record_of(run.name)
    assert record["status"]["outcome"] in {"RolledBack", "Failed"}, record["status"]
    assert failing_step in record["status"]["reason"].lower(), record["status"]


def test_bad_image_fails_deploy_green_and_rolls_back(adopted_service: DemoService) -> None:
    service = adopted_service
    live = service.live_slot()

    run = service.deploy("registry.invalid/nobody/nothing:1.0")

    assert run.phase == "Failed", run.summary()
    deploy_green = run.runs_of("deploy-green")
    assert deploy_green and deploy_green[-1].phase == "Failed", run.summary()
    assert "ImagePull" in service.record_of(run.name)["status"]["reason"], service.record_of(run.name)["status"]
    assert run.finished_before("rollback", "notify"), run.summary()
    assert service.live_slot() == live
    # The idle slot held the retained previous version (the adopted v1): the exit handler gave it back its image, so
    # the one-click rollback still has a target.
    idle = service.slot(_other(live))
    assert idle is not None
    assert idle["spec"]["template"]["spec"]["containers"][0]["image"] == demo_image("v1"), idle
    assert service.status().get("previousSlot") == _other(live)
    assert service.serving_version() == "v1"


def test_a_switch_submitted_as_the_entrypoint_is_refused(adopted_service: DemoService) -> None:
    """``--entrypoint switch`` skips preflight, probe and smoke; switch itself must refuse the unproven slot.

    Handed a finished run's record, it refuses before reading it: a gate takes only its own run's verdicts.
    """
    service = adopted_service
    live, version = service.live_slot(), service.serving_version()
    earlier = service.records()[-1]["metadata"]["name"]  # a finished run whose checks all passed

    run = service.submit(
        DEPLOY_TEMPLATE,
        f"image={demo_image('v9')}",
        f"slot={_other(live)}",
        f"record={earlier}",
        extra=("--entrypoint", "switch"),
    )

    assert run.phase == "Failed", run.summary()
    (switch,) = run.runs_of("switch")
    own_run_only = f"switch runs in workflow {run.name} and may use only its record {run.name}, not {earlier}"
    assert own_run_only in switch.message, run.summary()
    assert service.live_slot() == live
    assert service.serving_version() == version
    # The exit handler still leaves a record of the attempt.
    record = service.record_of(run.name)
    assert record["status"]["outcome"] == "Failed", record["status"]


def test_two_submits_for_one_service_are_serialised_by_the_mutex(adopted_service: DemoService) -> None:
    service = adopted_service
    start_slot = service.live_slot()
    first = service.deploy(demo_image("v2"), wait=False)
    second = service.deploy(demo_image("v3"), wait=False)

    waited_message = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = service.workflow(second.name)
        if "lock" in seen.message.lower() or "waiting" in seen.message.lower():
            waited_message = seen.message
            break
        if seen.phase in {"Succeeded", "Failed", "Error"}:
            break
        time.sleep(0.5)  # bounded poll of the Argo API for the mutex message

    first_done = service.wait_workflow(first.name)
    second_done = service.wait_workflow(second.name)

    assert first_done.phase == "Succeeded", first_done.summary()
    assert second_done.phase == "Succeeded", second_done.summary()
    assert waited_message, "the second run never reported waiting for the service's lock"
    first_end = max(n.finished_at for n in first_done.steps() if n.template == "cleanup")
    second_start = min(n.started_at for n in second_done.steps())
    assert first_end <= second_start, "the two runs overlapped"
    # The second run started from the state the first one left: it deployed into the slot the first one vacated.
    assert second_done.output("preflight", "target-slot") == start_slot
    assert service.live_slot() == start_slot
    assert service.serving_version() == "v3"
    # That slot still ran v1, kept warm for a rollback: its pods were replaced all at once, not one at a time as the
    # team's rolling strategy would have had it, as the real deployment controller's events show.
    replicas = int(service.bgd()["spec"]["replicas"])
    assert service.scale_ups(start_slot, demo_image("v3")) == [replicas]


def test_rollback_template_restores_the_previous_slot(adopted_service: DemoService) -> None:
    service = adopted_service
    old_slot = service.live_slot()
    deployed = service.deploy(demo_image("v2"))
    assert deployed.phase == "Succeeded", deployed.summary()
    assert service.live_slot() == _other(old_slot)

    run = service.submit(ROLLBACK_TEMPLATE)

    assert run.phase == "Succeeded", run.summary()
    assert service.live_slot() == old_slot
    assert service.serving_version() == "v1"
    assert service.status()["activeImage"] == demo_image("v1")


def test_cleanup_cron_removes_an_expired_slot(demo_service: Callable[..., DemoService]) -> None:
    service = demo_service(retainPreviousVersion="1s")
    assert service.deploy(demo_image("v1")).phase == "Succeeded"
    assert service.deploy(demo_image("v2")).phase == "Succeeded"
    previous = _other(service.live_slot())

    run = service.submit(CLEANUP_CRON)

    assert run.phase == "Succeeded", run.summary()
    gone = service.slot(previous)
    assert gone is None or gone["spec"]["replicas"] == 0, gone
    assert service.serving_version() == "v2"


def test_terminated_deploy_is_repaired_by_the_cron(adopted_service: DemoService) -> None:
    service = adopted_service
    live = service.live_slot()
    run = service.deploy(demo_image("v2-slow-start"), wait=False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = service.workflow(run.name)
        if any(n.template == "deploy-green" and n.phase == "Running" for n in seen.steps()):
            break
        time.sleep(0.5)  # bounded poll: wait until deploy-green's Pod is running
    else:
        pytest.fail(f"deploy-green never started:\n{service.workflow(run.name).summary()}")

    service.argo("terminate", run.name)
    terminated = service.wait_workflow(run.name)
    assert terminated.phase in {"Failed", "Error"}, terminated.summary()
    # `argo terminate` skips onExit, so nothing rolled back: the run still holds the service.
    assert "rollback" not in terminated.step_order(), terminated.summary()

    repair = service.submit(CLEANUP_CRON)

    assert repair.phase == "Succeeded", repair.summary()
    assert service.live_slot() == live
    idle = service.slot(_other(live))
    assert idle is None or idle["spec"]["replicas"] == 0, idle
    record = service.record_of(run.name)
    assert record["status"]["outcome"] == "Aborted", record["status"]
    assert service.serving_version() == "v1"


def test_template_metrics_appear_on_the_controller(adopted_service: DemoService, installed: object) -> None:
    service = adopted_service
    run = service.deploy(demo_image("v2"))
    assert run.phase == "Succeeded", run.summary()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the controller serves metrics with a self-signed certificate
    deadline = time.monotonic() + 60
    wanted = f'service="{service.name}"'
    lines: list[str] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(service.cluster.metrics_url, context=context, timeout=5) as resp:
            text = resp.read().decode()
        lines = [ln for ln in text.splitlines() if ln.startswith("argo_workflows_bluegreen_") and wanted in ln]
        if any("bluegreen_deploy_runs" in ln and 'status="Succeeded"' in ln for ln in lines):
            break
        time.sleep(1.0)  # bounded poll: the controller publishes metrics when it next reconciles
    runs = [ln for ln in lines if ln.startswith("argo_workflows_bluegreen_deploy_runs")]
    assert any('status="Succeeded"' in ln for ln in runs), lines
    assert any(ln.startswith("argo_workflows_bluegreen_deploy_duration_seconds") for ln in lines), lines
    # The names the dashboard and the alerts query are the names the controller serves: every series here is one the
    # catalog derives from the templates, counters without _total, and a deploy produces each family it should.
    emitted = emitted_series()
    served = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", ln)[0] for ln in lines}  # type: ignore[index]
    assert served <= set(emitted), sorted(served - set(emitted))
    for family in ("deploy_runs", "deploy_started", "deployed_version", "switch_duration_seconds_bucket"):
        assert f"argo_workflows_bluegreen_{family}" in served, lines
    # The live image's gauge orders runs by their creation time, YYYYMMDDhhmmss as a number: v2's run is the latest.
    versions = {
        re.search(r'image="([^"]*)"', ln)[1]: float(ln.rsplit(" ", 1)[1])  # type: ignore[index]
        for ln in lines
        if ln.startswith("argo_workflows_bluegreen_deployed_version")
    }
    assert max(versions, key=versions.__getitem__) == demo_image("v2"), versions
    assert all(20000101000000 <= value <= 20991231235959 for value in versions.values()), versions
    # The slot's pods carry the version label from the image's tag, for joining the app's own metrics.
    selector = f"{SLOT_LABEL}={run.output('preflight', 'target-slot')},{SERVICE_LABEL}={service.name}"
    pods_path = f"/api/v1/namespaces/{service.namespace}/pods"
    pods = request(service.cluster.api, "GET", pods_path, query={"labelSelector": selector})["items"]
    assert pods and {pod["metadata"]["labels"].get("app.kubernetes.io/version") for pod in pods} == {"v2"}, pods


def test_submit_through_the_argo_server_api(adopted_service: DemoService) -> None:
    service = adopted_service
    base = service.cluster.argo_server_url
    with urllib.request.urlopen(f"{base}/api/v1/workflow-templates/{NAMESPACE}/blue-green-deploy", timeout=10) as resp:
        template = json.loads(resp.read())
    described = {p["name"]: p.get("description", "") for p in template["spec"]["arguments"]["parameters"]}
    assert described["service"] and described["image"], described

    body = {
        "resourceKind": "WorkflowTemplate",
        "resourceName": "blue-green-deploy",
        "submitOptions": {"parameters": [f"service={service.name}", f"image={demo_image('v2')}"]},
    }
    req = urllib.request.Request(
        f"{base}/api/v1/workflows/{NAMESPACE}/submit",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        created = json.loads(resp.read())

    run = service.wait_workflow(created["metadata"]["name"])
    assert run.phase == "Succeeded", run.summary()
    assert service.serving_version() == "v2"


def test_transient_api_failure_exits_75_and_is_retried(adopted_service: DemoService) -> None:
    service = adopted_service
    # Longer than the 30 s the steps' API client retries by itself, so preflight's first attempt exits 75.
    with FailingWebhook(
        service.cluster, namespace=NAMESPACE, service=service.name, resource="deploymentrecords", seconds=45.0
    ) as hook:
        run = service.deploy(demo_image("v2"))
    assert hook.refused > 0, "the webhook never refused a request"
    assert run.phase == "Succeeded", run.summary()
    # Preflight retries exit code 75 in its own process, with its backoff; Argo retries only the Pod's errors.
    (preflight,) = run.runs_of("preflight")
    assert preflight.phase == "Succeeded", run.summary()
    log = service.step_log(run.name, "preflight")
    assert "retry 1 of 3 in 5 s" in log, log
