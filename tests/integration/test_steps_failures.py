"""When a deploy fails, traffic stays (or goes back) on the slot that served, and the record says why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENTS, SERVICES, WORKFLOWS, Output, Step
from tests.integration.service_helpers import (
    IMAGE_MISSING,
    IMAGE_V1,
    IMAGE_V2,
    IMAGE_V3,
    ServiceFactory,
    ServiceUnderTest,
    demo_app,
)
from tests.steps.http_servers import AppServer, FakePrometheus, vector

pytestmark = pytest.mark.controlplane

FAST_PROBE = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}


def argo_failures(step: str, message: str) -> str:
    """``{{workflow.failures}}`` as Argo substitutes it: JSON, quoted once more."""
    return json.dumps(json.dumps([{"displayName": step, "message": message, "templateName": step, "phase": "Failed"}]))


@pytest.fixture
def app() -> Iterator[AppServer]:
    with AppServer() as server:
        yield server


def test_probe_failure_keeps_traffic_on_blue_and_records_why(
    make_service: ServiceFactory, app: AppServer, tmp_path: Path
) -> None:
    sut = make_service("fail", healthCheck=FAST_PROBE)
    app.route("/health", 503)
    target, record = sut.preflight(IMAGE_V2, "wf-probe", tmp_path)
    assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
    assert sut.run_probe(target, record, app.url) == 1
    sut.exit_handler("wf-probe", argo_failures("probe", "Error (exit code 1)"))
    assert sut.live_slot() is spec.Slot.blue
    assert sut.replicas("cart-green") == 0
    stored = sut.record(record)
    assert stored["status"]["outcome"] == "RolledBack"
    assert "probe: Error (exit code 1)" in stored["status"]["reason"]
    attempts = [e for e in stored["status"]["entries"] if e["event"] == "probe-attempt"]
    assert len(attempts) == 2 and all(e["details"]["status"] == "503" for e in attempts)
    assert sut.status().active_image == IMAGE_V1
    assert sut.status().workflow is None


def test_smoke_failure_keeps_traffic_on_blue(make_service: ServiceFactory, app: AppServer, tmp_path: Path) -> None:
    sut = make_service("fail", smokeTests=[{"name": "users", "endpoint": "/api/users", "bodyContains": "alice"}])
    app.route("/api/users", 200)
    target, record = sut.preflight(IMAGE_V2, "wf-smoke", tmp_path)
    assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
    assert sut.run_smoke(target, record, app.url) == 1
    sut.exit_handler("wf-smoke", argo_failures("smoke", "Error (exit code 1)"))
    assert sut.live_slot() is spec.Slot.blue
    assert sut.replicas("cart-green") == 0
    results = [e for e in sut.record(record)["status"]["entries"] if e["event"] == "smoke-result"]
    assert results[0]["details"]["passed"] == "false"
    assert "alice" in results[0]["message"]


@dataclass(frozen=True)
class NeverAvailable:
    """A real reason for a new slot never to become available, and what deploy-green must say about it."""

    image: str
    #: The spec's readinessTimeout: how long deploy-green waits unless the controller gives up first.
    readiness_timeout: str
    #: The team's Deployment's progressDeadlineSeconds, which the slots inherit (None: the API's default, 600).
    progress_deadline_seconds: int | None
    expected: tuple[str, ...]


NEVER_AVAILABLE = {
    # The kubelet reports ErrImagePull, then ImagePullBackOff once its pull back-off holds (~5 s on): the timeout
    # leaves time for that, so the step names the reason a user would see.
    "bad image": NeverAvailable(IMAGE_MISSING, "20s", None, ("ImagePullBackOff", IMAGE_MISSING)),
    # The app runs but /health never answers 200: no waiting reason, so the step reports the count it waited for.
    "never ready": NeverAvailable(demo_app("v2-never-ready"), "15s", None, ("not available within 15 s", "0/2")),
    # The real deployment controller marks the rollout ProgressDeadlineExceeded; the step fails on that at once,
    # long before its own timeout.
    "progress deadline": NeverAvailable(
        demo_app("v2-never-ready"), "120s", 10, ("ProgressDeadlineExceeded", "has timed out progressing")
    ),
}


@pytest.mark.parametrize("cause", NEVER_AVAILABLE.values(), ids=NEVER_AVAILABLE.keys())
def test_green_never_available_fails_fast_and_traffic_stays(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], cause: NeverAvailable
) -> None:
    sut = make_service("fail", readinessTimeout=cause.readiness_timeout)
    if cause.progress_deadline_seconds is not None:
        sut.admin_kube.merge_patch(
            DEPLOYMENTS, sut.namespace, "cart", {"spec": {"progressDeadlineSeconds": cause.progress_deadline_seconds}}
        )
        sut.wait_settled()
    target, record = sut.preflight(cause.image, "wf-never", tmp_path)
    started = time.monotonic()
    assert sut.run_deploy_green(cause.image, target, record) == 1
    waited = time.monotonic() - started
    err = capsys.readouterr().err
    assert "cart-green" in err
    for text in cause.expected:
        assert text in err
    if cause.progress_deadline_seconds is not None:
        assert waited < 60, f"deploy-green waited {waited:.0f} s instead of failing on the controller's verdict"
    sut.exit_handler("wf-never", argo_failures("deploy-green", "Error (exit code 1)"))
    assert sut.live_slot() is spec.Slot.blue
    assert sut.replicas("cart-green") == 0
    assert sut.record(record)["status"]["outcome"] == "RolledBack"


def test_verify_failure_after_switch_restores_blue(make_service: ServiceFactory, tmp_path: Path) -> None:
    with FakePrometheus() as prometheus:
        query = 'sum(rate(http_requests_total{code=~"5.."}[1m]))'
        prometheus.answer(query, vector(0.0), vector(12.0))
        sut = make_service(
            "fail",
            analysis={
                "prometheusUrl": prometheus.url,
                "window": "1s",
                "interval": "1s",
                "queries": [{"name": "errors", "query": query, "max": 1.0}],
            },
        )
        target, record = sut.preflight(IMAGE_V2, "wf-verify", tmp_path)
        assert (tmp_path / "analysis-enabled").read_text() == "true"
        assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
        sut.prove(target, record)
        assert sut.run_switch(target, record) == 0
        assert sut.live_slot() is spec.Slot.green
        assert sut.run_verify(record) == 1
    sut.exit_handler("wf-verify", argo_failures("verify", "Error (exit code 1)"))
    assert sut.live_slot() is spec.Slot.blue
    status = sut.status()
    assert (status.active_slot, status.active_image, status.phase) == (
        spec.Slot.blue,
        IMAGE_V1,
        spec.Phase.rolled_back,
    )
    assert sut.replicas("cart-green") == 0
    stored = sut.record(record)
    assert stored["status"]["outcome"] == "RolledBack"
    assert "verify" in stored["status"]["reason"]
    assert any(e["event"] == "restored" for e in stored["status"]["entries"])


def test_rollback_scales_a_scaled_down_old_slot_up_before_switching(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """flagger#1898 / argo-rollouts#4750: a rollback must never point traffic at a slot with no ready pods."""
    sut = make_service("fail")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert sut.live_slot() is spec.Slot.green
    # Something (an HPA, a person, a cost-saving job) scaled the retained blue slot to zero.
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart-blue", {"spec": {"replicas": 0}})
    sut.wait_settled()
    # Blue's Pods are gone: scaling it up starts real processes that take a while to become Ready.
    assert sut.run_manual_rollback("rb-1", reason="bad release") == 0
    assert sut.live_slot() is spec.Slot.blue
    blue = sut.deployment("cart-blue")
    assert blue is not None and blue["spec"]["replicas"] == 2
    assert blue["status"]["availableReplicas"] == 2
    entries = [e["event"] for e in sut.record("rb-1")["status"]["entries"]]
    assert entries.index("scaled-up") < entries.index("intent") < entries.index("restored")
    assert sut.record("rb-1")["status"]["outcome"] == "RolledBack"
    assert sut.replicas("cart-green") == 0


