"""Realistic starting points: the objects a platform team already has before argo-bluegreen's first run.

Each function returns objects written the way teams write them: a Helm chart's names, labels and named ports; a
VirtualService with several routes, retries and a mirror; a DestinationRule with its own subsets and traffic policy;
an HTTPRoute with several rules, filters and a ``sectionName``; a PodDisruptionBudget, an HPA, default-deny
NetworkPolicies and Argo CD's tracking labels. :func:`install_helm_release` puts the Helm-style Deployment and
Service in place of the plain ones ``make_service`` starts with.

:func:`changed_paths` and the ``without_*`` masks give the structural diff the tests assert with: a user-owned
object may change only in the fields argo-bluegreen owns.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, SERVICES, ApiResource
from steps.routing.http_route_backends import Backends
from steps.routing.virtual_service_routes import ROUTE_KINDS, Target
from tests.integration.service_helpers import IMAGE_V1, ServiceUnderTest

Obj = dict[str, Any]
RELEASE = "shop"
#: Labels Helm charts put on everything they render; ``app.kubernetes.io/instance`` is also Argo CD's default
#: tracking label.
SELECTOR_LABELS = {"app.kubernetes.io/name": "cart", "app.kubernetes.io/instance": RELEASE}
CHART_LABELS = {**SELECTOR_LABELS, "app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "cart-1.4.2"}
#: What the team adds to the objects it lends to the service's BlueGreenDeployment (the admission policies' opt-in).
LENT = {spec.OPT_IN_LABEL: "cart"}
#: The chart's Service has an http and a metrics port, so the spec names the one clients are routed to.
HELM_TRAFFIC = {"router": "istio", "istio": {"port": 80}}
ARGOCD_ANNOTATIONS = {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:{namespace}/cart"}


def helm_deployment(namespace: str, image: str = IMAGE_V1, replicas: int = 2) -> Obj:
    """``helm create``'s Deployment: named ports, probes on the port name, Argo CD tracking."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "cart",
            "labels": {**CHART_LABELS, **LENT},
            "annotations": {key: value.format(namespace=namespace) for key, value in ARGOCD_ANNOTATIONS.items()},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(SELECTOR_LABELS)},
            "template": {
                "metadata": {"labels": dict(SELECTOR_LABELS)},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "cart",
                            "image": image,
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                            "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                        }
                    ],
                },
            },
        },
    }


def helm_service() -> Obj:
    """``helm create``'s Service: ``targetPort: http``, plus a metrics port, with appProtocol."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cart", "labels": {**CHART_LABELS, **LENT}},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(SELECTOR_LABELS),
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
                {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"},
            ],
        },
    }


def install_helm_release(sut: ServiceUnderTest) -> None:
    """Replace the plain Deployment and Service with the Helm chart's (a selector cannot change in place)."""
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, sut.name)
    sut.admin_kube.delete(SERVICES, sut.namespace, sut.name)
    sut.apply(helm_deployment(sut.namespace), helm_service())
    sut.wait_settled()


def multi_route_virtual_service(namespace: str) -> Obj:
    """A VirtualService serving the mesh and a public gateway, with a legacy backend and several routes to cart."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "cart", "labels": {**CHART_LABELS, **LENT}},
        "spec": {
            "hosts": ["cart", "shop.example.com"],
            "gateways": ["mesh", "istio-ingress/public"],
            "http": [
                {
                    "name": "legacy-v1",
                    "match": [{"uri": {"prefix": "/v1/"}}],
                    "route": [{"destination": {"host": "cart-legacy", "port": {"number": 80}}}],
                    "timeout": "30s",
                },
                {
                    "name": "api",
                    "match": [{"uri": {"prefix": "/api/"}}, {"headers": {"x-canary": {"exact": "never"}}}],
                    "route": [
                        {
                            "destination": {"host": f"cart.{namespace}.svc.cluster.local", "port": {"number": 80}},
                            "weight": 90,
                            "headers": {"request": {"set": {"x-route": "api"}}},
                        },
                        {"destination": {"host": "cart-batch", "port": {"number": 80}}, "weight": 10},
                    ],
                    "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset"},
                    "timeout": "10s",
                    "headers": {"response": {"remove": ["x-internal"]}},
                    "mirror": {"host": "cart-shadow", "port": {"number": 80}},
                    "mirrorPercentage": {"value": 5.0},
                    "corsPolicy": {"allowOrigins": [{"exact": "https://shop.example.com"}], "allowMethods": ["GET"]},
                    "fault": {"delay": {"percentage": {"value": 0.1}, "fixedDelay": "1s"}},
                },
                {
                    "name": "default",
                    "route": [{"destination": {"host": "cart", "port": {"number": 80}}}],
                    "retries": {"attempts": 2},
                },
            ],
            "tcp": [
                {
                    "match": [{"port": 9090}],
                    "route": [{"destination": {"host": "cart", "port": {"number": 9090}}}],
                }
            ],
        },
    }


def subset_virtual_service() -> Obj:
    """A VirtualService that sends to a subset of the application's Service, as a canary setup would."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "cart"},
        "spec": {
            "hosts": ["cart"],
            "http": [{"name": "all", "route": [{"destination": {"host": "cart", "subset": "v1"}}]}],
        },
    }


