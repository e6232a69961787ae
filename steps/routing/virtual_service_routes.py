"""Flipping a user-owned VirtualService: only this service's destinations, only in the routes that carry it.

A platform team's VirtualService holds routes argo-bluegreen has no business with: other backends, matches,
retries, timeouts, mirrors, faults, CORS policies. The steps own exactly one thing in it: inside each route that
carries the service (by default every ``http`` route with a destination for it; or the routes named in
``spec.traffic.istio.routes``, as Argo Rollouts' ``virtualService.routes``), the destinations for the service.
Those become two destinations, one per slot Service, sharing the weight the team gave the service: all of it on the
live slot, none on the other. Everything else, including the order of routes and destinations, is left as found.

``tcp`` and ``tls`` routes that carry the service are flipped in the same update, so no protocol keeps reaching the
previous slot. A route pointing at a subset of the application's Service (other than the subsets ``blue`` and
``green`` of earlier releases) is refused before any write: a slot Service has no such subset.

Istio reference: https://istio.io/latest/docs/reference/config/networking/virtual-service/ (``HTTPRoute``,
``TCPRoute``, ``TLSRoute``, ``HTTPRouteDestination``, ``RouteDestination``; weights of a route's destinations must
add up to 100, and a lone destination without a weight takes all of it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import bluegreen_spec as spec
from steps.errors import BadInput
from steps.routing.slot_services import service_host, service_of_host, slot_service_name

#: The kinds of route a VirtualService holds, in the order Istio evaluates protocols.
ROUTE_KINDS = ("http", "tls", "tcp")

Route = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What counts as this service in a VirtualService, and where its slots are."""

    service: str
    namespace: str
    #: The application's Service, which destinations of a route not yet managed point at.
    main_service: str
    #: http route names to manage; empty means every http route that carries the service.
    route_names: tuple[str, ...] = ()
    #: Response header naming the slot, set on http destinations so the data path can be checked.
    slot_header: str = ""

    def slot_of(self, destination: dict[str, Any]) -> spec.Slot | None:
        """The slot a destination goes to: a slot Service's host, or the ``blue``/``green`` subset of old releases."""
        name = service_of_host(str(destination.get("host", "")), self.namespace)
        for slot in spec.Slot:
            if name == slot_service_name(self.service, slot):
                return slot
        if name == self.main_service and destination.get("subset") in {s.value for s in spec.Slot}:
            return spec.Slot(destination["subset"])
        return None

    def is_ours(self, destination: dict[str, Any]) -> bool:
        """Whether a destination sends traffic to this service, whichever slot or form."""
        name = service_of_host(str(destination.get("host", "")), self.namespace)
        return self.slot_of(destination) is not None or name == self.main_service

    def selected(self, kind: str, route: Route) -> bool:
        """Whether a route is one the steps manage: it carries the service and (for http) is named if names are set."""
        if kind == "http" and self.route_names and route.get("name") not in self.route_names:
            return False
        return any(self.is_ours(item.get("destination") or {}) for item in route.get("route") or [])


def describe_route(kind: str, index: int, route: Route) -> str:
    """``http[2] (name "api")``: how a route is named in messages."""
    name = f' (name "{route["name"]}")' if route.get("name") else ""
    return f"{kind}[{index}]{name}"


def carrying_routes(vs_spec: dict[str, Any], target: Target) -> list[tuple[str, int, Route]]:
    """Every route the steps manage, as (kind, index, route)."""
    return [
        (kind, index, route)
        for kind in ROUTE_KINDS
        for index, route in enumerate(vs_spec.get(kind) or [])
        if target.selected(kind, route)
    ]


def _weight(item: dict[str, Any], alone: bool) -> int:
    if "weight" in item:
        return int(item.get("weight") or 0)
    return 100 if alone else 0


def route_slot(route: Route, target: Target) -> spec.Slot | None:
    """The slot holding all of the service's weight in one route; None when split, zero or not yet per slot."""
    destinations = route.get("route") or []
    weights: dict[spec.Slot | None, int] = {}
    for item in destinations:
        destination = item.get("destination") or {}
        if target.is_ours(destination):
            slot = target.slot_of(destination)
            weights[slot] = weights.get(slot, 0) + _weight(item, len(destinations) == 1)
    holding = [slot for slot, weight in weights.items() if weight > 0]
    if len(holding) == 1 and holding[0] is not None:
        return holding[0]
    return None