def test_one_click_rollback_with_nothing_retained_names_the_image_to_redeploy(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("fail", retainPreviousVersion="0s")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)
    assert sut.run_cleanup() == 0
    assert sut.deployment("cart-blue") is None
    capsys.readouterr()
    assert sut.run_manual_rollback("rb-1") == 1
    err = capsys.readouterr().err
    assert "no retained previous version" in err
    assert sut.live_slot() is spec.Slot.green


def test_one_click_rollback_past_the_retention_window_is_refused_before_any_write(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window is the one-click rollback's promise: past it the cleanup may be scaling the slot down right now."""
    sut = make_service("fail", retainPreviousVersion="0s")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)
    # The retain step stamped blue with a window that ended at once; no cleanup sweep has come by yet.
    blue = sut.deployment("cart-blue")
    assert blue is not None and blue["spec"]["replicas"] == 2
    stamp = blue["metadata"]["annotations"][spec.RETAIN_UNTIL_ANNOTATION]
    assert sut.status().previous_slot is spec.Slot.blue
    versions = {
        name: sut.admin_kube.must_get(kind, sut.namespace, name)["metadata"]["resourceVersion"]
        for kind, name in ((BLUE_GREEN_DEPLOYMENTS, "cart"), (DEPLOYMENTS, "cart-blue"), (DEPLOYMENTS, "cart-green"))
    }
    records = len(sut.records())
    writes = sut.steps_kube.writes_accepted
    capsys.readouterr()

    assert sut.run_manual_rollback("rb-1") == 1

    err = capsys.readouterr().err
    assert f"retained until {stamp}" in err
    assert f"redeploy {IMAGE_V1} with blue-green-deploy" in err
    assert sut.steps_kube.writes_accepted == writes
    assert len(sut.records()) == records
    assert versions == {
        name: sut.admin_kube.must_get(kind, sut.namespace, name)["metadata"]["resourceVersion"]
        for kind, name in ((BLUE_GREEN_DEPLOYMENTS, "cart"), (DEPLOYMENTS, "cart-blue"), (DEPLOYMENTS, "cart-green"))
    }
    assert sut.live_slot() is spec.Slot.green


