"""The smaller promises of the steps, checked on the real API server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import NETWORK_POLICIES, VIRTUAL_SERVICES, WEBHOOK_URL_ENV
from tests.integration.service_helpers import IMAGE_V2, ServiceFactory, ServiceUnderTest, demo_app
from tests.steps.http_servers import RecordingWebhook

pytestmark = pytest.mark.controlplane


def deploy(sut: ServiceUnderTest, run: int, out: Path) -> str:
    """Deploy the demo app ``v<run + 2>`` as workflow ``wf-<run>``; returns the workflow."""
    workflow = f"wf-{run}"
    sut.deploy(demo_app(f"v{run + 2}"), workflow, out, cleanup=False)
    return workflow


def test_records_are_bounded_by_history_limit_and_listed_newest_first(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("detail", historyLimit=2)
    for run in range(4):
        deploy(sut, run, tmp_path / str(run))
    assert sorted(r["metadata"]["name"] for r in sut.records()) == ["wf-2", "wf-3"]
    capsys.readouterr()
    assert sut.step("history", sut.name) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["RECORD", "STARTED", "IMAGE"]
    assert [line.split()[0] for line in table[1:]] == ["wf-3", "wf-2"]
    assert "Succeeded" in table[1]
    assert sut.step("status", sut.name) == 0
    status = dict(line.split("  ", 1) for line in capsys.readouterr().out.splitlines())
    assert status["live slot (route)"].strip() == "blue"  # four deploys: green, blue, green, blue
    assert status["active image"].strip() == demo_app("v5")
    assert status["phase"].strip() == "Succeeded"


def test_preflight_warns_about_missing_zero_downtime_settings(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("detail")
    deployment = sut.deployment("cart")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container.pop("readinessProbe")
    container.pop("lifecycle")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    deployment.pop("status", None)
    for field in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"):
        deployment["metadata"].pop(field, None)
    sut.apply(deployment)
    sut.wait_settled()
    assert sut.run_preflight(IMAGE_V2, "wf-w", out=tmp_path) == 0
    warnings = [e["message"] for e in sut.record("wf-w")["status"]["entries"] if e["event"] == "warning"]
    assert any("no readinessProbe" in w for w in warnings)
    assert any("no preStop hook" in w for w in warnings)
    assert any("terminationGracePeriodSeconds 2 is shorter" in w for w in warnings)
    assert any("no PodDisruptionBudget" in w for w in warnings)


def test_slots_are_isolated_and_routes_name_their_slot(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("detail")
    deploy(sut, 0, tmp_path)
    policy = sut.admin_kube.must_get(NETWORK_POLICIES, sut.namespace, "cart-green-isolation")
    assert policy["spec"]["podSelector"]["matchLabels"] == {spec.SERVICE_LABEL: "cart", spec.SLOT_LABEL: "green"}
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"key": spec.SLOT_LABEL, "operator": "NotIn", "values": ["blue"]} in [
        e for p in peers for e in p.get("podSelector", {}).get("matchExpressions", [])
    ]
    route = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")["spec"]["http"][0]
    host = f"{{}}.{sut.namespace}.svc.cluster.local".format
    headers = {d["destination"]["host"]: d["headers"]["response"]["set"]["x-bluegreen-slot"] for d in route["route"]}
    weights = {d["destination"]["host"]: d["weight"] for d in route["route"]}
    assert headers == {host("cart-blue"): "blue", host("cart-green"): "green"}
    assert weights == {host("cart-blue"): 0, host("cart-green"): 100}


def test_isolation_can_be_turned_off(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("detail", traffic={"router": "istio", "isolateSlots": False})
    deploy(sut, 0, tmp_path)
    assert sut.admin_kube.get(NETWORK_POLICIES, sut.namespace, "cart-green-isolation") is None


def test_switch_waits_for_istio_to_report_the_route_reconciled(make_service: ServiceFactory, tmp_path: Path) -> None:
    """Where istiod reports distribution, the switch ends only once the new generation is Reconciled."""
    sut = make_service("detail")
    deploy(sut, 0, tmp_path / "0")
    # From now on "istiod" reports status, and confirms each new generation after a while.
    stop = threading.Event()
    live = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")
    sut.admin_kube.merge_patch(
        VIRTUAL_SERVICES,
        sut.namespace,
        "cart",
        {
            "status": {
                "observedGeneration": live["metadata"]["generation"],
                "conditions": [{"type": "Reconciled", "status": "True", "message": "2/2 proxies"}],
            }
        },
        "status",
    )
    confirmed: list[float] = []

    def istiod() -> None:
        seen = live["metadata"]["generation"]
        while not stop.is_set():
            current = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")
            generation = current["metadata"]["generation"]
            if generation != seen:
                stop.wait(0.8)  # propagation takes time
                sut.admin_kube.merge_patch(
                    VIRTUAL_SERVICES,
                    sut.namespace,
                    "cart",
                    {
                        "status": {
                            "observedGeneration": generation,
                            "conditions": [{"type": "Reconciled", "status": "True", "message": "2/2 proxies"}],
                        }
                    },
                    "status",
                )
                confirmed.append(time.monotonic())
                seen = generation
            stop.wait(0.05)

    thread = threading.Thread(target=istiod)
    thread.start()
    try:
        out = tmp_path / "1"
        assert sut.run_preflight(IMAGE_V2, "wf-r", out=out) == 0
        assert sut.run_deploy_green(IMAGE_V2, spec.Slot.blue, "wf-r") == 0
        sut.prove(spec.Slot.blue, "wf-r")
        assert sut.run_switch(spec.Slot.blue, "wf-r") == 0
        switched_at = time.monotonic()
    finally:
        stop.set()
        thread.join(10)
    assert confirmed and switched_at >= confirmed[0], "switch ended before istiod confirmed the route"
    entry = next(e for e in sut.record("wf-r")["status"]["entries"] if e["event"] == "switched")
    assert "Reconciled=True" in entry["details"]["propagation"]


def test_stage_messages_and_summary_reach_the_webhook(
    make_service: ServiceFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingWebhook() as webhook:
        monkeypatch.setenv(WEBHOOK_URL_ENV, webhook.url)
        sut = make_service(
            "detail",
            notifications={
                "webhook": {"enabled": True},
                "slack": {"enabled": False},
                "stages": ["started", "switched", "succeeded"],
            },
        )
        workflow = deploy(sut, 0, tmp_path)
        assert sut.run_notify(workflow, status="Succeeded") == 0
        events = [body["event"] for body in webhook.bodies()]
    assert events == ["started", "switched", "succeeded", "summary"]
    deliveries = [
        e for e in sut.record(workflow)["status"]["entries"] if e["event"] in {"stage-notification", "delivery"}
    ]
    assert len(deliveries) == 4 and all(e["details"]["delivered"] == "true" for e in deliveries)
