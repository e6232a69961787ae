"""A team's HorizontalPodAutoscaler always scales the slot that takes the traffic, through a whole cycle.

The real HPA controller runs in the cluster's kube-controller-manager; with no metrics API it cannot compute a
recommendation, so what is proven here is where each HPA points after each step and that nothing else of it changed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bluegreen_contract import HPAS
from bluegreen_spec import Slot
from pipelines.settings import SERVICE_ACCOUNT
from steps.kube import Kube
from testenv.fault_proxy import FaultProxy
from tests.integration.real_world_catalogue import (
    HELM_TRAFFIC,
    changed_paths,
    helm_autoscaler,
    install_helm_release,
    snapshot,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


def scaled(sut: ServiceUnderTest, name: str = "cart") -> str:
    """The Deployment an HPA scales."""
    return str(sut.admin_kube.must_get(HPAS, sut.namespace, name)["spec"]["scaleTargetRef"]["name"])


def test_the_autoscaler_follows_the_live_slot_through_a_whole_cycle(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-hpa", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.apply(helm_autoscaler())
    before = snapshot(sut, (HPAS, "cart"))[("HorizontalPodAutoscaler", "cart")]

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert scaled(sut) == "cart-green"
    assert any("now scales cart-blue (was cart)" in m for m in sut.record_messages("wf-1", "autoscaler-moved"))
    assert any("now scales cart-green (was cart-blue)" in m for m in sut.record_messages("wf-1", "autoscaler-moved"))

    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2")
    assert scaled(sut) == "cart-blue"
    assert sut.run_manual_rollback("wf-back") == 0
    assert sut.live_slot() is Slot.green
    assert scaled(sut) == "cart-green"
    assert sut.run_cleanup(all_services=True) == 0
    assert scaled(sut) == "cart-green"

    after = sut.admin_kube.must_get(HPAS, sut.namespace, "cart")
    assert changed_paths(before, after) == {"spec.scaleTargetRef.name"}


def second_deploy_ready_to_switch(make_service: ServiceFactory, tmp_path: Path) -> tuple[ServiceUnderTest, str, str]:
    """A service with the chart's HPA, v2 live on green, and v3 deployed and proven on blue: its target and record."""
    sut = make_service("rw-hpa")
    sut.apply(helm_autoscaler())
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    target, record = sut.preflight(IMAGE_V3, "wf-2", tmp_path / "2")
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    sut.prove(target, record)
    return sut, target, record


def test_a_failed_deploy_leaves_the_autoscaler_on_the_slot_that_kept_the_traffic(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut, target, record = second_deploy_ready_to_switch(make_service, tmp_path)
    assert sut.run_switch(target, record) == 0
    assert scaled(sut) == "cart-blue"
    # verify failed after the switch: the exit handler's rollback takes the traffic, and the autoscaler, back.
    sut.exit_handler("wf-2", '[{"displayName": "verify", "message": "error rate too high"}]')
    assert sut.live_slot() is Slot.green
    assert scaled(sut) == "cart-green"


def test_two_autoscalers_on_one_service_are_left_alone_with_a_warning(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-hpa")
    second = helm_autoscaler()
    second["metadata"]["name"] = "cart-memory"
    sut.apply(helm_autoscaler(), second)

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert scaled(sut) == "cart" and scaled(sut, "cart-memory") == "cart"
    warnings = sut.record_messages("wf-1", "warning")
    assert any("cart-memory" in w and "none is moved" in w for w in warnings), warnings


def test_an_autoscaler_that_cannot_be_moved_is_a_warning_not_a_failed_switch(
    make_service: ServiceFactory, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """Traffic has moved and serves when the HPA is re-aimed: a refused write is reported, and the switch stands."""
    sut, target, record = second_deploy_ready_to_switch(make_service, tmp_path)
    through_proxy = dataclasses.replace(
        sut,
        steps_kube=Kube(
            fault_proxy.impersonating_api_client(sut.namespace, SERVICE_ACCOUNT), retry=sut.steps_kube.retry
        ),
    )
    refused = fault_proxy.inject("PUT", "/horizontalpodautoscalers/cart", 403, times=1_000)

    assert through_proxy.run_switch(target, record) == 0
    assert refused.hits >= 1
    assert sut.live_slot() is Slot(target)
    assert scaled(sut) == "cart-green", "the refused write left the autoscaler where it was"
    (warning,) = [m for m in sut.record_messages(record, "warning") if "HorizontalPodAutoscaler" in m]
    assert warning.startswith(f"HorizontalPodAutoscaler cart still scales cart-green, not the live cart-{target}: ")
