"""The istio router on objects a platform team already owns: it changes only this service's destinations.

Each test starts from the catalogue's Helm release and Istio objects, runs adoption, two deploys, a rollback and the
cleanup as the workflow's ServiceAccount, and compares every user-owned object before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, DESTINATION_RULES, PODS, SERVICES, VIRTUAL_SERVICES, ExitCode
from bluegreen_spec import Slot
from steps.kube import labels_selector
from steps.routing.virtual_service_routes import Target
from tests.integration.real_world_catalogue import (
    SLOT_SELECTOR_PATH,
    changed_paths,
    destination_rule,
    install_helm_release,
    multi_route_virtual_service,
    other_service_on_the_pods,
    snapshot,
    subset_virtual_service,
    without_our_destinations,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


def target(sut: ServiceUnderTest, *routes: str) -> Target:
    """What counts as the service under test in a VirtualService."""
    return Target(service=sut.name, namespace=sut.namespace, main_service=sut.name, route_names=routes)


def selected_slots(sut: ServiceUnderTest, service: str) -> set[str]:
    """The slots of the pods a Service's selector matches: where its clients outside the mesh land."""
    selector = sut.admin_kube.must_get(SERVICES, sut.namespace, service)["spec"]["selector"]
    pods = sut.admin_kube.list(PODS, sut.namespace, labels_selector(selector))
    # A Pod being deleted is no endpoint any more, whether or not its graceful stop has ended.
    running = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    return {pod["metadata"]["labels"].get(spec.SLOT_LABEL, "original") for pod in running}


def weights(route: dict[str, Any], namespace: str) -> dict[str, int]:
    """Destination host (first label) to weight."""
    return {str(d["destination"]["host"]).split(".")[0]: int(d.get("weight", 100)) for d in route["route"]}


def test_multi_route_virtual_service_keeps_everything_but_our_destinations(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-istio", traffic={"router": "istio", "istio": {"port": 80}})
    install_helm_release(sut)
    sut.apply(multi_route_virtual_service(sut.namespace), destination_rule())
    owned = ((VIRTUAL_SERVICES, "cart"), (DESTINATION_RULES, "cart"), (SERVICES, "cart"))
    before = snapshot(sut, *owned)

    assert sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False) == "green"  # adopts into blue first
    assert sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2", cleanup=False) == "blue"
    assert sut.run_manual_rollback("wf-rollback", "bad release") == 0
    assert sut.run_cleanup() == 0
    after = snapshot(sut, *owned)

    assert sut.live_slot() is Slot.green
    vs_before, vs_after = before[("VirtualService", "cart")], after[("VirtualService", "cart")]
    mask = target(sut)
    assert changed_paths(without_our_destinations(vs_before, mask), without_our_destinations(vs_after, mask)) == set()
    http = vs_after["spec"]["http"]
    assert [r["name"] for r in http] == ["legacy-v1", "api", "default"]
    assert weights(http[1], sut.namespace) == {"cart-blue": 0, "cart-green": 90, "cart-batch": 10}
    assert http[1]["route"][0]["headers"]["request"] == {"set": {"x-route": "api"}}  # the team's, kept
    assert weights(http[2], sut.namespace) == {"cart-blue": 0, "cart-green": 100}
    assert weights(vs_after["spec"]["tcp"][0], sut.namespace) == {"cart-blue": 0, "cart-green": 100}
    assert {d["destination"]["port"]["number"] for d in vs_after["spec"]["tcp"][0]["route"]} == {9090}

    assert changed_paths(before[("DestinationRule", "cart")], after[("DestinationRule", "cart")]) == set()
    for slot in Slot:
        slot_rule = sut.admin_kube.must_get(DESTINATION_RULES, sut.namespace, f"cart-{slot.value}")
        assert slot_rule["spec"]["trafficPolicy"] == destination_rule()["spec"]["trafficPolicy"]
        assert slot_rule["spec"]["exportTo"] == ["."]

    assert changed_paths(before[("Service", "cart")], after[("Service", "cart")]) <= {SLOT_SELECTOR_PATH}
    assert selected_slots(sut, "cart") == {"green"}, "clients outside the mesh must follow the switch"