def live_slot(vs_spec: dict[str, Any], target: Target) -> spec.Slot | None:
    """The slot every managed route sends the service's traffic to; None when they disagree or none carries it."""
    slots = {route_slot(route, target) for _kind, _index, route in carrying_routes(vs_spec, target)}
    if len(slots) == 1:
        return slots.pop()
    return None


def check_flippable(vs_spec: dict[str, Any], target: Target, where: str) -> None:
    """Refuse, before any write, a VirtualService the steps cannot flip without touching what is not theirs."""
    routes = carrying_routes(vs_spec, target)
    if not routes:
        wanted = (
            f"the http routes named {list(target.route_names)} (spec.traffic.istio.routes)"
            if target.route_names
            else "any http, tcp or tls route"
        )
        raise BadInput(
            f"{where}: no destination for Service {target.main_service} in {wanted}; add a destination with host "
            f"{target.main_service} to the route that should carry it, or fix spec.traffic.istio.routes"
        )
    missing = [name for name in target.route_names if name not in {r.get("name") for r in vs_spec.get("http") or []}]
    if missing:
        raise BadInput(
            f"{where}: spec.traffic.istio.routes names {missing}, which are not http routes of it; "
            "fix the names or add the routes"
        )
    for kind, index, route in routes:
        for item in route.get("route") or []:
            destination = item.get("destination") or {}
            subset = destination.get("subset")
            if target.is_ours(destination) and subset and target.slot_of(destination) is None:
                raise BadInput(
                    f"{where}: {describe_route(kind, index, route)} sends to subset {subset!r} of Service "
                    f"{target.main_service}; slot Services have no subsets: route to the Service without a subset"
                )


def _slot_destination(template: dict[str, Any], slot: spec.Slot, weight: int, kind: str, target: Target) -> Any:
    item = copy.deepcopy(template)
    destination = item.setdefault("destination", {})
    destination["host"] = service_host(slot_service_name(target.service, slot), target.namespace)
    destination.pop("subset", None)
    item["weight"] = weight
    if kind == "http" and target.slot_header:
        headers = item.setdefault("headers", {})
        response = headers.setdefault("response", {})
        response.setdefault("set", {})[target.slot_header] = slot.value
    return item


def flip_route(route: Route, kind: str, slot: spec.Slot, target: Target) -> Route:
    """The route with the service's destinations replaced by the two slot destinations; the rest untouched."""
    destinations = route.get("route") or []
    ours = [item for item in destinations if target.is_ours(item.get("destination") or {})]
    total = sum(_weight(item, len(destinations) == 1) for item in ours)
    # The template keeps the team's port and per-destination headers; the live slot's own destination is preferred.
    template = next((item for item in ours if target.slot_of(item.get("destination") or {}) is slot), ours[0])
    flipped: list[Any] = []
    for item in destinations:
        if not target.is_ours(item.get("destination") or {}):
            flipped.append(item)
        elif not any(target.is_ours(f.get("destination") or {}) for f in flipped):
            flipped.extend(_slot_destination(template, s, total if s is slot else 0, kind, target) for s in spec.Slot)
    changed = dict(route)
    changed["route"] = flipped
    return changed


def flip(vs_spec: dict[str, Any], slot: spec.Slot, target: Target) -> dict[str, Any]:
    """A copy of the VirtualService spec with every managed route sending all of the service's weight to ``slot``."""
    result = copy.deepcopy(vs_spec)
    for kind in ROUTE_KINDS:
        routes = result.get(kind)
        if not routes:
            continue
        result[kind] = [
            flip_route(route, kind, slot, target) if target.selected(kind, route) else route for route in routes
        ]
    return result


__all__ = [
    "ROUTE_KINDS",
    "Target",
    "carrying_routes",
    "check_flippable",
    "describe_route",
    "flip",
    "flip_route",
    "live_slot",
    "route_slot",
]
