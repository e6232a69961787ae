"""Traffic routers: each points a service's live traffic at one slot in a single API update."""

from __future__ import annotations

import bluegreen_spec as spec
from steps.kube import Kube
from steps.log import StepLog
from steps.routing.base import Router
from steps.routing.gateway_api import GatewayApiRouter
from steps.routing.istio import IstioRouter
from steps.routing.service import ServiceRouter

ROUTERS: dict[spec.RouterKind, type[Router]] = {
    router.KIND: router for router in (IstioRouter, ServiceRouter, GatewayApiRouter)
}


def router_class(kind: spec.RouterKind) -> type[Router]:
    """The class of the router ``spec.traffic.router`` names, for its facts before there is a service to route."""
    return ROUTERS[kind]


def router_for(resource: spec.BlueGreenDeployment, kube: Kube, namespace: str, log: StepLog) -> Router:
    """The router the spec asks for."""
    return router_class(resource.spec.traffic.router)(resource, kube, namespace, log)


__all__ = ["ROUTERS", "Router", "router_class", "router_for"]
