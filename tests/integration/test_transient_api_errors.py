"""A full deploy survives what a busy API server does: throttling, failing writes, conflicts and lost replies.

The steps talk to the real API server through ``testenv.fault_proxy``, which answers chosen requests with 409, 429,
500 or 503 (or forwards a write and then loses its reply). Every test checks both that the deploy converged to the
right state and, from the proxy's log, that the faults it injected actually fired: a fault that never fires proves
nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, ExitCode
from pipelines.settings import SERVICE_ACCOUNT
from steps.kube import ApiRetryPolicy, Kube
from testenv.fault_proxy import FaultProxy, FaultRule
from tests.integration.service_helpers import IMAGE_V1, IMAGE_V2, ServiceFactory, ServiceUnderTest
from tests.steps.http_servers import SkippingClock

pytestmark = pytest.mark.controlplane

WORKFLOW = "deploy-1"
_tally: dict[str, int] = {"tests": 0, "faults": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_fault_count(pytestconfig: pytest.Config) -> Iterator[None]:
    """Print the module's fault total on the terminal, past output capture (what ``capsys.disabled()`` does)."""
    yield
    line = f"fault proxy: {_tally['faults']} faults injected and answered across {_tally['tests']} tests"
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print(f"\n{line}")


@pytest.fixture(autouse=True)
def _count_faults(fault_proxy: FaultProxy) -> Iterator[None]:
    yield
    _tally["tests"] += 1
    _tally["faults"] += len(fault_proxy.injected())


@pytest.fixture
def service(make_service: ServiceFactory) -> ServiceUnderTest:
    """An unmanaged service, installed directly; only the steps go through the proxy (see :func:`via`)."""
    return make_service("faults")


@pytest.fixture
def sut(fault_proxy: FaultProxy, service: ServiceUnderTest) -> ServiceUnderTest:
    """The service with its steps going through the fault proxy, retrying for the default ten seconds."""
    return via(fault_proxy, service)


def via(
    proxy: FaultProxy, sut: ServiceUnderTest, deadline_seconds: float = 10.0, clock: SkippingClock | None = None
) -> ServiceUnderTest:
    """The same service, with the steps' client impersonating the ServiceAccount through ``proxy``.

    With ``clock``, the client's retries wait on it: its pauses are skipped and kept in ``clock.sleeps``.
    """
    api = proxy.impersonating_api_client(sut.namespace, SERVICE_ACCOUNT)
    retry = ApiRetryPolicy(deadline_seconds=deadline_seconds)
    kube = Kube(api, retry=retry) if clock is None else Kube(api, retry=retry, sleep=clock.sleep, clock=clock)
    return dataclasses.replace(sut, steps_kube=kube)


def dag_steps(sut: ServiceUnderTest, out: Path, image: str = IMAGE_V2) -> dict[str, Callable[[], int]]:
    """Each step of the deploy DAG in order, ready to run; probe and smoke call green's Pods through its preview."""
    green = spec.Slot.green
    return {
        "preflight": lambda: sut.run_preflight(image, WORKFLOW, out=out, triggered_by="ci"),
        "deploy-green": lambda: sut.run_deploy_green(image, green, WORKFLOW, out=out),
        "probe": lambda: sut.run_probe(green, WORKFLOW, sut.preview_url()),
        "smoke": lambda: sut.run_smoke(green, WORKFLOW, sut.preview_url()),
        "switch": lambda: sut.run_switch(green, WORKFLOW, out=out),
        "retain": lambda: sut.run_retain(WORKFLOW),
        "cleanup": sut.run_cleanup,
    }


def deploy(sut: ServiceUnderTest, out: Path, *, before: Callable[[str], object] | None = None) -> None:
    """Run every step of the deploy DAG in order, each expected to exit 0."""
    for name, run in dag_steps(sut, out).items():
        if before is not None:
            before(name)
        code = run()
        assert code == 0, f"{name} exited {code}"
        if name == "preflight":
            assert (out / "target-slot").read_text() == "green"
            assert (out / "record").read_text() == WORKFLOW
        if name == "deploy-green":
            assert sut.live_slot() is spec.Slot.blue, "traffic moved before the switch"


