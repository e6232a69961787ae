"""Route rewriting keeps every field it does not own, over generated VirtualServices and HTTPRoutes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bluegreen_spec import Slot
from steps.routing import http_route_backends as backends
from steps.routing import virtual_service_routes as routes

NS = "apps"
TARGET = routes.Target(service="cart", namespace=NS, main_service="cart", slot_header="x-bluegreen-slot")
BACKENDS = backends.Backends(service="cart", namespace=NS, main_service="cart", slot_header="x-bluegreen-slot")

hosts = st.sampled_from(
    ["cart", f"cart.{NS}", f"cart.{NS}.svc.cluster.local", "cart-legacy", "cart.other.svc.cluster.local", "search"]
)
opaque = st.dictionaries(
    st.sampled_from(["retries", "timeout", "mirror", "fault", "corsPolicy", "match", "headers", "rewrite"]),
    st.recursive(st.integers() | st.text(max_size=5), lambda inner: st.lists(inner, max_size=2), max_leaves=4),
    max_size=4,
)


@st.composite
def destination(draw: st.DrawFn, http: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"destination": {"host": draw(hosts)}}
    if draw(st.booleans()):
        item["destination"]["port"] = {"number": draw(st.sampled_from([80, 9090]))}
    if draw(st.booleans()):
        item["weight"] = draw(st.integers(0, 100))
    if http and draw(st.booleans()):
        item["headers"] = {"request": {"set": {"x-team": draw(st.text(max_size=4))}}}
    return item


@st.composite
def route(draw: st.DrawFn, http: bool) -> dict[str, Any]:
    body: dict[str, Any] = dict(draw(opaque)) if http else {}
    if http and draw(st.booleans()):
        body["name"] = draw(st.sampled_from(["api", "default", "legacy", "static"]))
    body["route"] = draw(st.lists(destination(http), min_size=1, max_size=4))
    return body


virtual_services = st.fixed_dictionaries(
    {
        "hosts": st.just(["cart", "shop.example.com"]),
        "http": st.lists(route(True), max_size=4),
        "tcp": st.lists(route(False), max_size=2),
        "tls": st.lists(route(False), max_size=2),
    },
    optional={"gateways": st.just(["mesh", "istio-ingress/public"])},
)


def masked(vs_spec: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(vs_spec)
    for kind in routes.ROUTE_KINDS:
        for item in result.get(kind) or []:
            item["route"] = [d for d in item["route"] if not TARGET.is_ours(d["destination"])]
    return result


@settings(max_examples=300, deadline=None)
@given(virtual_services, st.sampled_from(list(Slot)), st.lists(st.sampled_from(list(Slot)), max_size=3))
def test_flipping_a_virtual_service_changes_only_our_destinations(
    vs_spec: dict[str, Any], slot: Slot, earlier: list[Slot]
) -> None:
    start = copy.deepcopy(vs_spec)
    current = vs_spec
    for previous in earlier:
        current = routes.flip(current, previous, TARGET)
    flipped = routes.flip(current, slot, TARGET)
    assert vs_spec == start, "flip must not change its input"
    assert masked(flipped) == masked(start)
    assert routes.flip(flipped, slot, TARGET) == flipped, "flipping again to the same slot changes nothing"
    for kind in routes.ROUTE_KINDS:
        for before, after in zip(start.get(kind) or [], flipped.get(kind) or [], strict=True):
            if not TARGET.selected(kind, before):
                assert after == before
                continue
            ours = [d for d in after["route"] if TARGET.is_ours(d["destination"])]
            assert [TARGET.slot_of(d["destination"]) for d in ours] == list(Slot)
            assert all(d["weight"] == 0 for d in ours if TARGET.slot_of(d["destination"]) is not slot)
            alone = len(before["route"]) == 1
            given_weight = sum(
                d.get("weight", 100 if alone else 0) for d in before["route"] if TARGET.is_ours(d["destination"])
            )
            assert sum(d["weight"] for d in ours) == given_weight, "the team's share of the weight is kept"
            if given_weight:
                assert routes.route_slot(after, TARGET) is slot


backend_refs = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["cart", "static-assets", "cart-batch"]), "port": st.just(80)},
        optional={
            "weight": st.integers(0, 10),
            "namespace": st.sampled_from([NS, "other"]),
            "filters": st.just([{"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x"]}}]),
        },
    ),
    min_size=1,
    max_size=4,
)
http_routes = st.fixed_dictionaries(
    {
        "parentRefs": st.just([{"name": "public", "sectionName": "https"}]),
        "rules": st.lists(
            st.fixed_dictionaries(
                {"backendRefs": backend_refs},
                optional={
                    "matches": st.just([{"path": {"type": "PathPrefix", "value": "/api"}}]),
                    "timeouts": st.just({"request": "10s"}),
                    "filters": st.just(
                        [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["y"]}}]
                    ),
                },
            ),
            max_size=4,
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(http_routes, st.sampled_from(list(Slot)))
def test_flipping_an_http_route_changes_only_our_backend_refs(route_spec: dict[str, Any], slot: Slot) -> None:
    flipped = backends.flip(route_spec, slot, BACKENDS)

    def without_ours(spec_: dict[str, Any]) -> dict[str, Any]:
        result = copy.deepcopy(spec_)
        for rule in result["rules"]:
            rule["backendRefs"] = [r for r in rule["backendRefs"] if not BACKENDS.is_ours(r)]
        return result

    assert without_ours(flipped) == without_ours(route_spec)
    assert backends.flip(flipped, slot, BACKENDS) == flipped
    for before, after in zip(route_spec["rules"], flipped["rules"], strict=True):
        total = sum(r.get("weight", 1) for r in before["backendRefs"] if BACKENDS.is_ours(r))
        if total:
            assert backends.rule_slot(after, BACKENDS) is slot
