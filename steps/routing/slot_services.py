"""Per-slot Services and the pinned main Service: the in-cluster paths that must follow the switch.

Every router sends its traffic to ``<svc>-blue`` or ``<svc>-green``, one Service per slot, and pins the
application's own Service to the live slot by adding the slot label to its selector. Clients that bypass the mesh or
the gateway (ingress controllers, namespaces without sidecar injection, NodePort and LoadBalancer traffic) use the
application's Service; pinned, it never reaches the idle slot before the switch nor the previous slot after it.
This is host-level routing as Argo Rollouts does it for Istio with its canary and stable Services.

Only the slot label of the application's Service selector is ours: every other selector label, port and field the
team wrote stays as it is.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import SERVICES
from steps.kube import Kube, Obj
from steps.slots import selecting_service

#: The cluster DNS suffix Services are reachable under, in Istio's and the Gateway API's host names.
CLUSTER_DOMAIN = "svc.cluster.local"


def slot_service_name(service: str, slot: spec.Slot) -> str:
    """The Service selecting only one slot's pods: ``<service>-<slot>``."""
    return f"{service}-{slot.value}"


def service_host(name: str, namespace: str) -> str:
    """The fully qualified in-cluster host of a Service."""
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def service_of_host(host: str, namespace: str) -> str | None:
    """The Service a host names in ``namespace``, as Istio resolves a short name against the route's namespace.

    ``cart``, ``cart.apps``, ``cart.apps.svc`` and ``cart.apps.svc.<cluster domain>`` all name Service ``cart`` of
    namespace ``apps``; a host in another namespace or outside the cluster names none.
    """
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0]
    if parts[1] != namespace:
        return None
    if len(parts) == 2 or parts[2] == "svc":
        return parts[0]
    return None


def ensure_slot_services(kube: Kube, main_service: Obj, service: str) -> None:
    """Both slot Services exist, with the application Service's ports (named, appProtocol) and one slot each."""
    namespace = main_service["metadata"]["namespace"]
    for slot in spec.Slot:
        body = selecting_service(
            main_service,
            slot_service_name(service, slot),
            {spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot.value},
            {spec.SLOT_LABEL: slot.value},
        )
        kube.apply(SERVICES, namespace, body)


def pinned_slot(main_service: Obj) -> spec.Slot | None:
    """The slot the application's Service selector is pinned to; None when it selects both."""
    value = (main_service["spec"].get("selector") or {}).get(spec.SLOT_LABEL)
    return spec.Slot(value) if value in {s.value for s in spec.Slot} else None


def pin_main_service(kube: Kube, namespace: str, name: str, slot: spec.Slot) -> bool:
    """Add (or move) the slot label in the Service's selector, in one guarded update; False if already there."""
    changed: list[bool] = []

    def mutate(service: Obj) -> bool:
        selector = service["spec"].setdefault("selector", {})
        if selector.get(spec.SLOT_LABEL) == slot.value:
            return False
        selector[spec.SLOT_LABEL] = slot.value
        changed.append(True)
        return True

    kube.modify(SERVICES, namespace, name, mutate)
    return bool(changed)


__all__ = [
    "CLUSTER_DOMAIN",
    "ensure_slot_services",
    "pin_main_service",
    "pinned_slot",
    "service_host",
    "service_of_host",
    "slot_service_name",
]