def test_cleanup_never_touches_live_or_retained_slots_even_with_stale_status(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """argo-rollouts#2235: scale-down of the live ReplicaSet; here a stale status must not cost the live slot."""
    sut = make_service("fail")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)
    # Lie in the status: claim blue is live and green is the expired previous version.
    sut.admin_kube.merge_patch(
        BLUE_GREEN_DEPLOYMENTS,
        sut.namespace,
        sut.name,
        {"status": {"activeSlot": "blue", "previousSlot": "green", "retainUntil": "2000-01-01T00:00:00Z"}},
        "status",
    )
    # And stamp the live green slot as long expired.
    sut.admin_kube.merge_patch(
        DEPLOYMENTS,
        sut.namespace,
        "cart-green",
        {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: "2000-01-01T00:00:00Z"}}},
    )
    assert sut.run_cleanup(all_services=True) == 0
    assert sut.replicas("cart-green") == 2, "the live slot was scaled down"
    assert sut.replicas("cart-blue") == 2, "the retained slot (retention not over) was removed"
    assert sut.live_slot() is spec.Slot.green


def test_cleanup_removes_only_an_expired_previous_slot(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("fail", retainPreviousVersion="0s")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)
    assert sut.run_cleanup(all_services=True) == 0
    assert sut.deployment("cart-blue") is None
    assert sut.replicas("cart-green") == 2
    status = sut.status()
    assert (status.previous_slot, status.previous_image) == (None, None)


def test_a_slot_the_sweep_cannot_remove_is_counted_overdue(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("stuck", retainPreviousVersion="0s")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False)
    outputs = tmp_path / "outputs"

    def sweep_overdue() -> str:
        assert sut.step(Step.cleanup, "--all-services", "--output-dir", str(outputs)) == 0
        return (outputs / Output.overdue_slots.value).read_text()

    # A finalizer nobody removes: the delete is accepted, but the expired previous slot stays.
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart-blue", {"metadata": {"finalizers": ["test/hold"]}})
    try:
        assert sweep_overdue() == "1"
        stuck = sut.deployment("cart-blue")
        assert stuck is not None and stuck["metadata"].get("deletionTimestamp")
        assert sweep_overdue() == "1", "a second sweep must still see the stuck slot"
    finally:
        sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart-blue", {"metadata": {"finalizers": None}})
    assert sweep_overdue() == "0"
    assert sut.deployment("cart-blue") is None
    assert sut.replicas("cart-green") == 2


