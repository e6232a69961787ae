"""The ``gateway-api`` router: an HTTPRoute's backendRefs for this service flipped between the two slot Services.

A route the steps create holds one rule with one backendRef per slot Service. In a route the team owns, only the
backendRefs naming this service change, inside the rules that carry it (see :mod:`steps.routing.http_route_backends`),
in one update guarded by the resourceVersion. The application's Service is pinned to the live slot, so clients that
call it directly follow the switch too (see :mod:`steps.routing.slot_services`).

After each write the step reads the route's ``status.parents[].conditions``: where a Gateway controller reports
``Accepted`` and ``ResolvedRefs`` for the new generation, a refusal fails the step naming the parent and the reason;
where none reports within the wait, the step says so in the record.

Gateway API reference: https://gateway-api.sigs.k8s.io/reference/spec/#httproute and the traffic-splitting guide
https://gateway-api.sigs.k8s.io/guides/traffic-splitting/.
"""

from __future__ import annotations

import time

import bluegreen_spec as spec
from bluegreen_contract import HTTP_ROUTES
from steps.errors import BadInput, CheckFailed
from steps.kube import Obj
from steps.routing import http_route_backends as backends
from steps.routing.base import SLOT_HEADER, Router
from steps.routing.slot_services import ensure_slot_services, pin_main_service, slot_service_name

#: How long a write waits for the Gateway's verdict on the new generation, where a controller reports one.
GATEWAY_VERDICT_SECONDS = 30.0


class GatewayApiRouter(Router):
    """HTTPRoute backendRef weights over one Service per slot."""

    KIND = spec.RouterKind.gateway_api
    ROUTE_KINDS = (HTTP_ROUTES,)
    INSTALL_HINT = (
        "install the Gateway API CRDs (v1.0 or newer serves HTTPRoute at v1) and an implementation with a Gateway"
    )

    def named_port(self) -> int | None:
        """``spec.traffic.gatewayApi.port``."""
        return self.resource.spec.traffic.gateway_api.port

    def describe(self) -> str:
        """The routing object."""
        return f"HTTPRoute {self.namespace}/{self.resource.http_route_name()}"

    def slot_service_name(self, slot: spec.Slot) -> str:
        """The Service selecting one slot's pods."""
        return slot_service_name(self.service, slot)

    def backends(self) -> backends.Backends:
        """What counts as this service among a route's backendRefs."""
        return backends.Backends(
            service=self.service,
            namespace=self.namespace,
            main_service=self.resource.router_service_name(),
            slot_header=SLOT_HEADER,
        )

    def _route(self) -> Obj | None:
        return self.kube.get(HTTP_ROUTES, self.namespace, self.resource.http_route_name())

    def live_slot(self) -> spec.Slot | None:
        """The slot every rule carrying the service sends it to."""
        route = self._route()
        return None if route is None else backends.live_slot(route.get("spec") or {}, self.backends())

    def _created_route(self, slot: spec.Slot, port: int) -> Obj:
        gateway = self.resource.spec.traffic.gateway_api
        rule = backends.flip_rule(
            {"backendRefs": [{"name": self.resource.router_service_name(), "port": port}]}, slot, self.backends()
        )
        body: Obj = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": self.resource.http_route_name(),
                "namespace": self.namespace,
                "labels": {spec.SERVICE_LABEL: self.service},
            },
            "spec": {
                "parentRefs": [p.model_dump(by_alias=True, exclude_none=True) for p in gateway.parent_refs],
                "rules": [rule],
            },
        }
        if gateway.hostnames:
            body["spec"]["hostnames"] = list(gateway.hostnames)
        return body

    def check(self) -> None:
        """The HTTPRoute kind is served; a route the team owns carries the service, a created one has a Gateway."""
        super().check()
        self._checked(self._route())

    def _checked(self, existing: Obj | None) -> int:
        """The port a created route sends to (0 for an existing route), after refusing what cannot be flipped."""
        wanted = self.backends()
        port = 0
        if existing is None:
            if not self.resource.spec.traffic.gateway_api.parent_refs:
                raise BadInput(
                    f"{self.describe()} does not exist and spec.traffic.gatewayApi.parentRefs is empty; "
                    "name the Gateway to attach to, or create the HTTPRoute"
                )
            port = self.routed_port()
        elif not backends.carrying_rules(existing.get("spec") or {}, wanted):
            raise BadInput(
                f"{self.describe()} has no rule with a backendRef to Service {self.resource.router_service_name()}; "
                "add one to the rule that should carry it"
            )
        return port

    def point_to(self, slot: spec.Slot) -> bool:
        """Check, then slot Services, then the route in one update, then the Gateway's verdict, then the pin."""
        main = self.main_service()
        existing = self._route()
        wanted = self.backends()
        port = self._checked(existing)
        ensure_slot_services(self.kube, main, self.service)
        changed: list[bool] = []
        if existing is None:
            written = self.kube.apply(HTTP_ROUTES, self.namespace, self._created_route(slot, port))
            changed.append(True)
        else:

            def mutate(route: Obj) -> bool:
                current = route.get("spec") or {}
                flipped = backends.flip(current, slot, wanted)
                if flipped == current:
                    return False
                route["spec"] = flipped
                changed.append(True)
                return True

            written = self.kube.modify(HTTP_ROUTES, self.namespace, self.resource.http_route_name(), mutate)
        self.gateway_verdict(written)
        pinned = pin_main_service(self.kube, self.namespace, self.resource.router_service_name(), slot)
        return bool(changed) or pinned

    def gateway_verdict(self, route: Obj) -> str:
        """Wait for the Gateway's Accepted/ResolvedRefs on this generation where one reports; fail on a refusal."""
        if not (route.get("status") or {}).get("parents"):
            return "no Gateway controller reports status on this route"
        deadline = time.monotonic() + GATEWAY_VERDICT_SECONDS
        while True:
            problems = backends.refusals(route)
            if problems:
                raise CheckFailed(
                    f"{self.describe()} generation {route['metadata'].get('generation')} is refused: "
                    f"{'; '.join(problems)}; fix what the Gateway names (the route was written, traffic may not "
                    "follow it), then run the step again"
                )
            if backends.reported(route):
                return "every Gateway accepted the route and resolved its backends"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(
                    f"{self.describe()}: no Gateway reported Accepted and ResolvedRefs for generation "
                    f"{route['metadata'].get('generation')} within {GATEWAY_VERDICT_SECONDS:.0f} s; check the "
                    "Gateway controller, then run the step again"
                )
            for _type, _obj in self.kube.watch(
                HTTP_ROUTES,
                self.namespace,
                name=route["metadata"]["name"],
                resource_version=route["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(remaining)),
            ):
                break
            route = self.kube.must_get(HTTP_ROUTES, self.namespace, route["metadata"]["name"])

    def verify(self, slot: spec.Slot) -> None:
        """The rules and the application Service's pin both lead to ``slot``."""
        super().verify(slot)
        self.verify_pinned(slot)


__all__ = ["GatewayApiRouter"]