def test_named_routes_limit_the_flip(make_service: ServiceFactory, tmp_path: Path) -> None:
    """``spec.traffic.istio.routes`` names the routes to flip; the others keep sending to the pinned Service."""
    sut = make_service("rw-istio", traffic={"router": "istio", "istio": {"routes": ["api"]}})
    install_helm_release(sut)
    sut.apply(multi_route_virtual_service(sut.namespace))
    before = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path)
    after = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")
    assert after["spec"]["http"][2] == before["spec"]["http"][2]
    assert after["spec"]["tcp"] != before["spec"]["tcp"], "a tcp route to the service is flipped in the same update"
    assert weights(after["spec"]["http"][1], sut.namespace) == {"cart-blue": 0, "cart-green": 90, "cart-batch": 10}
    assert selected_slots(sut, "cart") == {"green"}


def test_subset_route_is_refused_before_any_write(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-istio")
    sut.apply(subset_virtual_service())
    before = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path) == ExitCode.BAD_INPUT
    assert sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart") == before
    assert sut.deployment("cart-blue") is None, "nothing may be written before the refusal"
    assert sut.admin_kube.get(SERVICES, sut.namespace, "cart-blue") is None


def test_slot_services_carry_named_ports_and_app_protocol(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-istio", traffic={"router": "istio", "istio": {"port": 80}})
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path)
    for name in ("cart-blue", "cart-green", "cart-preview"):
        ports = sut.admin_kube.must_get(SERVICES, sut.namespace, name)["spec"]["ports"]
        assert [(p["name"], p["targetPort"], p.get("appProtocol")) for p in ports] == [
            ("http", "http", "http"),
            ("metrics", "metrics", "http"),
        ], name
    created = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")["spec"]["http"][0]
    assert created["match"] == [{"port": 80}], "the route for port 80 must not take the metrics port's traffic"


def test_gateway_without_mesh_still_switches_mesh_clients(make_service: ServiceFactory, tmp_path: Path) -> None:
    """With only a gateway bound, mesh traffic bypasses the VirtualService; the pinned Service carries it."""
    sut = make_service(
        "rw-istio",
        traffic={"router": "istio", "istio": {"gateways": ["istio-ingress/public"], "hosts": ["shop.example.com"]}},
    )
    out = tmp_path / "1"
    target_slot, record = sut.preflight(IMAGE_V2, "wf-1", out)
    assert sut.run_deploy_green(IMAGE_V2, target_slot, record) == 0
    sut.prove(target_slot, record)
    assert selected_slots(sut, "cart") == {"blue"}, "before the switch no client path may reach green"
    assert sut.run_switch(target_slot, record) == 0
    assert selected_slots(sut, "cart") == {"green"}, "after the switch no client path may reach blue"
    created = sut.admin_kube.must_get(VIRTUAL_SERVICES, sut.namespace, "cart")["spec"]
    assert created["hosts"] == ["shop.example.com"]
    assert {d["destination"]["host"] for d in created["http"][0]["route"]} == {
        f"cart-{s.value}.{sut.namespace}.svc.cluster.local" for s in Slot
    }


def test_preflight_warns_about_other_services_selecting_slot_pods(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-istio", traffic={"router": "istio", "istio": {"port": 80}})
    install_helm_release(sut)
    sut.apply(other_service_on_the_pods())
    assert sut.run_preflight(IMAGE_V2, "wf-1", out=tmp_path) == 0
    warnings = [e["message"] for e in sut.record("wf-1")["status"]["entries"] if e["event"] == "warning"]
    assert any("Service" in w and "cart-metrics" in w and "both slots" in w for w in warnings), warnings
    assert sut.admin_kube.must_get(DEPLOYMENTS, sut.namespace, "cart-blue")
