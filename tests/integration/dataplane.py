"""An observer for zero-downtime claims: route each request as the data plane would, from live API state.

No Envoy or gateway runs here, so no packet follows a VirtualService or an HTTPRoute, and a Service's ClusterIP follows
kube-proxy's rules, which lag the API by design. This observer takes the route from the API instead: for every request
it reads the routing objects and Pods *at that moment* (the Service selector; the VirtualService weights over the
slot Services; or the HTTPRoute backends), picks a Ready Pod the way endpoints would, and sends the request to that
Pod's own address, where the node agent runs the real app. A request fails when the route selects no Ready Pod or
the Pod does not answer 200.

What it proves: at no instant does the API state route traffic to a set without Ready Pods, and every Pod it routes to
serves. What it cannot see: propagation delay (kube-proxy, istiod to Envoy); that is bounded by preStop,
terminationGracePeriodSeconds and retention, which preflight checks for.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx

from bluegreen_contract import HTTP_ROUTES, PODS, SERVICES, VIRTUAL_SERVICES
from steps.kube import Kube, Obj, labels_selector
from steps.routing.istio import ROUTE_NAME


@dataclass
class LoadReport:
    """What the load saw."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)


class EmulatedDataPlane:
    """Resolves one service's route from the API for each request."""

    def __init__(self, kube: Kube, namespace: str, service: str, router: str, port: int) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.router = router
        self.port = port
        self._turn = itertools.count()

    def _selector(self) -> dict[str, str]:
        main = self.kube.must_get(SERVICES, self.namespace, self.service)
        selector = dict(main["spec"].get("selector") or {})
        if self.router == "istio":
            virtual_service = self.kube.get(VIRTUAL_SERVICES, self.namespace, self.service)
            routes = [
                r for r in (virtual_service or {}).get("spec", {}).get("http") or [] if r.get("name") == ROUTE_NAME
            ]
            if routes:
                # Host-level routing: the destination holding the weight names a slot Service.
                hosts = [d["destination"]["host"] for d in routes[0]["route"] if int(d.get("weight", 0)) > 0]
                backend = self.kube.must_get(SERVICES, self.namespace, hosts[0].split(".")[0])
                selector = dict(backend["spec"]["selector"])
        elif self.router == "gateway-api":
            route = self.kube.get(HTTP_ROUTES, self.namespace, self.service)
            if route is not None:
                refs = [r for r in route["spec"]["rules"][0]["backendRefs"] if int(r.get("weight", 1)) > 0]
                backend = self.kube.must_get(SERVICES, self.namespace, refs[0]["name"])
                selector = dict(backend["spec"]["selector"])
        return selector

    def ready_pods(self) -> list[Obj]:
        """Pods the route selects that are Ready and not terminating."""
        pods = self.kube.list(PODS, self.namespace, labels_selector(self._selector()))
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]

    def request(self, client: httpx.Client) -> str:
        """One request through the route; returns the Deployment that served it, or raises with why it failed."""
        pods = self.ready_pods()
        if not pods:
            raise RuntimeError(f"no Ready pod behind the route (selector {self._selector()})")
        pod = pods[next(self._turn) % len(pods)]
        owner = owning_deployment(pod)
        response = client.get(f"http://{pod['status']['podIP']}:{self.port}/")
        if response.status_code != 200:
            raise RuntimeError(f"{owner} ({pod['metadata']['name']}) answered {response.status_code}")
        return owner


def owning_deployment(pod: Obj) -> str:
    """The Deployment behind a Pod: its ReplicaSet owner's name without the ``-<pod-template-hash>`` suffix."""
    [owner] = [o for o in pod["metadata"].get("ownerReferences") or [] if o.get("kind") == "ReplicaSet"]
    return str(owner["name"]).removesuffix("-" + pod["metadata"]["labels"]["pod-template-hash"])


def run_load(plane: EmulatedDataPlane, stop: threading.Event, report: LoadReport, max_seconds: float = 120) -> None:
    """Send requests back to back until ``stop`` is set (or ``max_seconds`` pass)."""
    deadline = time.monotonic() + max_seconds
    with httpx.Client(timeout=5) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            report.sent += 1
            try:
                owner = plane.request(client)
            except Exception as error:  # every failure is what the test counts
                report.failed.append(str(error))
                continue
            report.served_by[owner] = report.served_by.get(owner, 0) + 1


__all__ = ["EmulatedDataPlane", "LoadReport", "run_load"]