def assert_deployed(sut: ServiceUnderTest, *, rerun: tuple[str, ...] = ()) -> None:
    """Traffic on green with the new image, the run closed as Succeeded, status and record agreeing.

    Each step writes its record entries once, except the steps in ``rerun``, which ran twice.
    """
    assert sut.live_slot() is spec.Slot.green
    status = sut.status()
    assert (status.phase, status.active_slot, status.active_image) == (spec.Phase.succeeded, spec.Slot.green, IMAGE_V2)
    assert (status.previous_slot, status.previous_image) == (spec.Slot.blue, IMAGE_V1)
    assert (status.workflow, status.target_slot) == (None, None)
    assert [(h.record, h.image, h.outcome) for h in status.history] == [(WORKFLOW, IMAGE_V2, "Succeeded")]
    green = sut.deployment("cart-green")
    assert green is not None and green["spec"]["replicas"] == 2
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2
    blue = sut.deployment("cart-blue")
    assert blue is not None and blue["spec"]["replicas"] == 2
    assert blue["metadata"]["annotations"][spec.RETAIN_UNTIL_ANNOTATION] == status.retain_until
    original = sut.deployment("cart")
    assert original is not None and original["spec"]["replicas"] == 0
    assert [r["metadata"]["name"] for r in sut.records()] == [WORKFLOW]
    record = sut.record(WORKFLOW)
    assert (record["status"]["phase"], record["status"]["outcome"]) == ("Succeeded", "Succeeded")
    assert record["spec"]["image"] == IMAGE_V2 and record["spec"]["triggeredBy"] == "ci"
    entries = [(e["step"], e["event"], e.get("message", "")) for e in record["status"]["entries"]]
    duplicated = sorted({e for e in entries if entries.count(e) > 1 and e[0] not in rerun})
    assert not duplicated, f"record entries written twice: {duplicated}"


def assert_fired(proxy: FaultProxy, rule: FaultRule, times: int | None = None) -> None:
    """The rule answered ``times`` requests (default: all it was given), as the proxy's log shows."""
    expected = rule.times if times is None else times
    hits = proxy.injected(rule)
    assert len(hits) == rule.hits == expected, (
        f"{rule.method} *{rule.path_contains}* -> {rule.status}: fired {len(hits)} times, expected {expected}"
    )
    assert all(hit.status == rule.status and hit.forwarded is rule.after_forward for hit in hits)


def bgd_path(sut: ServiceUnderTest) -> str:
    return f"/apis/{spec.API_GROUP}/{spec.API_VERSION}/namespaces/{sut.namespace}/bluegreendeployments/{sut.name}"


def record_status_path(sut: ServiceUnderTest) -> str:
    return f"/namespaces/{sut.namespace}/deploymentrecords/{WORKFLOW}/status"


# -- the baseline --------------------------------------------------------------------------------------------------


