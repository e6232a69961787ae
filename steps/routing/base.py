"""What every router does: tell which slot is live by reading the route itself, and move it in one update."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import bluegreen_spec as spec
from bluegreen_contract import SERVICES, ApiResource
from steps.errors import ApiError, BadInput, CheckFailed
from steps.kube import Kube, Obj
from steps.log import StepLog
from steps.routing.slot_services import pinned_slot, service_host, slot_service_name

#: How long a move of traffic waits for the data plane to follow the route, where the router can tell.
PROPAGATION_TIMEOUT_SECONDS = 60.0

#: Response header each route sets, so the data path can be checked without changing the application.
SLOT_HEADER = "x-bluegreen-slot"


class Router(abc.ABC):
    """A service's traffic switch."""

    #: The ``spec.traffic.router`` this class implements.
    KIND: ClassVar[spec.RouterKind]
    #: The API kinds that hold this router's routes: preflight refuses a cluster that does not serve them before any
    #: write, and a cleanup sweep reads each of them once per namespace.
    ROUTE_KINDS: ClassVar[tuple[ApiResource, ...]]
    #: What to install on a cluster that does not serve :attr:`ROUTE_KINDS`.
    INSTALL_HINT: ClassVar[str] = ""

    def __init__(self, resource: spec.BlueGreenDeployment, kube: Kube, namespace: str, log: StepLog) -> None:
        self.resource = resource
        self.kube = kube
        self.namespace = namespace
        self.log = log

    @property
    def service(self) -> str:
        """The service name."""
        return self.resource.service

    def main_service(self) -> Obj:
        """The application's Service; it must exist before anything is routed."""
        found = self.kube.get(SERVICES, self.namespace, self.resource.router_service_name())
        if found is None:
            raise BadInput(
                f"Service {self.namespace}/{self.resource.router_service_name()} does not exist; "
                "create the application's Service first (or set spec.traffic.service.name)"
            )
        return found

    def service_port(self, wanted: int | None) -> int:
        """The Service port routes send to: the one the spec names, or the Service's only port."""
        ports = [int(p["port"]) for p in self.main_service()["spec"].get("ports") or []]
        if wanted is not None:
            if wanted not in ports:
                raise BadInput(
                    f"Service {self.namespace}/{self.resource.router_service_name()} has no port "
                    f"{wanted} (it has {ports}); fix spec.traffic port"
                )
            return wanted
        if len(ports) != 1:
            raise BadInput(
                f"Service {self.namespace}/{self.resource.router_service_name()} has ports {ports}; "
                "name the one to route in spec.traffic"
            )
        return ports[0]

    def named_port(self) -> int | None:
        """The Service port this router's part of spec.traffic names, if it has one."""
        return None

    def routed_port(self) -> int:
        """The Service port the router sends users to: the one spec.traffic names, or the Service's only port."""
        return self.service_port(self.named_port())

    def check(self) -> None:
        """Refuse, before any write, a route the router could not flip without touching what is not ours.

        First of all the cluster must serve the kinds the routes live in. Without this the first run of a service
        would adopt its Deployment, wait for the blue slot, and only then fail at the first write of a route object;
        and reading a route of a kind the server lacks looks just like reading one that does not exist yet.
        """
        self.check_apis()

    def check_apis(self) -> None:
        """Refuse a cluster whose API discovery does not list every one of :attr:`ROUTE_KINDS`."""
        served: dict[tuple[str, str], set[str] | None] = {}
        missing = []
        for kind in self.ROUTE_KINDS:
            if not kind.group:
                continue  # the core API is part of every cluster
            key = (kind.group, kind.version)
            if key not in served:
                try:
                    served[key] = self.kube.discover(kind.group, kind.version)
                except ApiError as error:
                    if error.status != 403:
                        raise
                    raise ApiError(
                        f"BlueGreenDeployment {self.namespace}/{self.service} sets spec.traffic.router: "
                        f"{self.KIND.value}, and whether the cluster serves {kind.group}/{kind.version} cannot be "
                        f"checked: {error}",
                        error.status,
                        error.reason,
                    ) from None
            if kind.plural not in (served[key] or set()):
                missing.append(f"{kind.plural}.{kind.group}/{kind.version}")
        if not missing:
            return
        # The router that needs nothing beyond Kubernetes is offered first.
        others = sorted((k.value for k in spec.RouterKind if k is not self.KIND), key=lambda v: v != "service")
        raise BadInput(
            f"BlueGreenDeployment {self.namespace}/{self.service} sets spec.traffic.router: {self.KIND.value}, but "
            f"the API server does not serve {', '.join(missing)}; {self.INSTALL_HINT}, or choose "
            f"spec.traffic.router: {' or '.join(others)}; nothing was written"
        )

    @abc.abstractmethod
    def live_slot(self) -> spec.Slot | None:
        """The slot that receives all traffic, read from the route; None when no route exists yet."""

    @abc.abstractmethod
    def point_to(self, slot: spec.Slot) -> bool:
        """Send all traffic to ``slot`` in one update, creating route objects if absent; False if it already was."""

    def verify(self, slot: spec.Slot) -> None:
        """Read the route back and fail unless all traffic goes to ``slot``."""
        live = self.live_slot()
        if live is not slot:
            raise CheckFailed(
                f"{self.describe()} for {self.service} routes to {live.value if live else 'nothing'} after the "
                f"switch to {slot.value}; another writer may own it: check its managedFields and run the step again"
            )

    def verify_pinned(self, slot: spec.Slot) -> None:
        """Fail unless the application's Service selects only ``slot``'s pods (clients outside the route)."""
        pinned = pinned_slot(self.main_service())
        if pinned is not slot:
            raise CheckFailed(
                f"Service {self.namespace}/{self.resource.router_service_name()} selects "
                f"{pinned.value if pinned else 'both slots'} after the switch to {slot.value}; another writer may "
                "own its selector: check its managedFields and run the step again"
            )

    def wait_propagated(self, slot: spec.Slot, timeout_seconds: float) -> str:
        """Wait until the data plane has the route where the router can tell; returns how it knows."""
        return "not reported by this router"

    def check_address(self, slot: spec.Slot, service_port: int, container_port: int) -> str:
        """``host:port`` where probes and smoke tests reach ``slot``'s pods and nothing else.

        This router keeps a Service per slot (``<svc>-<slot>``) whose selector never changes, so its address can
        never lead to the other slot, and a mesh sidecar routes a call to it by name, with mTLS, as any other.
        """
        return f"{service_host(slot_service_name(self.service, slot), self.namespace)}:{service_port}"

    @abc.abstractmethod
    def describe(self) -> str:
        """The object holding the route, such as ``VirtualService apps/cart``, for messages."""


def weighted_slot(weights: dict[str, Any]) -> spec.Slot | None:
    """The slot holding all the weight, or None when the weights are split or absent."""
    full = [slot for slot, weight in weights.items() if int(weight or 0) > 0]
    if len(full) == 1 and full[0] in {s.value for s in spec.Slot}:
        return spec.Slot(full[0])
    return None


__all__ = ["PROPAGATION_TIMEOUT_SECONDS", "SLOT_HEADER", "Router", "weighted_slot"]
