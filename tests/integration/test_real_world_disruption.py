"""A team's PodDisruptionBudget keeps protecting the pods that serve, proven with the real eviction API.

The cluster's kube-controller-manager runs the disruption controller, so the budgets' status and the API server's
eviction decisions here are the real ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import PDBS, PODS
from bluegreen_spec import Slot
from steps.kube import labels_selector
from testenv.rest import KubeApiError, request
from tests.integration.real_world_catalogue import (
    HELM_TRAFFIC,
    RELEASE,
    changed_paths,
    helm_disruption_budget,
    install_helm_release,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane

#: How long the disruption controller may take to count a budget's pods after they change.
BUDGET_SETTLE_SECONDS = 60.0


def pinned_slot(sut: ServiceUnderTest) -> str | None:
    """The slot the team's budget is pinned to, if any."""
    labels = sut.admin_kube.must_get(PDBS, sut.namespace, "cart")["spec"]["selector"]["matchLabels"]
    slot = labels.get(spec.SLOT_LABEL)
    return None if slot is None else str(slot)


def wait_budget_counts(sut: ServiceUnderTest, expected_healthy: int) -> None:
    """Wait until the disruption controller has observed the budget's generation and counts ``expected_healthy``."""
    deadline = time.monotonic() + BUDGET_SETTLE_SECONDS
    while True:
        pdb = sut.admin_kube.must_get(PDBS, sut.namespace, "cart")
        status = pdb.get("status") or {}
        observed = status.get("observedGeneration") == pdb["metadata"]["generation"]
        if observed and status.get("currentHealthy") == expected_healthy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"budget never counted {expected_healthy} healthy pods: {status}")
        time.sleep(0.2)


def evict(sut: ServiceUnderTest, slot: Slot) -> int:
    """Ask the eviction API to evict one running pod of ``slot``; the HTTP status it answers."""
    selector = labels_selector({spec.SERVICE_LABEL: sut.name, spec.SLOT_LABEL: slot.value})
    pods = [
        p for p in sut.admin_kube.list(PODS, sut.namespace, selector) if not p["metadata"].get("deletionTimestamp")
    ]
    assert pods, f"slot {slot.value} runs no pod"
    name = pods[0]["metadata"]["name"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": sut.namespace}}
    try:
        request(sut.admin, "POST", f"/api/v1/namespaces/{sut.namespace}/pods/{name}/eviction", body=body)
    except KubeApiError as exc:
        return exc.status
    return 201


def test_the_budget_follows_the_live_slot_and_a_drain_cannot_empty_it(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-pdb", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.apply(helm_disruption_budget(min_available=2))
    before = sut.admin_kube.must_get(PDBS, sut.namespace, "cart")

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert pinned_slot(sut) == "green"
    # Green serves with 2 pods, blue is retained warm with 2 more. Unpinned, the budget would count 4 healthy pods
    # and let a drain evict both green ones; pinned, it counts green's 2 and refuses.
    wait_budget_counts(sut, 2)
    assert evict(sut, Slot.green) == 429, "the budget must refuse to evict a live pod below minAvailable"
    assert evict(sut, Slot.blue) == 201, "the retained slot's pods are no longer counted, nor protected"

    sut.wait_settled()
    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2")
    assert pinned_slot(sut) == "blue"
    assert sut.run_manual_rollback("wf-back") == 0
    assert pinned_slot(sut) == "green"
    assert any("now protects slot green" in m for m in sut.record_messages("wf-back", "budget-pinned")), (
        "the rollback records the move"
    )
    after = sut.admin_kube.must_get(PDBS, sut.namespace, "cart")
    assert changed_paths(before, after) == {f"spec.selector.matchLabels.{spec.SLOT_LABEL}"}


def test_a_budget_broader_than_the_service_is_left_alone_with_a_warning(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-pdb", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    # The release-wide budget a platform team writes once for every workload of the release.
    release_wide = helm_disruption_budget(selector={"app.kubernetes.io/instance": RELEASE}, min_available=1)
    sut.apply(release_wide)

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert pinned_slot(sut) is None
    warnings = sut.record_messages("wf-1", "warning")
    assert any("selects more than the pods of cart" in w for w in warnings), warnings
