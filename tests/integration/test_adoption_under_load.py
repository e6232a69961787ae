"""Adoption of an existing Deployment and Service while requests flow, observed through the live route."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from tests.integration.dataplane import EmulatedDataPlane, LoadReport, run_load
from tests.integration.service_helpers import IMAGE_V2, ServiceFactory

pytestmark = pytest.mark.controlplane

#: The demo app's container port, which the load reaches on each Pod's own address.
APP_PORT = 8080
#: The Deployments that serve in turn: the team's original, then the blue slot, then green after the switch.
PHASES = ("cart", "cart-blue", "cart-green")
#: Requests each of them must have answered, so every hand-over happened under load rather than between requests.
MIN_REQUESTS_PER_PHASE = 10


@pytest.mark.parametrize("router", ["istio", "service", "gateway-api"])
def test_adoption_and_first_deploy_drop_no_request(
    make_service: ServiceFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    router: str,
) -> None:
    sut = make_service("adopt", router=router)
    # The slots' Pods are real processes that take a while to become Ready: routing early would fail requests.
    plane = EmulatedDataPlane(sut.admin_kube, sut.namespace, sut.name, router, APP_PORT)
    report = LoadReport()
    stop = threading.Event()
    load = threading.Thread(target=run_load, args=(plane, stop, report))
    load.start()
    try:
        out = tmp_path / "out"
        assert sut.run_preflight(IMAGE_V2, "wf-1", out=out) == 0
        adopted_at = report.sent
        assert sut.run_deploy_green(IMAGE_V2, spec.Slot.green, "wf-1") == 0
        sut.prove(spec.Slot.green, "wf-1")
        assert sut.run_switch(spec.Slot.green, "wf-1") == 0
        assert sut.run_retain("wf-1") == 0
        sut.wait_settled()
        settled = report.sent
        while report.sent < settled + 20 and load.is_alive():
            stop.wait(0.01)  # a few more requests after the switch, so the final route is exercised too
    finally:
        stop.set()
        load.join(30)
    with capsys.disabled():
        print(
            f"\nadoption + deploy under load ({router}): {report.sent} requests, {len(report.failed)} failed, "
            f"served by {report.served_by}"
        )
    assert report.failed == []
    assert adopted_at > 0
    # Each phase carried real load: the original before adoption, blue between adoption and switch, green after.
    assert all(report.served_by.get(d, 0) >= MIN_REQUESTS_PER_PHASE for d in PHASES), report.served_by
    original = sut.deployment("cart")
    assert original is not None and original["spec"]["replicas"] == 0


@pytest.mark.parametrize("router", ["istio", "gateway-api"])
def test_the_observer_counts_the_failures_of_a_cleanup_that_deletes_the_live_slot(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], router: str
) -> None:
    """The mutant for the routers proven through the observer: it must see requests fail, or its zeros mean nothing."""
    sut = make_service("mutant", router=router)
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path / "out") == 0
    assert sut.run_deploy_green(IMAGE_V2, spec.Slot.green, "wf-1") == 0
    sut.prove(spec.Slot.green, "wf-1")
    assert sut.run_switch(spec.Slot.green, "wf-1") == 0
    sut.wait_settled()
    plane = EmulatedDataPlane(sut.admin_kube, sut.namespace, sut.name, router, APP_PORT)
    report = LoadReport()
    stop = threading.Event()
    load = threading.Thread(target=run_load, args=(plane, stop, report, 60))
    load.start()
    try:
        while report.sent < 20 and load.is_alive():
            stop.wait(0.01)
        assert report.failed == [], "the live slot served before the mutant struck"
        sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart-green")
        while not report.failed and load.is_alive():
            stop.wait(0.05)  # bounded by run_load's own deadline
    finally:
        stop.set()
        load.join(30)
    with capsys.disabled():
        print(f"\nmutant, live slot deleted ({router}): {report.sent} requests, {len(report.failed)} failed")
    assert report.failed, "deleting the live slot must fail requests the observer counts"