def test_two_services_in_parallel_without_cross_talk_and_a_second_run_is_refused(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    cart = make_service("fail", name="cart")
    users = make_service("fail", name="users")
    errors: list[BaseException] = []

    def run(sut: ServiceUnderTest, out: Path) -> None:
        try:
            sut.deploy(IMAGE_V2, f"wf-{sut.name}", out)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(s, tmp_path / s.name)) for s in (cart, users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    for sut in (cart, users):
        assert sut.live_slot() is spec.Slot.green
        assert [r["metadata"]["name"] for r in sut.records()] == [f"wf-{sut.name}"]
    # A second run for a service that a running workflow holds is refused, with no write.
    target, record = cart.preflight(IMAGE_V3, "wf-held", tmp_path / "held")
    cart.admin_kube.create(
        WORKFLOWS,
        cart.namespace,
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            # The controller-instance label keeps the cluster's real Argo controller from running this stand-in
            # for a workflow in progress: a controller handles only workflows of its own instance.
            "metadata": {"name": "wf-held", "labels": {"workflows.argoproj.io/controller-instanceid": "tests"}},
            "spec": {"workflowTemplateRef": {"name": "blue-green-deploy"}},
        },
    )
    before = cart.bgd()["metadata"]["resourceVersion"]
    capsys.readouterr()
    assert cart.run_preflight(IMAGE_V3, "wf-second") == 1
    assert "held by running workflow wf-held" in capsys.readouterr().err
    assert cart.bgd()["metadata"]["resourceVersion"] == before
    assert [r["metadata"]["name"] for r in cart.records() if r["metadata"]["name"] == "wf-second"] == []
    assert (target, record) == ("blue", "wf-held")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--image", "Not An Image!"), "is not a valid image reference"),
        (("--image", "docker.io/library/cart:1"), "does not allow"),
        (("--image", "registry.example.com/shop/cart:2"), "is not pinned by digest"),
        (("--service", "no-such-service", "--image", IMAGE_V2), "BlueGreenDeployment"),
    ],
)
def test_bad_input_fails_clearly_with_no_write(
    make_service: ServiceFactory,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    sut = make_service("fail", imagePolicy={"allowedRegistries": ["registry.example.com/shop"], "requireDigest": True})
    before = sut.bgd()["metadata"]["resourceVersion"]
    args = list(argv)
    if "--service" not in args:
        args = ["--service", sut.name, *args]
    capsys.readouterr()
    assert sut.step("preflight", *args, "--workflow", "wf-bad") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sut.bgd()["metadata"]["resourceVersion"] == before
    assert sut.records() == []
    assert sut.deployment("cart-blue") is None  # not even adoption started


def test_missing_application_service_is_refused_before_any_write(
    make_service: ServiceFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("fail")
    sut.admin_kube.delete(SERVICES, sut.namespace, "cart")
    before = sut.bgd()["metadata"]["resourceVersion"]
    capsys.readouterr()
    assert sut.run_preflight(IMAGE_V2, "wf-x") == 2
    err = capsys.readouterr().err.strip()
    assert f"Service {sut.namespace}/cart does not exist" in err and len(err.splitlines()) == 1
    assert sut.bgd()["metadata"]["resourceVersion"] == before
    assert sut.records() == []
    assert sut.deployment("cart-blue") is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # CEL on the API server cannot check that a text is a regular expression; the model can.
        (
            "smokeTests",
            [{"name": "body", "endpoint": "/a", "bodyMatches": "(unclosed"}],
            "spec.smokeTests[0].bodyMatches: '(unclosed' is not a regular expression",
        ),
    ],
)
def test_invalid_spec_that_got_in_is_refused_before_any_write(
    make_service: ServiceFactory, capsys: pytest.CaptureFixture[str], field: str, value: object, message: str
) -> None:
    sut = make_service("fail")
    body = sut.bgd()
    body["spec"][field] = value
    sut.admin_kube.replace(BLUE_GREEN_DEPLOYMENTS, sut.namespace, body)
    capsys.readouterr()
    assert sut.run_preflight(IMAGE_V2, "wf-x") == 2
    err = capsys.readouterr().err
    assert message in err
    assert sut.records() == []


def test_failed_deploy_gives_the_retained_version_its_slot_back(
    make_service: ServiceFactory, app: AppServer, tmp_path: Path
) -> None:
    # Nothing is lost (I6): with two slots a deploy borrows the slot holding the retained previous version; when it
    # fails before its switch, the exit handler must hand that version back, or the one-click rollback has nothing.
    sut = make_service("fail", smokeTests=[{"name": "users", "endpoint": "/api/users"}])
    app.route("/health", 200)
    app.route("/api/users", 200)
    sut.deploy(IMAGE_V2, "wf-v2", tmp_path, cleanup=False, app_url=app.url)
    live = sut.live_slot()
    assert live is not None
    before = sut.status()
    assert before.previous_slot is live.other and before.previous_image == IMAGE_V1

    app.route("/api/users", 500)
    target, record = sut.preflight(IMAGE_V3, "wf-v3", tmp_path)
    assert target == live.other.value
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    assert sut.run_smoke(target, record, app.url) == 1
    sut.exit_handler("wf-v3", argo_failures("smoke", "Error (exit code 1): smoke tests failed"))

    assert sut.live_slot() is live
    kept = sut.deployment(f"cart-{live.other.value}")
    assert kept is not None
    assert kept["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V1
    assert kept["metadata"]["annotations"][spec.RETAIN_UNTIL_ANNOTATION] == before.retain_until
    after = sut.status()
    assert (after.previous_slot, after.previous_image, after.retain_until) == (
        before.previous_slot,
        before.previous_image,
        before.retain_until,
    )
    assert "reinstated" in [e["event"] for e in sut.record(record)["status"]["entries"]]

    assert sut.run_manual_rollback("wf-back") == 0
    assert sut.live_slot() is live.other
