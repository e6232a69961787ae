"""The ``istio`` router: VirtualService destinations flipped between the two slot Services in one update.

Destinations go to the per-slot Services ``<svc>-blue`` and ``<svc>-green`` (host-level routing, as Argo Rollouts
does for Istio), and the application's Service is pinned to the live slot, so clients outside the mesh follow the
switch too (see :mod:`steps.routing.slot_services`). In a VirtualService the team owns, only this service's
destinations inside the routes that carry it change (see :mod:`steps.routing.virtual_service_routes`); a
VirtualService the steps create themselves holds one route named ``argo-bluegreen``.

The DestinationRule the team wrote for the application's host (other subsets, ``trafficPolicy``, ``exportTo``) is
never written. Its ``trafficPolicy`` and ``exportTo`` are carried over to one DestinationRule per slot Service,
which the steps own, so connection pools, outlier detection and TLS settings still apply to the slots; these exist
(and, where istiod reports ``Reconciled``, are distributed) before any route names their hosts.

The flip is one update of one object, so Envoy never sees a half-switched route from us. Each http destination sets
a response header naming its slot. When istiod reports config distribution (``Reconciled``), the switch waits for it.

Istio reference: https://istio.io/latest/docs/reference/config/networking/virtual-service/,
https://istio.io/latest/docs/reference/config/networking/destination-rule/ and
https://istio.io/latest/docs/reference/config/config-status/.
"""

from __future__ import annotations

import time

import bluegreen_spec as spec
from bluegreen_contract import DESTINATION_RULES, VIRTUAL_SERVICES, ApiResource
from steps.errors import CheckFailed
from steps.kube import Obj
from steps.routing import virtual_service_routes as routes
from steps.routing.base import SLOT_HEADER, Router
from steps.routing.slot_services import (
    ensure_slot_services,
    pin_main_service,
    service_host,
    service_of_host,
    slot_service_name,
)

ROUTE_NAME = "argo-bluegreen"
#: How long the switch waits for istiod to distribute the slot DestinationRules before naming their hosts.
DESTINATION_RULE_RECONCILE_SECONDS = 30.0


