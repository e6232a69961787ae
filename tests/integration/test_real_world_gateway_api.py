"""The gateway-api router on objects a platform team already owns; the service router has its own file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen_contract import HTTP_ROUTES, SERVICES, ExitCode
from bluegreen_spec import Slot
from steps.routing.http_route_backends import Backends
from tests.integration.real_world_catalogue import (
    SLOT_SELECTOR_PATH,
    changed_paths,
    install_helm_release,
    multi_rule_http_route,
    snapshot,
    without_our_backends,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory

pytestmark = pytest.mark.controlplane


def test_multi_rule_http_route_keeps_everything_but_our_backend_refs(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-gw", router="gateway-api")
    install_helm_release(sut)
    sut.apply(multi_rule_http_route())
    owned = ((HTTP_ROUTES, "cart"), (SERVICES, "cart"))
    before = snapshot(sut, *owned)

    assert sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1", cleanup=False) == "green"
    assert sut.live_slot() is Slot.green, "the live slot is read from the rules that carry the service"
    assert sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2", cleanup=False) == "blue"
    assert sut.run_manual_rollback("wf-rollback") == 0
    assert sut.run_cleanup() == 0
    after = snapshot(sut, *owned)

    assert sut.live_slot() is Slot.green
    mask = Backends(service="cart", namespace=sut.namespace, main_service="cart")
    route_before, route_after = before[("HTTPRoute", "cart")], after[("HTTPRoute", "cart")]
    assert changed_paths(without_our_backends(route_before, mask), without_our_backends(route_after, mask)) == set()
    rules = route_after["spec"]["rules"]
    assert rules[0] == route_before["spec"]["rules"][0], "the /static rule is not ours"
    api = {ref["name"]: ref for ref in rules[1]["backendRefs"]}
    assert {name: ref["weight"] for name, ref in api.items()} == {"cart-blue": 0, "cart-green": 9, "cart-batch": 1}
    green_filters = api["cart-green"]["filters"]
    assert green_filters == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "remove": ["x-internal"],
                "set": [{"name": "x-bluegreen-slot", "value": "green"}],
            },
        }
    ]
    assert route_after["spec"]["parentRefs"][0]["sectionName"] == "https"
    assert changed_paths(before[("Service", "cart")], after[("Service", "cart")]) <= {SLOT_SELECTOR_PATH}


def test_a_route_the_gateway_refuses_fails_the_switch_by_name(
    make_service: ServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sut = make_service("rw-gw", router="gateway-api")
    sut.apply(multi_rule_http_route())
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
    sut.prove(target, record)
    route = sut.admin_kube.must_get(HTTP_ROUTES, sut.namespace, "cart")
    # The Gateway's verdict on the generation the switch is about to write: the green Service cannot be resolved.
    next_generation = route["metadata"]["generation"] + 1
    parent = {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
    sut.admin_kube.merge_patch(
        HTTP_ROUTES,
        sut.namespace,
        "cart",
        {
            "status": {
                "parents": [
                    {
                        "parentRef": parent,
                        "controllerName": "example.com/gateway",
                        "conditions": [
                            _condition("Accepted", "True", "Accepted", next_generation),
                            _condition("ResolvedRefs", "False", "BackendNotFound", next_generation),
                        ],
                    }
                ]
            }
        },
        "status",
    )
    capsys.readouterr()
    assert sut.run_switch(target, record) == ExitCode.FAILED
    error = capsys.readouterr().err
    assert f"HTTPRoute {sut.namespace}/cart generation {next_generation} is refused" in error
    assert "Gateway gateway-system/public section https: ResolvedRefs=False (BackendNotFound" in error


def _condition(kind: str, status: str, reason: str, generation: int) -> dict[str, object]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": f"{reason} (test gateway)",
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
