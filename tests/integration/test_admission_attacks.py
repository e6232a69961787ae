"""Hostile writes as the workflow's ServiceAccount, each refused by the admission policies on the real API server.

One namespace holds a service the steps have adopted and deployed (``cart``, istio router, its Deployment, Service,
VirtualService, DestinationRule, HPA and PDB labelled for its BlueGreenDeployment) beside a team that never asked for
argo-bluegreen (``payments``: Deployment, Service, ServiceAccount, Secret, HPA, PDB, VirtualService, DestinationRule,
HTTPRoute) and a default-deny NetworkPolicy. Each attack is one request as ``bluegreen-deployer``, sent as a dry run so
it passes admission without being stored, and must be answered 403 by a policy whose message names the rule.

Attacks 1 to 6 are the review's (issue 25); the others are this catalogue's own. A policy is loaded, and a param it
reads (a BlueGreenDeployment, a Service, a Deployment) reaches its informer, a moment after it is written, so each
attack is retried for a few seconds until the answer is a refusal. Each names the rules that may refuse it: the API
server reports the first policy that denies, so an attack keeps to the names and shapes the other rules allow.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import bluegreen_spec as spec
from bluegreen_contract import GRANTED_SECRETS_LIMIT
from pipelines.admission_policy import POLICY_PREFIX
from steps.slots import deployment_name
from testenv.cluster import KubeCluster
from testenv.rest import KubeApiError, request
from tests.integration import admission_refusals
from tests.integration.service_helpers import (
    IMAGE_V1,
    IMAGE_V2,
    ServiceFactory,
    ServiceUnderTest,
    app_deployment,
    app_service,
    grant_identity,
    install_service,
    lent,
    revoke,
)

pytestmark = pytest.mark.controlplane

OPT_IN = spec.OPT_IN_LABEL
#: How long a new param (or a policy) may take to reach the API server's admission chain.
SETTLE_SECONDS = 5.0

DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
SERVICES = "/api/v1/namespaces/{ns}/services"
HPAS = "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"
PDBS = "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"
NETWORK_POLICIES = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"
VIRTUAL_SERVICES = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DESTINATION_RULES = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"
HTTP_ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
DRY_RUN = {"dryRun": "All"}


@dataclass
class Shop:
    """The namespace under attack: ``cart`` adopted and live on green, ``payments`` never managed."""

    sut: ServiceUnderTest
    admin: client.ApiClient

    @property
    def ns(self) -> str:
        return self.sut.namespace

    @property
    def sa(self) -> client.ApiClient:
        return self.sut.steps_api

    def path(self, collection: str, name: str | None = None) -> str:
        base = collection.format(ns=self.ns)
        return base if name is None else f"{base}/{name}"

    def host(self, service: str) -> str:
        return f"{service}.{self.ns}.svc.cluster.local"

    def patch(self, collection: str, name: str, body: dict[str, Any], content_type: str = MERGE) -> None:
        request(self.sa, "PATCH", self.path(collection, name), body=body, content_type=content_type, query=DRY_RUN)

    def create(self, collection: str, body: dict[str, Any]) -> None:
        request(self.sa, "POST", self.path(collection), body=body, query=DRY_RUN)

    def delete(self, collection: str, name: str) -> None:
        request(self.sa, "DELETE", self.path(collection, name), query=DRY_RUN)

    def update(self, collection: str, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Read, change, write back whole: the Role grants only ``update`` on HPAs and PDBs, as the steps use it.

        A controller writes their status meanwhile (the disruption controller, a PDB's), so a write that meets a
        newer resourceVersion (409) reads and tries again, a bounded number of times.
        """
        for attempt in range(5):
            current = request(self.sa, "GET", self.path(collection, name))
            change(current)
            try:
                request(self.sa, "PUT", self.path(collection, name), body=current, query=DRY_RUN)
                return
            except KubeApiError as conflict:
                if conflict.status != 409 or attempt == 4:
                    raise