class IstioRouter(Router):
    """VirtualService destinations over one Service per slot."""

    KIND = spec.RouterKind.istio
    ROUTE_KINDS = (VIRTUAL_SERVICES, DESTINATION_RULES)
    INSTALL_HINT = "install Istio's CRDs (Istio 1.22 or newer serves networking.istio.io/v1)"

    def named_port(self) -> int | None:
        """``spec.traffic.istio.port``."""
        return self.resource.spec.traffic.istio.port

    def describe(self) -> str:
        """The routing object."""
        return f"VirtualService {self.namespace}/{self.resource.virtual_service_name()}"

    def host(self) -> str:
        """The application Service's in-cluster host: what a VirtualService the steps create answers for by default."""
        return service_host(self.resource.router_service_name(), self.namespace)

    def client_hosts(self) -> list[str]:
        """Hosts clients call, for a VirtualService the steps create; may be external names on a gateway."""
        istio = self.resource.spec.traffic.istio
        hosts = [*istio.hosts, *([istio.host] if istio.host else [])]
        return list(dict.fromkeys(hosts)) or [self.host()]

    def target(self) -> routes.Target:
        """What counts as this service in a VirtualService."""
        return routes.Target(
            service=self.service,
            namespace=self.namespace,
            main_service=self.resource.router_service_name(),
            route_names=tuple(self.resource.spec.traffic.istio.routes),
            slot_header=SLOT_HEADER,
        )

    def _virtual_service(self) -> Obj | None:
        return self.kube.get(VIRTUAL_SERVICES, self.namespace, self.resource.virtual_service_name())

    def live_slot(self) -> spec.Slot | None:
        """The slot every managed route sends the service's traffic to."""
        virtual_service = self._virtual_service()
        if virtual_service is None:
            return None
        return routes.live_slot(virtual_service.get("spec") or {}, self.target())

    # -- the slot DestinationRules --------------------------------------------------------------------------------

    def teams_destination_rule(self) -> Obj | None:
        """The team's DestinationRule for the application's host, if it has one; never written by the steps."""
        found = self.kube.get(DESTINATION_RULES, self.namespace, self.resource.destination_rule_name())
        if found is None or (found["metadata"].get("labels") or {}).get(spec.SERVICE_LABEL) == self.service:
            return None
        host = str(found["spec"].get("host", ""))
        if service_of_host(host, self.namespace) != self.resource.router_service_name():
            return None
        return found

    def _ensure_slot_destination_rules(self, istiod_reports: bool) -> None:
        teams = self.teams_destination_rule()
        for slot in spec.Slot:
            name = slot_service_name(self.service, slot)
            body: Obj = {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {spec.SERVICE_LABEL: self.service, spec.SLOT_LABEL: slot.value},
                },
                "spec": {"host": service_host(name, self.namespace)},
            }
            if teams is not None:
                for field in ("trafficPolicy", "exportTo"):
                    if field in teams["spec"]:
                        body["spec"][field] = teams["spec"][field]
            live = self.kube.get(DESTINATION_RULES, self.namespace, name)
            if live is None or live.get("spec") != body["spec"]:
                applied = self.kube.apply(DESTINATION_RULES, self.namespace, body)
                self.log("destination-rule-applied", name=name)
                self._wait_reconciled(
                    DESTINATION_RULES, applied, DESTINATION_RULE_RECONCILE_SECONDS, istiod_reports=istiod_reports
                )

    # -- the flip ---------------------------------------------------------------------------------------------------

    def _created_virtual_service(self, slot: spec.Slot, port: int) -> Obj:
        istio = self.resource.spec.traffic.istio
        route: Obj = {
            "name": ROUTE_NAME,
            "route": [
                {
                    "destination": {
                        "host": service_host(slot_service_name(self.service, s), self.namespace),
                        "port": {"number": port},
                    },
                    "weight": 100 if s is slot else 0,
                    "headers": {"response": {"set": {SLOT_HEADER: s.value}}},
                }
                for s in spec.Slot
            ],
        }
        ports = self.main_service()["spec"].get("ports") or []
        if len(ports) > 1 and (not istio.gateways or "mesh" in istio.gateways):
            # Without a match, the route would also take the Service's other ports and send them to this one.
            route["match"] = [{"port": port}]
        body: Obj = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "name": self.resource.virtual_service_name(),
                "namespace": self.namespace,
                "labels": {spec.SERVICE_LABEL: self.service},
            },
            "spec": {"hosts": self.client_hosts(), "http": [route]},
        }
        if istio.gateways:
            body["spec"]["gateways"] = list(istio.gateways)
        return body

    def check(self) -> None:
        """Istio's kinds are served, and a VirtualService the team owns carries the service in a flippable route."""
        super().check()
        existing = self._virtual_service()
        if existing is not None:
            routes.check_flippable(existing.get("spec") or {}, self.target(), self.describe())

    def point_to(self, slot: spec.Slot) -> bool:
        """Check, then slot Services and DestinationRules, then the routes in one update, then pin the Service."""
        main = self.main_service()
        existing = self._virtual_service()
        target = self.target()
        if existing is not None:
            routes.check_flippable(existing.get("spec") or {}, target, self.describe())
        port = self.routed_port() if existing is None else 0
        ensure_slot_services(self.kube, main, self.service)
        # A new object has no status yet; whether istiod reports one is read from the VirtualService.
        istiod_reports = existing is not None and any(
            c.get("type") == "Reconciled" for c in (existing.get("status") or {}).get("conditions") or []
        )
        self._ensure_slot_destination_rules(istiod_reports)
        changed: list[bool] = []
        if existing is None:
            self.kube.apply(VIRTUAL_SERVICES, self.namespace, self._created_virtual_service(slot, port))
            changed.append(True)
        else:

            def mutate(virtual_service: Obj) -> bool:
                current = virtual_service.get("spec") or {}
                routes.check_flippable(current, target, self.describe())
                wanted = routes.flip(current, slot, target)
                if wanted == current:
                    return False
                virtual_service["spec"] = wanted
                changed.append(True)
                return True

            self.kube.modify(VIRTUAL_SERVICES, self.namespace, self.resource.virtual_service_name(), mutate)
        pinned = pin_main_service(self.kube, self.namespace, self.resource.router_service_name(), slot)
        return bool(changed) or pinned

    def verify(self, slot: spec.Slot) -> None:
        """The routes and the application Service's pin both lead to ``slot``."""
        super().verify(slot)
        self.verify_pinned(slot)

    def wait_propagated(self, slot: spec.Slot, timeout_seconds: float) -> str:
        """Wait for istiod's ``Reconciled`` condition for this generation, where istiod reports it."""
        live = self.kube.must_get(VIRTUAL_SERVICES, self.namespace, self.resource.virtual_service_name())
        return self._wait_reconciled(VIRTUAL_SERVICES, live, timeout_seconds)

    def _wait_reconciled(
        self, resource: ApiResource, live: Obj, timeout_seconds: float, *, istiod_reports: bool = False
    ) -> str:
        name = live["metadata"]["name"]
        deadline = time.monotonic() + timeout_seconds
        while True:
            conditions = {c.get("type"): c for c in (live.get("status") or {}).get("conditions") or []}
            reconciled = conditions.get("Reconciled")
            if reconciled is None and not istiod_reports:
                return "istiod does not report config distribution (enable PILOT_ENABLE_STATUS to wait on it)"
            observed = (live.get("status") or {}).get("observedGeneration")
            current = str(observed) == str(live["metadata"].get("generation"))
            if reconciled is not None and reconciled.get("status") == "True" and current:
                return "istiod reports the route distributed to every proxy (Reconciled=True)"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(
                    f"{resource.kind} {self.namespace}/{name} not Reconciled within {timeout_seconds:.0f} s "
                    f"({(reconciled or {}).get('message', 'no status yet')}); check istiod, then run the step again"
                )
            for _type, _obj in self.kube.watch(
                resource,
                self.namespace,
                name=name,
                resource_version=live["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(remaining)),
            ):
                break  # any change: re-read and re-evaluate
            live = self.kube.must_get(resource, self.namespace, name)


__all__ = ["ROUTE_NAME", "IstioRouter"]
