"""Adoption of an existing Deployment and Service while requests flow, observed through the live route."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import bluegreen_spec as spec
from testenv.stand_in import DeploymentStandIn
from tests.integration.dataplane import EmulatedDataPlane, LoadReport, run_load
from tests.integration.service_helpers import IMAGE_V2, ServiceFactory
from tests.steps.http_servers import AppServer, Reply

pytestmark = pytest.mark.controlplane


@pytest.fixture
def backends() -> Iterator[dict[str, str]]:
    """One local HTTP server per Deployment that can serve: the original and both slots."""
    with ExitStack() as stack:
        urls = {}
        for name in ("cart", "cart-blue", "cart-green"):
            server = stack.enter_context(AppServer())
            server.route("/", Reply(200, name))
            urls[name] = server.url
        yield urls


@pytest.mark.parametrize("router", ["istio", "service", "gateway-api"])
def test_adoption_and_first_deploy_drop_no_request(
    make_service: ServiceFactory,
    deployment_stand_in: DeploymentStandIn,
    backends: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    router: str,
) -> None:
    sut = make_service("adopt", router=router)
    # New pods take a while to become Ready, as real ones do: routing early would show as failed requests.
    for name in ("cart-blue", "cart-green"):
        deployment_stand_in.behave(sut.namespace, name, "available", delay_seconds=1.0)
    plane = EmulatedDataPlane(sut.admin_kube, sut.namespace, sut.name, router, backends)
    report = LoadReport()
    stop = threading.Event()
    load = threading.Thread(target=run_load, args=(plane, stop, report))
    load.start()
    try:
        out = tmp_path / "out"
        assert sut.run_preflight(IMAGE_V2, "wf-1", out=out) == 0
        adopted_at = report.sent
        assert sut.run_deploy_green(IMAGE_V2, spec.Slot.green, "wf-1") == 0
        assert sut.run_switch(spec.Slot.green, "wf-1") == 0
        assert sut.run_retain("wf-1") == 0
        sut.stand_in.wait_idle()
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
    assert adopted_at > 0 and report.sent > 100
    assert {"cart", "cart-blue", "cart-green"} <= report.served_by.keys()
    original = sut.deployment("cart")
    assert original is not None and original["spec"]["replicas"] == 0
