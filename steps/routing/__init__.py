"""Traffic routers: each points a service's live traffic at one slot in a single API update."""

from __future__ import annotations

import bluegreen_spec as spec
from steps.kube import Kube
from steps.log import StepLog
from steps.routing.base import Router
from steps.routing.gateway_api import GatewayApiRouter
from steps.routing.istio import IstioRouter
from steps.routing.service import ServiceRouter


def router_for(resource: spec.BlueGreenDeployment, kube: Kube, namespace: str, log: StepLog) -> Router:
    """The router the spec asks for."""
    kinds: dict[spec.RouterKind, type[Router]] = {
        spec.RouterKind.istio: IstioRouter,
        spec.RouterKind.service: ServiceRouter,
        spec.RouterKind.gateway_api: GatewayApiRouter,
    }
    return kinds[resource.spec.traffic.router](resource, kube, namespace, log)


__all__ = ["Router", "router_for"]
