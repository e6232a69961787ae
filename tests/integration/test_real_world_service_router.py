"""The service router through a whole cycle, in a namespace set up the way a platform team runs a Helm release.

The starting point has the chart's Deployment and Service (selector labels, named ports, a metrics port,
appProtocol), its HorizontalPodAutoscaler and PodDisruptionBudget, a monitoring team's Service on the same pods, and a
security baseline's default-deny with the team's allow-from-ingress exception. Adoption, two deploys, a manual
rollback and the cleanup run as the ServiceAccount; after each move, real requests through the Service's ClusterIP
(kube-proxy) reach the new version only. Afterwards every object the team owns differs from before only in the
fields argo-bluegreen owns.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, HPAS, NETWORK_POLICIES, PDBS, SERVICES
from bluegreen_spec import Slot
from testenv.demo_service import answering_version
from tests.integration.real_world_catalogue import (
    SLOT_SELECTOR_PATH,
    allow_from_ingress_controller,
    changed_paths,
    default_deny_ingress,
    helm_autoscaler,
    helm_disruption_budget,
    install_helm_release,
    other_service_on_the_pods,
    snapshot,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane

#: How long kube-proxy may take to follow a selector change; the steps' switch is over by then.
KUBE_PROXY_SECONDS = 30.0
#: Consecutive answers from the expected version before traffic counts as moved.
STEADY_ANSWERS = 10


def wait_serving(sut: ServiceUnderTest, expected: str) -> None:
    """Wait until requests to the chart's Service answer ``expected`` steadily, never any third version."""
    url = f"http://{sut.admin_kube.must_get(SERVICES, sut.namespace, 'cart')['spec']['clusterIP']}:80/version"
    deadline = time.monotonic() + KUBE_PROXY_SECONDS
    seen: list[str] = []
    while seen[-STEADY_ANSWERS:] != [expected] * STEADY_ANSWERS:
        assert time.monotonic() < deadline, f"{url} never settled on {expected}; last answers {seen[-STEADY_ANSWERS:]}"
        seen.append(answering_version(url, timeout=KUBE_PROXY_SECONDS))
    previous = {version for version in seen if version != expected}
    assert len(previous) <= 1, f"answers from more than the previous and the new version: {previous}"


def test_service_router_whole_cycle_changes_only_what_it_owns(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-svc", router="service")
    install_helm_release(sut)
    sut.apply(
        helm_autoscaler(),
        helm_disruption_budget(min_available=1),
        other_service_on_the_pods(),
        default_deny_ingress(),
        allow_from_ingress_controller(),
    )
    owned = (
        (DEPLOYMENTS, "cart"),
        (SERVICES, "cart"),
        (SERVICES, "cart-metrics"),
        (HPAS, "cart"),
        (PDBS, "cart"),
        (NETWORK_POLICIES, "default-deny-ingress"),
        (NETWORK_POLICIES, "cart-allow-ingress-nginx"),
    )
    before = snapshot(sut, *owned)
    wait_serving(sut, "v1")

    assert sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1") == "green"  # adopts the chart's Deployment into blue first
    wait_serving(sut, "v2")
    assert sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2") == "blue"
    wait_serving(sut, "v3")
    assert sut.run_manual_rollback("wf-back") == 0
    wait_serving(sut, "v2")
    assert sut.run_cleanup() == 0
    sut.wait_settled()
    after = snapshot(sut, *owned)

    assert sut.live_slot() is Slot.green
    diff = {key: changed_paths(before[key], after[key]) for key in before}
    assert diff == {
        # Adoption scales the team's Deployment to zero and says who took over; nothing else of it changes.
        ("Deployment", "cart"): {"spec.replicas", f"metadata.annotations.{spec.ADOPTED_ANNOTATION}"},
        ("Service", "cart"): {SLOT_SELECTOR_PATH},
        ("Service", "cart-metrics"): set(),
        ("HorizontalPodAutoscaler", "cart"): {"spec.scaleTargetRef.name"},
        ("PodDisruptionBudget", "cart"): {f"spec.selector.matchLabels.{spec.SLOT_LABEL}"},
        ("NetworkPolicy", "default-deny-ingress"): set(),
        ("NetworkPolicy", "cart-allow-ingress-nginx"): set(),
    }, diff
    assert after[("HorizontalPodAutoscaler", "cart")]["spec"]["scaleTargetRef"]["name"] == "cart-green"
    service = after[("Service", "cart")]
    assert service["spec"]["ports"] == before[("Service", "cart")]["spec"]["ports"], "named ports and appProtocol"
    # Preflight named the paths that do not follow the switch and the isolation it could not add.
    warnings = " ".join(sut.record_messages("wf-1", "warning"))
    assert "Service " + f"{sut.namespace}/cart-metrics selects the pods of both slots" in warnings, warnings
    assert "cart-allow-ingress-nginx" in warnings, warnings
