"""The ``istio`` router: one DestinationRule subset per slot, and VirtualService weights flipped 100/0 -> 0/100.

The flip is one update of one object, so Envoy never sees a half-switched route from us. Each route destination sets
a response header naming its slot, so the data path can be checked without changing the application. When istiod
reports config distribution (``Reconciled`` condition on the VirtualService), the switch waits for it; otherwise the
data plane is not observable from the API and the step says so in the record.

Istio reference: https://istio.io/latest/docs/reference/config/networking/virtual-service/ and
https://istio.io/latest/docs/reference/config/config-status/.
"""

from __future__ import annotations

import time
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import DESTINATION_RULES, VIRTUAL_SERVICES
from steps.errors import CheckFailed
from steps.kube import Obj
from steps.routing.base import SLOT_HEADER, Router, weighted_slot

ROUTE_NAME = "argo-bluegreen"


class IstioRouter(Router):
    """VirtualService weights over DestinationRule subsets."""

    def describe(self) -> str:
        """The routing object."""
        return f"VirtualService {self.namespace}/{self.resource.virtual_service_name()}"

    def host(self) -> str:
        """The host both objects apply to."""
        return self.resource.spec.traffic.istio.host or (
            f"{self.resource.router_service_name()}.{self.namespace}.svc.cluster.local"
        )

    def _destination(self, slot: spec.Slot, weight: int, port: int) -> Obj:
        return {
            "destination": {"host": self.host(), "subset": slot.value, "port": {"number": port}},
            "weight": weight,
            "headers": {"response": {"set": {SLOT_HEADER: slot.value}}},
        }

    def _route(self, slot: spec.Slot, port: int) -> Obj:
        return {"name": ROUTE_NAME, "route": [self._destination(s, 100 if s is slot else 0, port) for s in spec.Slot]}

    def _ensure_destination_rule(self) -> None:
        name = self.resource.destination_rule_name()
        body = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {spec.SERVICE_LABEL: self.service}},
            "spec": {
                "host": self.host(),
                "subsets": [{"name": s.value, "labels": {spec.SLOT_LABEL: s.value}} for s in spec.Slot],
            },
        }
        live = self.kube.get(DESTINATION_RULES, self.namespace, name)
        if live is None or {s["name"]: s.get("labels") for s in live["spec"].get("subsets") or []} != {
            s.value: {spec.SLOT_LABEL: s.value} for s in spec.Slot
        }:
            self.kube.apply(DESTINATION_RULES, self.namespace, body)
            self.log("destination-rule-applied", name=name)

    def _our_route(self, virtual_service: Obj) -> dict[str, Any] | None:
        for route in virtual_service.get("spec", {}).get("http") or []:
            if route.get("name") == ROUTE_NAME:
                return dict(route)
        return None

    def live_slot(self) -> spec.Slot | None:
        """The subset holding all the weight of our route."""
        virtual_service = self.kube.get(VIRTUAL_SERVICES, self.namespace, self.resource.virtual_service_name())
        if virtual_service is None:
            return None
        route = self._our_route(virtual_service)
        if route is None:
            return None
        weights = {r["destination"].get("subset"): r.get("weight", 0) for r in route.get("route") or []}
        if len(weights) == 1:
            only = next(iter(weights))
            return spec.Slot(only) if only in {s.value for s in spec.Slot} else None
        return weighted_slot(weights)

    def point_to(self, slot: spec.Slot) -> bool:
        """Subsets first (so the route never names a missing subset), then the weights in one update."""
        self._ensure_destination_rule()
        port = self.service_port(self.resource.spec.traffic.istio.port)
        name = self.resource.virtual_service_name()
        if self.kube.get(VIRTUAL_SERVICES, self.namespace, name) is None:
            body: Obj = {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": name, "namespace": self.namespace, "labels": {spec.SERVICE_LABEL: self.service}},
                "spec": {"hosts": [self.host()], "http": [self._route(slot, port)]},
            }
            if self.resource.spec.traffic.istio.gateways:
                body["spec"]["gateways"] = list(self.resource.spec.traffic.istio.gateways)
            self.kube.apply(VIRTUAL_SERVICES, self.namespace, body)
            return True
        changed = []

        def mutate(virtual_service: Obj) -> bool:
            routes = virtual_service["spec"].setdefault("http", [])
            wanted = self._route(slot, port)
            for index, route in enumerate(routes):
                if route.get("name") == ROUTE_NAME:
                    if route == wanted:
                        return False
                    routes[index] = wanted
                    break
            else:
                routes.insert(0, wanted)
            changed.append(True)
            return True

        self.kube.modify(VIRTUAL_SERVICES, self.namespace, name, mutate)
        return bool(changed)

    def wait_propagated(self, slot: spec.Slot, timeout_seconds: float) -> str:
        """Wait for istiod's ``Reconciled`` condition for this generation, where istiod reports it."""
        name = self.resource.virtual_service_name()
        deadline = time.monotonic() + timeout_seconds
        while True:
            live = self.kube.must_get(VIRTUAL_SERVICES, self.namespace, name)
            conditions = {c.get("type"): c for c in (live.get("status") or {}).get("conditions") or []}
            reconciled = conditions.get("Reconciled")
            if reconciled is None:
                return "istiod does not report config distribution (enable PILOT_ENABLE_STATUS to wait on it)"
            observed = (live.get("status") or {}).get("observedGeneration")
            if reconciled.get("status") == "True" and str(observed) == str(live["metadata"].get("generation")):
                return "istiod reports the route distributed to every proxy (Reconciled=True)"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(
                    f"VirtualService {self.namespace}/{name} not Reconciled within {timeout_seconds:.0f} s "
                    f"({reconciled.get('message', '')}); check istiod, then run the step again"
                )
            for _type, _obj in self.kube.watch(
                VIRTUAL_SERVICES,
                self.namespace,
                name=name,
                resource_version=live["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(remaining)),
            ):
                break  # any change: re-read and re-evaluate


__all__ = ["IstioRouter"]
