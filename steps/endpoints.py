"""Wait until a Service sends new requests only to one slot's pods, as far as the API can tell.

Changing a Service's selector is not the same as moving its traffic: the endpoints controller rewrites the
Service's EndpointSlices some time later, and kube-proxy (or the CNI) programs the node from those. On a loaded
cluster that takes seconds, and a probe or smoke test sent through a just-retargeted preview reaches the pods it
selected before: the live version, which passes, instead of the new one. So every step that points a Service at a
slot and then relies on it waits here first, until the Service's ready endpoints are that slot's pods and only those
(https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/). What the node does after the slices change
has no API; kube-proxy follows them within its sync period.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import bluegreen_spec as spec
from bluegreen_contract import ENDPOINT_SLICES, PODS
from steps.errors import CheckFailed
from steps.kube import Kube, Obj

#: The label the endpoints controller puts on every EndpointSlice of a Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
POLL_SECONDS = 0.1


def ready_endpoints(endpoint_slices: list[Obj]) -> dict[str, str]:
    """Pod name -> address, for the endpoints a Service's slices offer new requests to.

    An endpoint without a ``ready`` condition counts as ready, as kube-proxy counts it.
    """
    offered: dict[str, str] = {}
    for endpoint_slice in endpoint_slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True) is False:
                continue
            addresses = [str(address) for address in endpoint.get("addresses") or []]
            pod = str((endpoint.get("targetRef") or {}).get("name") or ",".join(addresses))
            offered[pod] = addresses[0] if addresses else ""
    return offered


def ready_pods(endpoint_slices: list[Obj]) -> set[str]:
    """The pods a Service's slices offer new requests to."""
    return set(ready_endpoints(endpoint_slices))


def current_slot_pods(kube: Kube, namespace: str, service: str, slot: spec.Slot) -> set[str]:
    """The pods of ``slot`` that are Ready and not on their way out: the version the slot runs now.

    Told apart by labels and state rather than by name: the old pods of a slot just updated share its name prefix
    while they drain, and a long service name's pods have that prefix cut short.
    """
    selector = f"{spec.SERVICE_LABEL}={service},{spec.SLOT_LABEL}={slot.value}"
    current = set()
    for pod in kube.list(PODS, namespace, label_selector=selector):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            current.add(str(pod["metadata"]["name"]))
    return current


def slot_pod_host(kube: Kube, namespace: str, service_name: str, service: str, slot: spec.Slot) -> str:
    """A current pod of ``slot`` among Service ``service_name``'s ready endpoints, as a URL host (IPv6 bracketed).

    Checks that must reach the new version call its pod by this address rather than through the Service's virtual
    IP, which the node may still send to the pods the Service selected before (see the module's docstring).
    """
    selector = f"{SERVICE_NAME_LABEL}={service_name}"
    offered = ready_endpoints(kube.list(ENDPOINT_SLICES, namespace, label_selector=selector))
    current = current_slot_pods(kube, namespace, service, slot)
    for pod, address in sorted(offered.items()):
        if pod in current and address:
            return f"[{address}]" if ":" in address else address
    raise CheckFailed(
        f"Service {namespace}/{service_name} offers no ready pod of slot {slot.value} "
        f"(it offers {', '.join(sorted(offered)) or 'none'}); run deploy-green again, which points it there and waits"
    )


def only_slot(offered: set[str], current: set[str]) -> bool:
    """Whether the Service offers some pods, and only ``current`` ones (see :func:`current_slot_pods`)."""
    return bool(offered) and offered <= current


def wait_serving_slot(
    kube: Kube,
    namespace: str,
    service_name: str,
    service: str,
    slot: spec.Slot,
    timeout_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Return once Service ``service_name`` offers only ``slot``'s pods; raise :class:`CheckFailed` at the deadline.

    Returns how long it waited, for the step's log.
    """
    began = clock()
    deadline = began + timeout_seconds
    selector = f"{SERVICE_NAME_LABEL}={service_name}"
    while True:
        pods = ready_pods(kube.list(ENDPOINT_SLICES, namespace, label_selector=selector))
        if only_slot(pods, current_slot_pods(kube, namespace, service, slot)):
            return f"endpoints are {slot.value}'s {len(pods)} pods after {clock() - began:.2f} s"
        if clock() > deadline:
            offered = ", ".join(sorted(pods)) or "no ready pod"
            raise CheckFailed(
                f"Service {namespace}/{service_name} still offers {offered} {timeout_seconds:.0f} s after it was "
                f"pointed at slot {slot.value}; check the endpoints controller (kube-controller-manager), then run "
                "the step again"
            )
        # Bounded poll: EndpointSlices of one Service come and go by name, so a list is the one complete view.
        sleep(POLL_SECONDS)


__all__ = ["only_slot", "ready_pods", "wait_serving_slot"]