def test_deploy_through_the_proxy_without_faults(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    deploy(sut, tmp_path)
    assert_deployed(sut)
    log = fault_proxy.log
    assert not fault_proxy.injected()
    assert {entry.user for entry in log} == {f"system:serviceaccount:{sut.namespace}:{SERVICE_ACCOUNT}"}
    assert any("watch=true" in entry.path for entry in log), "the watches should go through the proxy too"
    assert all(entry.status < 400 or entry.status == 404 for entry in log), [e for e in log if e.status >= 400]


# -- (a) throttled reads -------------------------------------------------------------------------------------------


def test_throttled_reads_are_retried_after_the_servers_delay(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    rules: list[FaultRule] = []
    # Every step starts by reading the BlueGreenDeployment: each of those first reads is throttled once.
    deploy(
        sut, tmp_path, before=lambda _: rules.append(fault_proxy.inject("GET", bgd_path(sut), 429, retry_after="1"))
    )
    assert_deployed(sut)
    assert len(rules) == len(dag_steps(sut, tmp_path))
    for rule in rules:
        assert_fired(fault_proxy, rule)
    log = fault_proxy.log
    for index, entry in enumerate(log):
        if entry.injected:
            retry = log[index + 1]
            assert (retry.method, retry.path, retry.injected) == ("GET", entry.path, False)
            assert retry.at - entry.at >= 0.5, "the retry did not wait for Retry-After"


def test_throttled_watch_and_list_are_retried(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    watch = fault_proxy.inject("GET", "watch=true", 429, times=2)
    pdbs = fault_proxy.inject("GET", "/poddisruptionbudgets", 429, times=2)
    deploy(sut, tmp_path)
    assert_deployed(sut)
    assert_fired(fault_proxy, watch)
    assert_fired(fault_proxy, pdbs)


# -- (b) failing writes --------------------------------------------------------------------------------------------

WRITE_FAULTS: dict[str, tuple[str, str, int, int]] = {
    # id: (method, path fragment, status, times)
    "record-status-500": ("PUT", f"/deploymentrecords/{WORKFLOW}/status", 500, 3),
    "deployment-apply-503": ("PATCH", "/deployments/cart-green?", 503, 2),
    "virtualservice-update-500": ("PUT", "/virtualservices/cart", 500, 2),
    "bgd-status-503": ("PUT", "/bluegreendeployments/cart/status", 503, 2),
    "record-create-500": ("POST", "/deploymentrecords", 500, 2),
}
#: Faults the combined test adds to the above, all in one deploy.
MORE_WRITE_FAULTS: dict[str, tuple[str, str, int, int]] = {
    "adoption-apply-500": ("PATCH", "/deployments/cart-blue?", 500, 1),
    "virtualservice-apply-503": ("PATCH", "/virtualservices/cart?", 503, 1),
    # The slot DestinationRules: the team's own (cart) is never written.
    "destinationrule-apply-500": ("PATCH", "/destinationrules/cart-blue?", 500, 2),
    "preview-service-apply-503": ("PATCH", "/services/cart-preview?", 503, 1),
    "networkpolicy-apply-500": ("PATCH", "/networkpolicies/", 500, 2),
    "event-create-503": ("POST", "/events", 503, 2),
}


@pytest.mark.parametrize("fault", list(WRITE_FAULTS), ids=list(WRITE_FAULTS))
def test_failing_writes_are_retried(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
    fault: str,
) -> None:
    method, path, status, times = WRITE_FAULTS[fault]
    rule = fault_proxy.inject(method, path, status, times)
    deploy(sut, tmp_path)
    assert_deployed(sut)
    assert_fired(fault_proxy, rule)
    log = fault_proxy.log
    for index, entry in enumerate(log):
        if entry.injected:  # the very next request is the same write again
            assert (log[index + 1].method, log[index + 1].path) == (entry.method, entry.path)


def test_many_failing_writes_at_once(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    faults = [*WRITE_FAULTS.values(), *MORE_WRITE_FAULTS.values()]
    rules = [fault_proxy.inject(method, path, status, times) for method, path, status, times in faults]
    deploy(sut, tmp_path)
    assert_deployed(sut)
    for rule in rules:
        assert_fired(fault_proxy, rule)


# -- (c) conflicts -------------------------------------------------------------------------------------------------


#: The steps that update each kind's status, and so meet the injected conflicts.
STATUS_WRITERS: dict[str, tuple[str, ...]] = {
    "bluegreendeployments/cart": ("preflight", "switch", "retain"),
    f"deploymentrecords/{WORKFLOW}": ("preflight", "deploy-green", "probe", "smoke", "switch", "retain"),
}


@pytest.mark.parametrize("kind", list(STATUS_WRITERS), ids=["bluegreendeployment-status", "record-status"])
def test_conflicting_status_updates_are_reread(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
    kind: str,
) -> None:
    rules: list[FaultRule] = []

    def conflicts(step: str) -> None:
        if step in STATUS_WRITERS[kind]:
            rules.append(fault_proxy.inject("PUT", f"/{kind}/status", 409, times=2))

    deploy(sut, tmp_path, before=conflicts)
    assert_deployed(sut)
    assert len(rules) == len(STATUS_WRITERS[kind])
    for rule in rules:
        assert_fired(fault_proxy, rule)
    log = fault_proxy.log
    for index, entry in enumerate(log):
        if entry.injected:  # Kube.modify answers a conflict with a fresh read, not a blind retry of the write
            fresh = log[index + 1]
            assert (fresh.method, fresh.path) == ("GET", entry.path.removesuffix("/status")), fresh


# -- (d) lost replies ----------------------------------------------------------------------------------------------

LOST_REPLIES: dict[str, tuple[str, str, str]] = {
    # id: (method, path fragment, the step before which the fault is injected: its first matching write loses it)
    "record-create": ("POST", "/deploymentrecords", "preflight"),
    "record-status": (
        "PUT",
        f"/deploymentrecords/{WORKFLOW}/status",
        "preflight",
    ),  # the retried write must not add its entry twice
    "bgd-status-take": ("PUT", "/bluegreendeployments/cart/status", "preflight"),
    "bgd-status-intent": ("PUT", "/bluegreendeployments/cart/status", "switch"),
    "adoption-apply": ("PATCH", "/deployments/cart-blue?", "preflight"),
    "deployment-apply": ("PATCH", "/deployments/cart-green?", "deploy-green"),
    "retain-annotate": ("PATCH", "/deployments/cart-blue", "retain"),
    "virtualservice-apply": ("PATCH", "/virtualservices/cart?", "preflight"),
    "virtualservice-update": ("PUT", "/virtualservices/cart", "switch"),
    "event-create": ("POST", "/events", "preflight"),
}


@pytest.mark.parametrize("fault", list(LOST_REPLIES))
def test_lost_replies_converge(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
    fault: str,
) -> None:
    method, path, when = LOST_REPLIES[fault]
    rules: list[FaultRule] = []

    def lose_reply(step: str) -> None:
        if step == when:
            rules.append(fault_proxy.inject(method, path, 500, after_forward=True))

    deploy(sut, tmp_path, before=lose_reply)
    (rule,) = rules
    assert_fired(fault_proxy, rule)
    (hit,) = fault_proxy.injected(rule)
    assert hit.forwarded and hit.path.split("?")[0].endswith(path.rstrip("?")), hit
    assert hit.upstream_status is not None and hit.upstream_status < 300, "the write itself should have happened"
    assert_deployed(sut)


# -- beyond the deadline -------------------------------------------------------------------------------------------


def test_unavailable_api_exits_transient_naming_the_object(
    fault_proxy: FaultProxy,
    service: ServiceUnderTest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = SkippingClock()
    sut = via(fault_proxy, service, deadline_seconds=1.0, clock=clock)
    rule = fault_proxy.inject("GET", bgd_path(sut), 503, times=1_000)
    code = dag_steps(sut, tmp_path)["preflight"]()
    assert code == ExitCode.TRANSIENT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"BlueGreenDeployment {sut.namespace}/cart" in lines[0] and "503" in lines[0], lines[0]
    assert rule.hits >= 2, "the read should have been retried before giving up"
    # It backs off between the attempts, and its pauses never reach past the 1 s deadline.
    assert clock.sleeps and sum(clock.sleeps) < 1.0, clock.sleeps
    assert all(entry.method == "GET" for entry in fault_proxy.log), "nothing may be written"


def test_switch_cut_short_by_persistent_faults_resumes(
    fault_proxy: FaultProxy,
    service: ServiceUnderTest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sut = via(fault_proxy, service, deadline_seconds=1.0)
    steps = dag_steps(sut, tmp_path)
    for name in ("preflight", "deploy-green", "probe", "smoke"):
        assert steps[name]() == 0
    capsys.readouterr()
    rule = fault_proxy.inject("PUT", "/virtualservices/cart", 503, times=1_000)
    assert steps["switch"]() == ExitCode.TRANSIENT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"VirtualService {sut.namespace}/cart" in lines[0], lines
    assert rule.hits >= 2
    # The intent was written before the route was touched; traffic stayed where it was.
    status = sut.status()
    assert (status.phase, status.target_slot, status.active_slot) == (
        spec.Phase.switching,
        spec.Slot.green,
        spec.Slot.blue,
    )
    assert sut.live_slot() is spec.Slot.blue
    # Argo runs the failed step again once the API server is back.
    fault_proxy.clear_faults()
    for name in ("switch", "retain", "cleanup"):
        assert steps[name]() == 0, name
    assert_deployed(sut, rerun=("switch",))
    entries = [(e["step"], e["event"]) for e in sut.record(WORKFLOW)["status"]["entries"]]
    assert entries.count(("switch", "intent")) == 2, "each attempt records its intent"
    assert entries.count(("switch", "switched")) == 1


def test_endless_conflicts_exit_transient(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule = fault_proxy.inject("PUT", "/bluegreendeployments/cart/status", 409, times=1_000)
    assert dag_steps(sut, tmp_path)["preflight"]() == ExitCode.TRANSIENT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"BlueGreenDeployment {sut.namespace}/cart" in lines[0], lines
    assert rule.hits == sut.steps_kube.retry.conflict_attempts


@pytest.mark.parametrize(
    ("step", "method", "path", "object_named"),
    [
        ("preflight", "GET", "/bluegreendeployments/cart", "BlueGreenDeployment {ns}/cart"),
        ("deploy-green", "PATCH", "/deployments/cart-green?", "Deployment {ns}/cart-green"),
    ],
    ids=["read-spec", "apply-deployment"],
)
def test_forbidden_exits_failed_blaming_the_service_account(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    step: str,
    method: str,
    path: str,
    object_named: str,
) -> None:
    steps = dag_steps(sut, tmp_path)
    if step == "deploy-green":
        assert steps["preflight"]() == 0
    capsys.readouterr()
    rule = fault_proxy.inject(method, path, 403, times=1_000)
    assert steps[step]() == ExitCode.FAILED
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert object_named.format(ns=sut.namespace) in lines[0] and "ServiceAccount lacks" in lines[0], lines[0]
    assert rule.hits == 1, "a 403 is not transient and must not be retried"


def test_throttling_never_outlives_the_retry_deadline(
    fault_proxy: FaultProxy,
    service: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    clock = SkippingClock()
    sut = via(fault_proxy, service, deadline_seconds=1.0, clock=clock)
    rule = fault_proxy.inject("GET", bgd_path(sut), 429, times=1_000, retry_after="2")
    code = dag_steps(sut, tmp_path)["preflight"]()
    assert code == ExitCode.TRANSIENT
    assert rule.hits >= 1
    # The server asks for 2 s, past the 1 s deadline: the client gives up rather than wait beyond its deadline.
    assert clock.sleeps == [], f"waited {clock.sleeps} with a 1 s deadline"
    assert sut.steps_kube.requests == len(fault_proxy.log), "every request sent should be counted"


def test_throttled_writes_wait_for_retry_after(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    # A PATCH (server-side apply) is not retried by urllib3, so Kube's own Retry-After handling answers it.
    rule = fault_proxy.inject("PATCH", "/deployments/cart-blue?", 429, times=3, retry_after="1")
    assert dag_steps(sut, tmp_path)["preflight"]() == 0
    assert_fired(fault_proxy, rule)
    log = fault_proxy.log
    gaps = [log[i + 1].at - entry.at for i, entry in enumerate(log) if entry.injected]
    assert all(gap >= 1.0 for gap in gaps), f"retried after {[round(g, 2) for g in gaps]} s, Retry-After was 1 s"


def test_cleanup_decides_again_when_the_slot_changes_under_it(
    fault_proxy: FaultProxy,
    sut: ServiceUnderTest,
    tmp_path: Path,
) -> None:
    """A 409 on the guarded scale-down (a controller wrote status in between) makes cleanup re-read and retry."""
    deploy(sut, tmp_path)
    sut.admin_kube.merge_patch(
        DEPLOYMENTS,
        sut.namespace,
        "cart-blue",
        {"metadata": {"annotations": {spec.RETAIN_UNTIL_ANNOTATION: "2000-01-01T00:00:00Z"}}},
    )
    rule = fault_proxy.inject("PATCH", "/deployments/cart-blue", 409, times=2)
    assert sut.run_cleanup(all_services=True) == 0
    assert_fired(fault_proxy, rule, times=2)
    assert sut.deployment("cart-blue") is None
    assert sut.live_slot() is spec.Slot.green
