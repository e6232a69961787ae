"""The ``service`` router: the application's Service selector gets the slot label.

No mesh and no gateway: kube-proxy (or the CNI) moves new connections to the selected pods as soon as the
EndpointSlices change. Existing connections stay on the old pods until they close, which is why the previous slot is
kept warm during retention.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import SERVICES
from steps.kube import Obj
from steps.routing.base import Router


class ServiceRouter(Router):
    """Flip ``spec.selector[argo-bluegreen.io/slot]`` of the Service."""

    def describe(self) -> str:
        """The routing object."""
        return f"Service {self.namespace}/{self.resource.router_service_name()}"

    def live_slot(self) -> spec.Slot | None:
        """The slot the selector names."""
        selector = self.main_service()["spec"].get("selector") or {}
        value = selector.get(spec.SLOT_LABEL)
        return spec.Slot(value) if value in {s.value for s in spec.Slot} else None

    def point_to(self, slot: spec.Slot) -> bool:
        """One update of the selector, guarded by the resourceVersion that was read."""
        changed = []

        def mutate(service: Obj) -> bool:
            selector = service["spec"].setdefault("selector", {})
            if selector.get(spec.SLOT_LABEL) == slot.value:
                return False
            selector[spec.SLOT_LABEL] = slot.value
            changed.append(True)
            return True

        self.kube.modify(SERVICES, self.namespace, self.resource.router_service_name(), mutate)
        return bool(changed)


__all__ = ["ServiceRouter"]