def opted_in(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` lent to cart's BlueGreenDeployment."""
    return lent(obj, "cart")


def team_objects() -> list[dict[str, Any]]:
    """What the cart team has besides its Deployment and Service, before the first run."""
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "cart"},
        "spec": {
            "hosts": ["cart"],
            "http": [
                {
                    "name": "primary",
                    "retries": {"attempts": 2},
                    "route": [
                        {"destination": {"host": "cart", "port": {"number": 80}}, "weight": 90},
                        {"destination": {"host": "payments", "port": {"number": 80}}, "weight": 10},
                    ],
                }
            ],
        },
    }
    destination_rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "cart"},
        "spec": {"host": "cart", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}}},
    }
    worker = app_deployment("cart-worker", IMAGE_V1, replicas=0)
    return [opted_in(virtual_service), opted_in(destination_rule), opted_in(worker)]


def payments_objects() -> list[dict[str, Any]]:
    """A team that never asked for argo-bluegreen, in the same namespace; its Service selects a tier label."""
    payments = app_deployment("payments", IMAGE_V1, replicas=1)
    payments["spec"]["template"]["metadata"]["labels"]["tier"] = "payments"
    service = app_service("payments")
    service["spec"]["selector"] = {"tier": "payments"}
    return [
        payments,
        service,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "payments-sa"}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "payments-db"},
            "stringData": {"password": "hunter2"},
        },
        autoscaler("payments", "payments"),
        budget("payments", {"app": "payments"}),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "payments"},
            "spec": {"hosts": ["payments"], "http": [{"route": [{"destination": {"host": "payments"}}]}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "payments"},
            "spec": {"host": "payments"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "payments"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [{"backendRefs": [{"name": "payments", "port": 80}]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    ]


def autoscaler(name: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }


def budget(name: str, match_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": match_labels}},
    }


def slot_deployment(name: str, service: str, slot: str, pod_labels: dict[str, str], **pod: Any) -> dict[str, Any]:
    """A Deployment labelled as a slot of ``service``, as the steps would create one."""
    ours = {spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(ours)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(ours)},
            "template": {
                "metadata": {"labels": {**pod_labels, **ours}},
                "spec": {"containers": [{"name": "app", "image": IMAGE_V1}], **pod},
            },
        },
    }


def ghost_slot(**pod: Any) -> dict[str, Any]:
    """A slot of ``ghost``: no BlueGreenDeployment, and no Deployment a team labelled or a run adopted."""
    return slot_deployment("ghost-blue", "ghost", "blue", {"app": "ghost"}, **pod)


@pytest.fixture(scope="module")
def shop(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    admin = kube_cluster.admin_api_client()
    ns = f"vap-attacks-{uuid.uuid4().hex[:8]}"
    request(
        admin, "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    try:
        sut = install_service(admin, kube_cluster.impersonating_api_client, ns, name="cart", router="istio")
        # The team's own objects for cart, each labelled for its BlueGreenDeployment; the Service is a LoadBalancer
        # so that its load-balancer fields are there to attack.
        main = opted_in(app_service("cart"))
        main["spec"]["type"] = "LoadBalancer"
        sut.apply(opted_in(app_deployment("cart", IMAGE_V1, replicas=2)), main, *team_objects(), *payments_objects())
        sut.wait_settled()
        wait_enforced(Shop(sut, admin))
        # Adoption into blue, then v2 into green and the switch: cart is live on green, blue retained.
        sut.deploy(IMAGE_V2, "wf-1", tmp_path_factory.mktemp("deploy"))
        assert sut.live_slot() is spec.Slot.green
        sut.apply(
            opted_in(autoscaler("cart", "cart-green")),
            opted_in(budget("cart", {"app": "cart", spec.SLOT_LABEL: "green"})),
        )
        yield Shop(sut, admin)
    finally:
        with contextlib.suppress(KubeApiError):
            request(admin, "DELETE", f"/api/v1/namespaces/{ns}")


def wait_enforced(shop: Shop) -> None:
    """Return once the policies refuse a plain write to a team's object, so the catalogue meets loaded policies."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            shop.patch(DEPLOYMENTS, "payments", {"metadata": {"labels": {"claimed": "yes"}}})
        except KubeApiError as exc:
            if exc.status == 403:
                return
            raise
        if time.monotonic() > deadline:
            raise TimeoutError("the admission policies were not enforced within 30 s")
        time.sleep(0.2)


ACCEPTED = "accepted: the API server let the ServiceAccount make this write"


def refusal(action: Callable[[], None]) -> str:
    """The 403 message ``action`` gets once the policies have settled."""
    return admission_refusals.refusal(action, settle_seconds=SETTLE_SECONDS, accepted=ACCEPTED)


@dataclass(frozen=True)
class Attack:
    """One hostile write and the rules whose refusal counts (any of them: several policies may see it first)."""

    name: str
    rules: tuple[str, ...]
    write: Callable[[Shop], None]


def _secret_volume(secret: str) -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [{"name": "stolen", "secret": {"secretName": secret}}],
                    "containers": [{"name": "app", "volumeMounts": [{"name": "stolen", "mountPath": "/stolen"}]}],
                }
            }
        }
    }


ATTACKS: tuple[Attack, ...] = (
    # 1. Scale a Deployment no BlueGreenDeployment names to zero through the adoption exception.
    Attack(
        "1 adopt a Deployment nobody named",
        ("ours-or-opted-in",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "payments",
            {"metadata": {"annotations": {spec.ADOPTED_ANNOTATION: "payments-blue"}}, "spec": {"replicas": 0}},
        ),
    ),
    Attack(
        "1 adopt a Deployment into cart's slot",
        ("ours-or-opted-in",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "payments",
            {"metadata": {"annotations": {spec.ADOPTED_ANNOTATION: "cart-blue"}}, "spec": {"replicas": 0}},
        ),
    ),
    Attack(
        "1 adopt a labelled Deployment the spec does not name",
        ("named-by-spec",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-worker",
            {"metadata": {"annotations": {spec.ADOPTED_ANNOTATION: "cart-blue"}}, "spec": {"replicas": 0}},
        ),
    ),
    # 2. Black-hole a Service by pinning a slot nobody runs.
    Attack(
        "2 pin another team's Service to a slot",
        ("ours-or-opted-in",),
        lambda s: s.patch(SERVICES, "payments", {"spec": {"selector": {spec.SLOT_LABEL: "blue"}}}),
    ),
    # 3. Fields of the team's Service no check compared.
    Attack(
        "3 externalIPs on the team's Service (CVE-2020-8554)",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"spec": {"externalIPs": ["203.0.113.7"]}}),
    ),
    Attack(
        "3 widen the team's loadBalancerSourceRanges",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"spec": {"loadBalancerSourceRanges": ["0.0.0.0/0"]}}),
    ),
    Attack(
        "3 externalTrafficPolicy of the team's Service",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"spec": {"externalTrafficPolicy": "Local"}}),
    ),
    # 4. Hand a team object to the garbage collector, or keep it from being deleted.
    Attack(
        "4 ownerReferences on the team's Deployment",
        ("adoption-only",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart",
            {
                "metadata": {
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": str(uuid.uuid4())}
                    ]
                }
            },
        ),
    ),
    Attack(
        "4 finalizers on the team's Deployment",
        ("adoption-only",),
        lambda s: s.patch(DEPLOYMENTS, "cart", {"metadata": {"finalizers": ["example.com/hold"]}}),
    ),
    Attack(
        "4 ownerReferences on the team's Service",
        ("slot-pin-only",),
        lambda s: s.patch(
            SERVICES,
            "cart",
            {
                "metadata": {
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": str(uuid.uuid4())}
                    ]
                }
            },
        ),
    ),
    Attack(
        "4 finalizers on the team's Service",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"metadata": {"finalizers": ["example.com/hold"]}}),
    ),
    # 5. Pod templates of our own Deployments.
    Attack(
        "5 a slot's pods join another team's Service",
        ("joins-own-services", "slot-identity"),
        lambda s: s.patch(
            DEPLOYMENTS, "cart-green", {"spec": {"template": {"metadata": {"labels": {"tier": "payments"}}}}}
        ),
    ),
    Attack(
        "5 a new slot of no service joins another team's Service",
        ("joins-own-services",),
        lambda s: s.create(DEPLOYMENTS, slot_deployment("evil-blue", "evil", "blue", {"tier": "payments"})),
    ),
    Attack(
        "5 a slot runs as another ServiceAccount",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(
            DEPLOYMENTS, "cart-green", {"spec": {"template": {"spec": {"serviceAccountName": "payments-sa"}}}}
        ),
    ),
    Attack(
        "5 a slot runs as the deployer itself",
        ("pod-baseline", "slot-identity"),
        lambda s: s.patch(
            DEPLOYMENTS, "cart-green", {"spec": {"template": {"spec": {"serviceAccountName": "bluegreen-deployer"}}}}
        ),
    ),
    Attack(
        "5 a slot mounts a Secret",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(DEPLOYMENTS, "cart-green", _secret_volume("payments-db"), STRATEGIC),
    ),
    Attack(
        "5 a slot reads a Secret into its environment",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "env": [
                                        {
                                            "name": "PASSWORD",
                                            "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "password"}},
                                        }
                                    ],
                                }
                            ]
                        }
                    }
                }
            },
            STRATEGIC,
        ),
    ),
    # 6. Kinds no policy covered.
    Attack(
        "6 re-aim another team's HPA at our slot",
        ("ours-or-opted-in",),
        lambda s: s.update(HPAS, "payments", lambda h: h["spec"]["scaleTargetRef"].update(name="cart-green")),
    ),
    Attack(
        "6 re-aim cart's HPA at another Deployment",
        ("autoscaler-follows-slot",),
        lambda s: s.update(HPAS, "cart", lambda h: h["spec"]["scaleTargetRef"].update(name="payments")),
    ),
    Attack(
        "6 raise cart's HPA maximum",
        ("autoscaler-follows-slot",),
        lambda s: s.update(HPAS, "cart", lambda h: h["spec"].update(maxReplicas=400)),
    ),
    Attack(
        "6 loosen another team's PDB",
        ("ours-or-opted-in",),
        lambda s: s.update(PDBS, "payments", lambda p: p["spec"].update(minAvailable=0)),
    ),
    Attack(
        "6 rewrite another team's VirtualService",
        ("ours-or-opted-in",),
        lambda s: s.patch(
            VIRTUAL_SERVICES,
            "payments",
            {"spec": {"http": [{"route": [{"destination": {"host": "cart-green"}}]}]}},
        ),
    ),
    Attack(
        "6 rewrite another team's DestinationRule",
        ("ours-or-opted-in",),
        lambda s: s.patch(DESTINATION_RULES, "payments", {"spec": {"trafficPolicy": {"tls": {"mode": "DISABLE"}}}}),
    ),
    Attack(
        "6 rewrite another team's HTTPRoute",
        ("ours-or-opted-in",),
        lambda s: s.patch(
            HTTP_ROUTES, "payments", {"spec": {"rules": [{"backendRefs": [{"name": "cart-green", "port": 80}]}]}}
        ),
    ),
    # The catalogue's own.
    Attack(
        "own: re-aim cart's PDB at another app",
        ("slot-pin-only",),
        lambda s: s.update(PDBS, "cart", lambda p: p["spec"]["selector"]["matchLabels"].update(app="payments")),
    ),
    Attack(
        "own: a VirtualService of ours claims another team's host",
        ("named-by-spec", "routes-own-services"),
        lambda s: s.create(
            VIRTUAL_SERVICES,
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "cart", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "hosts": [s.host("payments")],
                    "http": [{"route": [{"destination": {"host": s.host("cart-green")}}]}],
                },
            },
        ),
    ),
    Attack(
        "own: a VirtualService of ours routes to another team's pods",
        ("routes-to-own-slots",),
        lambda s: s.create(
            VIRTUAL_SERVICES,
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "cart", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "hosts": [s.host("cart")],
                    "http": [{"route": [{"destination": {"host": s.host("payments")}}]}],
                },
            },
        ),
    ),
    Attack(
        "own: move another service's share of cart's VirtualService to cart",
        ("routes-own-destinations", "routes-own-services"),
        lambda s: s.patch(
            VIRTUAL_SERVICES,
            "cart",
            {
                "spec": {
                    "http": [
                        {
                            "name": "primary",
                            "retries": {"attempts": 2},
                            "route": [
                                {"destination": {"host": s.host("cart-blue"), "port": {"number": 80}}, "weight": 0},
                                {"destination": {"host": s.host("cart-green"), "port": {"number": 80}}, "weight": 100},
                            ],
                        }
                    ]
                }
            },
        ),
    ),
    Attack(
        "own: add a foreign host to cart's VirtualService",
        ("routes-own-destinations",),
        lambda s: s.patch(VIRTUAL_SERVICES, "cart", {"spec": {"hosts": ["cart", "payments"]}}),
    ),
    Attack(
        "own: change the team's DestinationRule",
        ("routes-own-destinations", "ours-or-opted-in"),
        lambda s: s.patch(DESTINATION_RULES, "cart", {"spec": {"trafficPolicy": {"tls": {"mode": "DISABLE"}}}}),
    ),
    Attack(
        "own: a DestinationRule of ours for another team's host",
        ("routes-to-own-slots",),
        lambda s: s.create(
            DESTINATION_RULES,
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "cart-extra", "labels": {spec.SERVICE_LABEL: "cart", spec.SLOT_LABEL: "blue"}},
                "spec": {"host": s.host("payments"), "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
            },
        ),
    ),
    Attack(
        "own: an HTTPRoute of ours sends to another team's Service",
        ("routes-to-own-slots", "named-by-spec"),
        lambda s: s.create(
            HTTP_ROUTES,
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "cart-extra", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "parentRefs": [{"name": "public"}],
                    "rules": [{"backendRefs": [{"name": "payments", "port": 80}]}],
                },
            },
        ),
    ),
    Attack(
        "own: patch a NetworkPolicy that is not ours",
        ("ours-or-opted-in",),
        lambda s: s.patch(NETWORK_POLICIES, "default-deny", {"spec": {"ingress": [{}]}}),
    ),
    Attack(
        "own: a NetworkPolicy of ours over another team's pods",
        ("slot-shape",),
        lambda s: s.create(
            NETWORK_POLICIES,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "cart-extra", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {"podSelector": {"matchLabels": {"tier": "payments"}}, "policyTypes": ["Egress"]},
            },
        ),
    ),
    Attack(
        "own: change the team's Service ports",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"spec": {"ports": [{"name": "http", "port": 81, "targetPort": 8080}]}}),
    ),
    Attack(
        "own: a Service of ours selects another team's pods",
        ("managed-service-shape", "references-own-deployments"),
        lambda s: s.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "cart-preview", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {"selector": {"tier": "payments"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        ),
    ),
    Attack(
        "own: a LoadBalancer of ours exposes a slot",
        ("managed-service-shape",),
        lambda s: s.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "cart-blue", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": "cart", spec.SLOT_LABEL: "green"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            },
        ),
    ),
    Attack(
        "own: a hostPath volume in a slot",
        ("pod-baseline",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {"spec": {"template": {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}}},
            STRATEGIC,
        ),
    ),
    Attack(
        "own: a privileged container in a slot",
        ("pod-baseline",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "app", "securityContext": {"privileged": True}}]}}
                }
            },
            STRATEGIC,
        ),
    ),
    Attack(
        "own: a slot on the node's network",
        ("pod-baseline",),
        lambda s: s.patch(DEPLOYMENTS, "cart-green", {"spec": {"template": {"spec": {"hostNetwork": True}}}}),
    ),
    Attack(
        "own: hand a slot of ours to another service",
        ("slot-shape",),
        lambda s: s.patch(DEPLOYMENTS, "cart-blue", {"metadata": {"labels": {spec.SERVICE_LABEL: "payments"}}}),
    ),
    Attack(
        "own: claim a team's Deployment by labelling it for our spec",
        ("ours-or-opted-in",),
        lambda s: s.patch(
            DEPLOYMENTS,
            "payments",
            {
                "metadata": {"labels": {OPT_IN: "cart"}, "annotations": {spec.ADOPTED_ANNOTATION: "cart-blue"}},
                "spec": {"replicas": 0},
            },
        ),
    ),
    Attack(
        "own: delete the adopted original",
        ("ours-or-opted-in",),
        lambda s: s.delete(DEPLOYMENTS, "cart"),
    ),
    Attack(
        "own: create a Deployment without our labels",
        ("ours-or-opted-in",),
        lambda s: s.create(DEPLOYMENTS, app_deployment("miner", IMAGE_V1, replicas=1)),
    ),
    # A slot of a service nobody adopted has no team Deployment to be compared with: the namespace's RBAC grant
    # is what stands between it and the namespace's identities.
    Attack(
        "own: a slot of no service runs as another team's ServiceAccount",
        ("identity-granted",),
        lambda s: s.create(DEPLOYMENTS, ghost_slot(serviceAccountName="payments-sa")),
    ),
    Attack(
        "own: a slot of no service mounts another team's Secret",
        ("identity-granted",),
        lambda s: s.create(
            DEPLOYMENTS, ghost_slot(volumes=[{"name": "stolen", "secret": {"secretName": "payments-db"}}])
        ),
    ),
    Attack(
        "own: a slot of no service reads another team's Secret into its environment",
        ("identity-granted",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                containers=[{"name": "app", "image": IMAGE_V1, "envFrom": [{"secretRef": {"name": "payments-db"}}]}]
            ),
        ),
    ),
    Attack(
        "own: a slot of no service projects another team's Secret",
        ("identity-granted",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(volumes=[{"name": "p", "projected": {"sources": [{"secret": {"name": "payments-db"}}]}}]),
        ),
    ),
    Attack(
        "own: a slot of no service's init container reads another team's Secret",
        ("identity-granted",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                initContainers=[
                    {
                        "name": "setup",
                        "image": IMAGE_V1,
                        "env": [
                            {"name": "P", "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "password"}}}
                        ],
                    }
                ]
            ),
        ),
    ),
    Attack(
        "own: a slot of no service pulls with another team's Secret",
        ("identity-granted",),
        lambda s: s.create(DEPLOYMENTS, ghost_slot(imagePullSecrets=[{"name": "payments-db"}])),
    ),
    Attack(
        "own: a slot of no service hands another team's Secret to a CSI driver",
        ("identity-granted",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                volumes=[
                    {
                        "name": "vault",
                        "csi": {"driver": "secrets-store.csi.k8s.io", "nodePublishSecretRef": {"name": "payments-db"}},
                    }
                ]
            ),
        ),
    ),
    Attack(
        "own: a slot of no service mounts an in-tree volume that takes a Secret",
        ("pod-baseline",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                volumes=[
                    {"name": "share", "cephfs": {"monitors": ["10.0.0.1:6789"], "secretRef": {"name": "payments-db"}}}
                ]
            ),
        ),
    ),
    Attack(
        "own: a paused slot, to scale up an orphaned ReplicaSet",
        ("slot-shape",),
        lambda s: s.create(DEPLOYMENTS, {**ghost_slot(), "spec": {**ghost_slot()["spec"], "paused": True}}),
    ),
    # Only the baseline rules can refuse these, so each is theirs alone.
    Attack(
        "own: a slot of no service runs as the deployer",
        ("pod-baseline",),
        lambda s: s.create(DEPLOYMENTS, ghost_slot(serviceAccountName="bluegreen-deployer")),
    ),
    Attack(
        "own: a slot in the node's PID namespace",
        ("pod-baseline",),
        lambda s: s.create(DEPLOYMENTS, ghost_slot(hostPID=True)),
    ),
    Attack(
        "own: a slot in the node's IPC namespace",
        ("pod-baseline",),
        lambda s: s.create(DEPLOYMENTS, ghost_slot(hostIPC=True)),
    ),
    Attack(
        "own: a slot on a port of the node",
        ("pod-baseline",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                containers=[{"name": "app", "image": IMAGE_V1, "ports": [{"containerPort": 8080, "hostPort": 80}]}]
            ),
        ),
    ),
    Attack(
        "own: a slot with a capability beyond baseline",
        ("pod-baseline",),
        lambda s: s.create(
            DEPLOYMENTS,
            ghost_slot(
                containers=[
                    {"name": "app", "image": IMAGE_V1, "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
                ]
            ),
        ),
    ),
    # The adopted slot's identity: every way a pod refers to a Secret.
    Attack(
        "own: a slot projects another team's Secret",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {
                "spec": {
                    "template": {
                        "spec": {
                            "volumes": [
                                {"name": "stolen", "projected": {"sources": [{"secret": {"name": "payments-db"}}]}}
                            ]
                        }
                    }
                }
            },
            STRATEGIC,
        ),
    ),
    Attack(
        "own: a slot takes another team's Secret as its environment",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "payments-db"}}]}]}
                    }
                }
            },
            STRATEGIC,
        ),
    ),
    Attack(
        "own: a slot pulls with another team's Secret",
        ("slot-identity", "identity-granted"),
        lambda s: s.patch(
            DEPLOYMENTS,
            "cart-green",
            {"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "payments-db"}]}}}},
        ),
    ),
    # Names and shapes of our own objects.
    Attack(
        "own: a slot under a name no slot has",
        ("slot-shape",),
        lambda s: s.create(DEPLOYMENTS, slot_deployment("cart-canary", "cart", "blue", {"app": "cart"})),
    ),
    Attack(
        "own: externalIPs on a Service of ours",
        ("managed-service-shape",),
        lambda s: s.patch(SERVICES, "cart-blue", {"spec": {"externalIPs": ["203.0.113.7"]}}),
    ),
    Attack(
        "own: a Service of ours under a name the spec does not give",
        ("named-by-spec", "managed-service-shape"),
        lambda s: s.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "cart-evil", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "selector": {"app": "cart", spec.SLOT_LABEL: "green"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            },
        ),
    ),
    Attack(
        "own: a VirtualService of ours mirrors a slot's traffic elsewhere",
        ("routes-to-own-slots", "named-by-spec"),
        lambda s: s.create(
            VIRTUAL_SERVICES,
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "cart", "labels": {spec.SERVICE_LABEL: "cart"}},
                "spec": {
                    "hosts": [s.host("cart")],
                    "http": [
                        {
                            "route": [{"destination": {"host": s.host("cart-green")}}],
                            "mirror": {"host": s.host("payments")},
                        }
                    ],
                },
            },
        ),
    ),
    # The metadata of a lent object, and objects only a team may label.
    Attack(
        "own: relabel the team's Deployment",
        ("adoption-only",),
        lambda s: s.patch(DEPLOYMENTS, "cart", {"metadata": {"labels": {"team": "someone-else"}}}),
    ),
    Attack(
        "own: annotate the team's Service",
        ("slot-pin-only",),
        lambda s: s.patch(SERVICES, "cart", {"metadata": {"annotations": {"example.com/exposed": "true"}}}),
    ),
    Attack(
        "own: take back the team's consent on its Service",
        ("ours-or-opted-in", "slot-pin-only"),
        lambda s: s.patch(SERVICES, "cart", {"metadata": {"labels": {OPT_IN: None}}}),
    ),
    Attack(
        "own: create a Deployment labelled as lent",
        ("ours-or-opted-in", "adoption-only"),
        lambda s: s.create(DEPLOYMENTS, opted_in(app_deployment("cart-shadow", IMAGE_V1, replicas=1))),
    ),
)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_attack_is_refused_naming_the_rule(shop: Shop, attack: Attack) -> None:
    message = refusal(lambda: attack.write(shop))
    assert POLICY_PREFIX in message, message
    assert any(f"[{rule}]" in message for rule in attack.rules), message


def test_a_slot_of_no_service_runs_only_as_what_the_namespace_granted(shop: Shop) -> None:
    """The grant, not the slot, decides: granted, the same ghost slot is let through; the grant taken back, refused."""
    stolen = [{"name": "db", "secret": {"secretName": "payments-db"}}]
    ghost = ghost_slot(serviceAccountName="payments-sa", volumes=stolen)
    assert "[identity-granted]" in refusal(lambda: shop.create(DEPLOYMENTS, ghost))
    grant = grant_identity(shop.admin, shop.ns, "ghost", service_accounts=["payments-sa"], secrets=["payments-db"])
    try:
        admission_refusals.accepted_within(lambda: shop.create(DEPLOYMENTS, ghost), settle_seconds=SETTLE_SECONDS)
        # A grant names objects, not a namespace: a Secret it does not name is still refused.
        other = ghost_slot(serviceAccountName="payments-sa", imagePullSecrets=[{"name": "cart-registry"}])
        assert "[identity-granted]" in refusal(lambda: shop.create(DEPLOYMENTS, other))
    finally:
        revoke(shop.admin, grant)
    assert "[identity-granted]" in refusal(lambda: shop.create(DEPLOYMENTS, ghost))


def test_a_slot_refers_to_no_more_secrets_than_the_policy_checks(shop: Shop) -> None:
    """Each Secret costs an RBAC check of its own, and the policy checks a fixed number: one more must be refused,
    not let through unchecked."""
    limit = GRANTED_SECRETS_LIMIT
    names = [f"ghost-pull-{index}" for index in range(limit + 1)]
    grant = grant_identity(shop.admin, shop.ns, "ghost-pull", service_accounts=[], secrets=names)
    try:
        within = ghost_slot(imagePullSecrets=[{"name": name} for name in names[:limit]])
        admission_refusals.accepted_within(lambda: shop.create(DEPLOYMENTS, within), settle_seconds=SETTLE_SECONDS)
        beyond = ghost_slot(imagePullSecrets=[{"name": name} for name in names])
        assert "[identity-granted]" in refusal(lambda: shop.create(DEPLOYMENTS, beyond))
        # The last Secret the policy checks is checked: ungranted, it is refused like the first.
        last = ghost_slot(imagePullSecrets=[{"name": name} for name in [*names[: limit - 1], "not-granted"]])
        assert "[identity-granted]" in refusal(lambda: shop.create(DEPLOYMENTS, last))
    finally:
        revoke(shop.admin, grant)


def test_the_normal_cycle_still_writes_only_what_it_may(shop: Shop, tmp_path: Path) -> None:
    """A deploy and a rollback after the catalogue: the steps' writes pass, the team's objects keep their fields."""
    sut = shop.sut
    before = request(shop.admin, "GET", shop.path(SERVICES, "cart"))
    sut.deploy(IMAGE_V1, "wf-2", tmp_path)
    assert sut.live_slot() is spec.Slot.blue
    assert sut.run_manual_rollback("wf-back") == 0
    assert sut.live_slot() is spec.Slot.green
    after = request(shop.admin, "GET", shop.path(SERVICES, "cart"))
    assert after["spec"]["selector"] == {**before["spec"]["selector"], spec.SLOT_LABEL: "green"}
    assert after["metadata"].get("ownerReferences") is None and after["metadata"].get("finalizers") is None
    hpa = request(shop.admin, "GET", shop.path(HPAS, "cart"))
    assert hpa["spec"]["scaleTargetRef"]["name"] == "cart-green" and hpa["spec"]["maxReplicas"] == 4
    payments = request(shop.admin, "GET", shop.path(HPAS, "payments"))
    assert payments["spec"]["scaleTargetRef"]["name"] == "payments"


def _pod_referring_to(secret: str) -> dict[str, Any]:
    """A pod template change referring to ``secret`` in each of the five ways a Pod can."""
    return {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"name": f"{secret}-volume", "secret": {"secretName": secret}},
                        {"name": f"{secret}-projected", "projected": {"sources": [{"secret": {"name": secret}}]}},
                    ],
                    "imagePullSecrets": [{"name": secret}],
                    "containers": [
                        {
                            "name": "app",
                            "env": [
                                {
                                    "name": f"{secret.upper().replace('-', '_')}_PASSWORD",
                                    "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
                                }
                            ],
                            "envFrom": [{"secretRef": {"name": secret}}],
                            "volumeMounts": [
                                {"name": f"{secret}-volume", "mountPath": f"/{secret}"},
                                {"name": f"{secret}-projected", "mountPath": f"/{secret}-projected"},
                            ],
                        }
                    ],
                }
            }
        }
    }


def _one_way(change: dict[str, Any], keep: str) -> dict[str, Any]:
    """``change`` reduced to one of its five references, named by the key that holds it."""
    pod = change["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if keep in ("volume", "projected"):
        volume = pod["volumes"][0 if keep == "volume" else 1]
        mount = container["volumeMounts"][0 if keep == "volume" else 1]
        reduced = {"volumes": [volume], "containers": [{"name": "app", "volumeMounts": [mount]}]}
    elif keep == "imagePullSecrets":
        reduced = {"imagePullSecrets": pod["imagePullSecrets"]}
    else:
        reduced = {"containers": [{"name": "app", keep: container[keep]}]}
    return {"spec": {"template": {"spec": reduced}}}


def test_a_team_that_uses_secrets_lends_its_slots_only_those(make_service: ServiceFactory, tmp_path: Path) -> None:
    """Most teams' Deployments refer to Secrets; a slot may then refer to those, and to no other team's, even where
    the namespace grants the deployer more.

    The check compares each Secret a slot refers to with those the team's Deployment refers to, so it must hold
    when the team's Deployment refers to Secrets in every way, not only when it refers to none.
    """
    sut = make_service("secrets", name="ledger", replicas=1)
    for secret in ("ledger-db", "payments-db"):
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "stringData": {"password": "x"}}
        request(sut.admin, "POST", f"/api/v1/namespaces/{sut.namespace}/secrets", body=body)
    # A namespace that grants the deployer every Secret in it: the grant is no licence to take another team's.
    grant_identity(
        sut.admin, sut.namespace, "ledger", service_accounts=["payments-sa"], secrets=["ledger-db", "payments-db"]
    )
    team = _pod_referring_to("ledger-db")
    request(sut.admin, "PATCH", f"{DEPLOYMENTS.format(ns=sut.namespace)}/ledger", body=team, content_type=STRATEGIC)
    sut.wait_settled()
    # The slots are copies of the team's Deployment, Secrets included: the policies let the deployer write them.
    sut.deploy(IMAGE_V2, "wf-1", tmp_path)
    shop = Shop(sut, sut.admin)
    green = deployment_name("ledger", spec.Slot.green)
    assert sut.deployment(green) is not None
    accepted = []
    for way in ("volume", "projected", "env", "envFrom", "imagePullSecrets"):
        change = _one_way(_pod_referring_to("payments-db"), way)

        def attack(change: dict[str, Any] = change) -> None:
            shop.patch(DEPLOYMENTS, green, change, STRATEGIC)

        try:
            reason = refusal(attack)
        except pytest.fail.Exception as accepted_write:  # every way is tried, so the report names each one let in
            reason = str(accepted_write)
        if "slot-identity" not in reason:
            accepted.append(f"{way}: {reason}")
    assert not accepted, "a slot referred to another team's Secret:\n" + "\n".join(accepted)
    # Nor to another team's identity the namespace granted.
    identity = {"spec": {"template": {"spec": {"serviceAccountName": "payments-sa"}}}}
    assert "[slot-identity]" in refusal(lambda: shop.patch(DEPLOYMENTS, green, identity))