def destination_rule() -> Obj:
    """The team's DestinationRule: its own subset, a traffic policy, exportTo, and the short host."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "cart", "labels": dict(CHART_LABELS)},
        "spec": {
            "host": "cart",
            "exportTo": ["."],
            "trafficPolicy": {
                "connectionPool": {"http": {"http1MaxPendingRequests": 100, "maxRequestsPerConnection": 10}},
                "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"},
                "tls": {"mode": "ISTIO_MUTUAL"},
            },
            "subsets": [{"name": "v1", "labels": {"app.kubernetes.io/name": "cart"}}],
        },
    }


def multi_rule_http_route() -> Obj:
    """An HTTPRoute with a static-assets rule first, filters and timeouts, attached to one listener by sectionName."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "cart", "labels": {**CHART_LABELS, **LENT}},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}],
            "hostnames": ["shop.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                    "backendRefs": [{"name": "static-assets", "port": 80}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-route", "value": "api"}]},
                        }
                    ],
                    "backendRefs": [
                        {
                            "name": "cart",
                            "port": 80,
                            "weight": 9,
                            "filters": [
                                {
                                    "type": "ResponseHeaderModifier",
                                    "responseHeaderModifier": {"remove": ["x-internal"]},
                                }
                            ],
                        },
                        {"name": "cart-batch", "port": 80, "weight": 1},
                    ],
                    "timeouts": {"request": "10s"},
                },
                {"backendRefs": [{"name": "cart", "port": 80}]},
            ],
        },
    }


def other_service_on_the_pods() -> Obj:
    """A metrics Service a monitoring team added, selecting the application's pods by the chart's labels."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cart-metrics", "labels": dict(LENT)},
        "spec": {"selector": dict(SELECTOR_LABELS), "ports": [{"name": "metrics", "port": 9090, "targetPort": 9090}]},
    }


def helm_autoscaler(target: str = "cart") -> Obj:
    """The chart's HorizontalPodAutoscaler on its Deployment: CPU-based, with a scale-down stabilisation window."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cart", "labels": {**CHART_LABELS, **LENT}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def helm_disruption_budget(selector: dict[str, str] | None = None, min_available: int = 2) -> Obj:
    """The chart's PodDisruptionBudget: by default on exactly the Deployment's selector labels."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "cart", "labels": {**CHART_LABELS, **LENT}},
        "spec": {
            "minAvailable": min_available,
            "selector": {"matchLabels": dict(SELECTOR_LABELS if selector is None else selector)},
        },
    }


def default_deny_ingress() -> Obj:
    """The namespace-wide default-deny a security baseline installs: every pod refuses all ingress."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-ingress"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def allow_from_ingress_controller() -> Obj:
    """The exception a team adds beside default-deny: its pods accept the ingress controller's namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cart-allow-ingress-nginx"},
        "spec": {
            "podSelector": {
                "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["cart"]}]
            },
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                    "ports": [{"port": "http"}],
                }
            ],
        },
    }


def egress_only_policy() -> Obj:
    """A policy on the same pods that governs only egress: it leaves their ingress open, so isolation may narrow it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cart-egress-dns"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cart"}},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
        },
    }


# -- structural diff -------------------------------------------------------------------------------------------------

#: Fields the API server or other writers change on every object, which nobody owns in the sense asked here.
_VOLATILE = re.compile(
    r"^(status|metadata\.(resourceVersion|generation|managedFields|uid|creationTimestamp))(\.|\[|$)"
)


def _flatten(value: Any, path: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if not value:
            into[path] = {}
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), into)
    elif isinstance(value, list):
        if not value:
            into[path] = []
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", into)
    else:
        into[path] = value


def changed_paths(before: Obj, after: Obj) -> set[str]:
    """Every leaf path whose value differs, appeared or disappeared, except server-maintained fields."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before, "", old)
    _flatten(after, "", new)
    return {
        path
        for path in old.keys() | new.keys()
        if old.get(path, "<absent>") != new.get(path, "<absent>") and not _VOLATILE.match(path)
    }


def without_our_destinations(virtual_service: Obj, target: Target) -> Obj:
    """The VirtualService with every destination for the service removed: what must survive unchanged."""
    masked = copy.deepcopy(virtual_service)
    for kind in ROUTE_KINDS:
        for route in masked.get("spec", {}).get(kind) or []:
            route["route"] = [d for d in route.get("route") or [] if not target.is_ours(d.get("destination") or {})]
    return masked


def without_our_backends(route: Obj, backends: Backends) -> Obj:
    """The HTTPRoute with every backendRef for the service removed."""
    masked = copy.deepcopy(route)
    for rule in masked.get("spec", {}).get("rules") or []:
        rule["backendRefs"] = [r for r in rule.get("backendRefs") or [] if not backends.is_ours(r)]
    return masked


def snapshot(sut: ServiceUnderTest, *objects: tuple[ApiResource, str]) -> dict[tuple[str, str], Obj]:
    """The named objects as stored now, keyed by (kind, name)."""
    return {
        (resource.kind, name): sut.admin_kube.must_get(resource, sut.namespace, name) for resource, name in objects
    }


SLOT_SELECTOR_PATH = f"spec.selector.{spec.SLOT_LABEL}"

__all__ = [
    "ARGOCD_ANNOTATIONS",
    "CHART_LABELS",
    "HELM_TRAFFIC",
    "SELECTOR_LABELS",
    "SLOT_SELECTOR_PATH",
    "allow_from_ingress_controller",
    "changed_paths",
    "default_deny_ingress",
    "destination_rule",
    "egress_only_policy",
    "helm_autoscaler",
    "helm_deployment",
    "helm_disruption_budget",
    "helm_service",
    "install_helm_release",
    "multi_route_virtual_service",
    "multi_rule_http_route",
    "other_service_on_the_pods",
    "snapshot",
    "subset_virtual_service",
    "without_our_backends",
    "without_our_destinations",
]
