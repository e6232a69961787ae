"""The ``service`` router: the application's Service selector gets the slot label.

No mesh and no gateway: kube-proxy (or the CNI) moves new connections to the selected pods as soon as the
EndpointSlices change. Existing connections stay on the old pods until they close, which is why the previous slot is
kept warm during retention. Only the slot label of the selector is ours; every other label stays as the team wrote it.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import SERVICES
from steps import endpoints
from steps.routing.base import Router
from steps.routing.slot_services import pin_main_service, pinned_slot


class ServiceRouter(Router):
    """Flip ``spec.selector[argo-bluegreen.io/slot]`` of the Service."""

    KIND = spec.RouterKind.service
    # A core kind: every cluster serves it, so there is nothing to install.
    ROUTE_KINDS = (SERVICES,)

    def describe(self) -> str:
        """The routing object."""
        return f"Service {self.namespace}/{self.resource.router_service_name()}"

    def live_slot(self) -> spec.Slot | None:
        """The slot the selector names."""
        return pinned_slot(self.main_service())

    def point_to(self, slot: spec.Slot) -> bool:
        """One update of the selector, guarded by the resourceVersion that was read."""
        return pin_main_service(self.kube, self.namespace, self.resource.router_service_name(), slot)

    def check_address(self, slot: spec.Slot, service_port: int, container_port: int) -> str:
        """A current pod of ``slot`` that the preview offers, by its own address and container port.

        This router keeps no Service per slot, and the preview's virtual IP may still lead to the slot it selected
        before for as long as the node takes to follow its EndpointSlices.
        """
        preview = self.resource.preview_service_name()
        return f"{endpoints.slot_pod_host(self.kube, self.namespace, preview, self.service, slot)}:{container_port}"

    def wait_propagated(self, slot: spec.Slot, timeout_seconds: float) -> str:
        """Wait until the Service's EndpointSlices offer only ``slot``'s pods, which kube-proxy then follows."""
        return endpoints.wait_serving_slot(
            self.kube, self.namespace, self.resource.router_service_name(), self.service, slot, timeout_seconds
        )


__all__ = ["ServiceRouter"]
