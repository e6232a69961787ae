"""Slots on real teams' Deployments: zero replicas, Argo CD tracking, a Deployment not named like the service."""

from __future__ import annotations

from pathlib import Path

import pytest

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS, ExitCode
from bluegreen_spec import Slot
from steps.images import version_label
from steps.slots import ADOPTED_ANNOTATION, VERSION_LABEL
from tests.integration.real_world_catalogue import (
    ARGOCD_ANNOTATIONS,
    SELECTOR_LABELS,
    helm_deployment,
    install_helm_release,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory

pytestmark = pytest.mark.controlplane


def test_a_green_scaled_to_zero_is_never_switched_to(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-slots")
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    assert sut.run_deploy_green(IMAGE_V2, target, record) == 0
    sut.prove(target, record)
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart-green", {"spec": {"replicas": 0}})
    sut.wait_settled()
    assert sut.run_switch(target, record) == ExitCode.FAILED
    assert sut.live_slot() is Slot.blue


def test_slots_drop_argocd_tracking_and_adopt_a_differently_named_deployment(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-slots", deployment="cart-server", traffic={"router": "istio", "istio": {"port": 80}})
    install_helm_release(sut)
    renamed = helm_deployment(sut.namespace)
    renamed["metadata"]["name"] = "cart-server"
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")
    sut.apply(renamed)
    sut.wait_settled()

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    original = sut.deployment("cart-server")
    assert original is not None
    assert original["spec"]["replicas"] == 0
    assert original["metadata"]["annotations"][ADOPTED_ANNOTATION] == "cart-blue"
    for slot in Slot:
        deployment = sut.deployment(f"cart-{slot.value}")
        assert deployment is not None
        labels = deployment["metadata"]["labels"]
        assert "app.kubernetes.io/instance" not in labels, "Argo CD would claim and prune the slot"
        assert not any(key.startswith("argocd.argoproj.io/") for key in labels)
        assert not set(ARGOCD_ANNOTATIONS) & set(deployment["metadata"].get("annotations") or {})
        assert deployment["spec"]["template"]["metadata"]["labels"].items() >= SELECTOR_LABELS.items()


def test_slot_pods_carry_the_image_version_unless_the_team_selects_on_that_label(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """Older charts put ``app.kubernetes.io/version`` in the selector; the slots must stay inside it."""
    sut = make_service("rw-slots", traffic={"router": "istio", "istio": {"port": 80}})
    install_helm_release(sut)
    pinned = helm_deployment(sut.namespace)
    chart_version = {VERSION_LABEL: "1.4.2"}
    pinned["spec"]["selector"]["matchLabels"] |= chart_version
    pinned["spec"]["template"]["metadata"]["labels"] |= chart_version
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")  # a selector is immutable: the chart recreates it
    sut.apply(pinned)
    sut.wait_settled()

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert sut.status().active_image == IMAGE_V2
    for slot in Slot:
        deployment = sut.deployment(f"cart-{slot.value}")
        assert deployment is not None
        assert deployment["spec"]["selector"]["matchLabels"][VERSION_LABEL] == "1.4.2"
        assert deployment["spec"]["template"]["metadata"]["labels"][VERSION_LABEL] == "1.4.2"

    plain = make_service("rw-slots")
    plain.deploy(IMAGE_V2, "wf-1", tmp_path / "2")
    live_slot = plain.live_slot()
    assert live_slot is not None
    live = plain.deployment(f"cart-{live_slot.value}")
    assert live is not None
    assert live["spec"]["template"]["metadata"]["labels"][VERSION_LABEL] == version_label(IMAGE_V2)
    assert VERSION_LABEL not in live["spec"]["selector"]["matchLabels"]


def test_an_unannotated_deployment_named_like_the_service_is_left_alone(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """After adoption, Argo CD (or a person) recreates Deployment ``cart``: the next run must not scale it down."""
    sut = make_service("rw-slots")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")
    recreated = helm_deployment(sut.namespace)
    recreated["spec"]["selector"]["matchLabels"] = recreated["spec"]["template"]["metadata"]["labels"] = {
        "app.kubernetes.io/name": "cart-worker"
    }
    sut.apply(recreated)
    sut.wait_settled()
    assert sut.run_preflight(IMAGE_V3, "wf-2", out=tmp_path / "2") == 0
    assert sut.replicas("cart") == 2


def test_previous_slot_is_retained_when_a_failed_run_is_not_rolled_back(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-slots", rollbackOnFailure=False)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")  # green live, blue retained
    target, record = sut.preflight(IMAGE_V3, "wf-2", tmp_path / "2")
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    sut.prove(target, record)
    assert sut.run_switch(target, record) == 0
    sut.exit_handler("wf-2", '[{"message": "analysis breached"}]')  # verify failed after the switch
    assert sut.live_slot() is Slot.blue, "rollbackOnFailure false leaves traffic where it is"
    green = sut.deployment("cart-green")
    assert green is not None
    assert spec.RETAIN_UNTIL_ANNOTATION in green["metadata"].get("annotations", {})
    assert sut.status().previous_slot is Slot.green
    assert sut.run_cleanup(all_services=True) == 0
    assert sut.replicas("cart-green") == 2, "the known-good previous slot outlives the next sweep"


def test_deploy_green_checks_the_image_policy_itself(make_service: ServiceFactory, tmp_path: Path) -> None:
    """A submitter can start at any template (``--entrypoint``); deploy-green must not trust that preflight ran."""
    sut = make_service("rw-slots", imagePolicy={"allowedRegistries": ["ghcr.io/argo-bluegreen"]})
    target, record = sut.preflight(IMAGE_V2, "wf-1", tmp_path)
    assert sut.run_deploy_green("docker.io/attacker/cart:1", target, record) == ExitCode.BAD_INPUT
    assert sut.deployment(f"cart-{target}") is None


def test_a_deployment_with_characters_beyond_the_bmp_is_adopted_and_deployed(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """Teams write emoji into annotations and env values; the slots copy them through server-side apply."""
    sut = make_service("rw-slots")
    original = sut.admin_kube.must_get(DEPLOYMENTS, sut.namespace, "cart")
    template = original["spec"]["template"]
    template["metadata"]["annotations"] = {"team.example.com/owner": "checkout 🚀 squad"}
    template["spec"]["containers"][0]["env"] = [{"name": "GREETING", "value": "🛒 ready"}]
    sut.admin_kube.replace(DEPLOYMENTS, sut.namespace, original)
    sut.wait_settled()

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    for slot in Slot:
        copied = sut.deployment(f"cart-{slot.value}")
        assert copied is not None
        pod = copied["spec"]["template"]
        assert pod["metadata"]["annotations"]["team.example.com/owner"] == "checkout 🚀 squad"
        assert pod["spec"]["containers"][0]["env"] == [{"name": "GREETING", "value": "🛒 ready"}]
