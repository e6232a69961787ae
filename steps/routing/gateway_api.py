"""The ``gateway-api`` router: an HTTPRoute whose two backendRefs, one Service per slot, swap weights.

Gateway API reference: https://gateway-api.sigs.k8s.io/reference/spec/#httproute and the traffic-splitting guide
https://gateway-api.sigs.k8s.io/guides/traffic-splitting/.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import HTTP_ROUTES, SERVICES
from steps.errors import BadInput
from steps.kube import Obj
from steps.routing.base import SLOT_HEADER, Router, weighted_slot
from steps.slots import selecting_service


class GatewayApiRouter(Router):
    """HTTPRoute backendRef weights over one Service per slot."""

    def describe(self) -> str:
        """The routing object."""
        return f"HTTPRoute {self.namespace}/{self.resource.http_route_name()}"

    def slot_service_name(self, slot: spec.Slot) -> str:
        """The Service selecting one slot's pods."""
        return f"{self.service}-{slot.value}"

    def _ensure_slot_services(self) -> None:
        main = self.main_service()
        for slot in spec.Slot:
            body = selecting_service(
                main,
                self.slot_service_name(slot),
                {spec.SERVICE_LABEL: self.service, spec.SLOT_LABEL: slot.value},
                {spec.SLOT_LABEL: slot.value},
            )
            self.kube.apply(SERVICES, self.namespace, body)

    def _rule(self, slot: spec.Slot, port: int) -> Obj:
        return {
            "backendRefs": [
                {
                    "name": self.slot_service_name(s),
                    "port": port,
                    "weight": 1 if s is slot else 0,
                    "filters": [
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"set": [{"name": SLOT_HEADER, "value": s.value}]},
                        }
                    ],
                }
                for s in spec.Slot
            ]
        }

    def live_slot(self) -> spec.Slot | None:
        """The slot Service holding all the weight of the first rule."""
        route = self.kube.get(HTTP_ROUTES, self.namespace, self.resource.http_route_name())
        if route is None or not route["spec"].get("rules"):
            return None
        names = {self.slot_service_name(s): s.value for s in spec.Slot}
        weights = {
            names.get(ref.get("name"), ref.get("name")): ref.get("weight", 1)
            for ref in route["spec"]["rules"][0].get("backendRefs") or []
        }
        return weighted_slot(weights)

    def point_to(self, slot: spec.Slot) -> bool:
        """Slot Services first, then the route in one server-side apply."""
        gateway = self.resource.spec.traffic.gateway_api
        if not gateway.parent_refs:
            raise BadInput(
                f"{self.describe()}: spec.traffic.gatewayApi.parentRefs is empty; name the Gateway to attach to"
            )
        if self.live_slot() is slot:
            return False
        self._ensure_slot_services()
        port = self.service_port(gateway.port)
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
                "rules": [self._rule(slot, port)],
            },
        }
        if gateway.hostnames:
            body["spec"]["hostnames"] = list(gateway.hostnames)
        self.kube.apply(HTTP_ROUTES, self.namespace, body)
        return True


__all__ = ["GatewayApiRouter"]
