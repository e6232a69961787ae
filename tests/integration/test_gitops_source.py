"""The team's Deployment stays the source of truth after adoption, as it is when git and Argo CD own it.

Each test starts where a GitOps team stands: the chart's Deployment, Service, HPA and PDB, applied with Argo CD's
tracking, then adopted by a first deploy. What the team (or Argo CD, syncing git) writes into its Deployment
afterwards must reach the next slot, and what a sync resets on the team's objects must be put back on the live slot
by the next cleanup sweep, not only by the next deploy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bluegreen_contract import DEPLOYMENTS, HPAS, PDBS
from bluegreen_spec import SLOT_LABEL, Slot
from tests.integration.real_world_catalogue import (
    HELM_TRAFFIC,
    SELECTOR_LABELS,
    helm_autoscaler,
    helm_disruption_budget,
    install_helm_release,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


def container(deployment: dict[str, Any] | None) -> dict[str, Any]:
    """The chart's one container of a Deployment that must exist."""
    assert deployment is not None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(deployment: dict[str, Any] | None) -> dict[str, str]:
    """The container's env, by name."""
    return {item["name"]: item.get("value", "") for item in container(deployment).get("env") or []}


def commit_to_team_deployment(sut: ServiceUnderTest, changes: dict[str, Any]) -> None:
    """What an Argo CD sync of a commit does to the team's Deployment: its container changes, nothing else."""

    def change(live: dict[str, Any]) -> bool:
        live["spec"]["template"]["spec"]["containers"][0].update(changes)
        return True

    sut.admin_kube.modify(DEPLOYMENTS, sut.namespace, "cart", change)


def test_a_deploy_builds_green_from_the_teams_deployment_as_last_written(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert sut.live_slot() is Slot.green
    commit_to_team_deployment(
        sut,
        {"env": [{"name": "GREETING", "value": "hello"}], "resources": {"requests": {"memory": "96Mi"}}},
    )

    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2", cleanup=False)

    released = sut.deployment("cart-blue")
    assert container(released)["image"] == IMAGE_V3
    assert env(released) == {"GREETING": "hello"}
    assert container(released)["resources"] == {"requests": {"memory": "96Mi"}}
    assert released is not None and released["spec"]["replicas"] == 2, "the original's replicas (0) leaked"
    retained = sut.deployment("cart-green")
    assert env(retained) == {}
    assert not container(retained).get("resources")
    assert container(retained)["image"] == IMAGE_V2
    changes = sut.record("wf-2")["spec"]["changes"]
    assert f"image: {IMAGE_V2} -> {IMAGE_V3}" in changes
    assert "container cart: env GREETING added" in changes
    assert "container cart: resources.requests.memory added (96Mi)" in changes


def test_a_deploy_without_an_image_releases_the_teams_deployment_as_it_is(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    commit_to_team_deployment(sut, {"image": IMAGE_V3, "env": [{"name": "GREETING", "value": "bonjour"}]})

    target, record = sut.preflight("", "wf-2", tmp_path / "2")
    assert (tmp_path / "2" / "image").read_text() == IMAGE_V3, "a template-only release runs the team's image"
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0

    released = sut.deployment(f"cart-{target}")
    assert container(released)["image"] == IMAGE_V3
    assert env(released) == {"GREETING": "bonjour"}
    assert sut.record("wf-2")["spec"]["image"] == IMAGE_V3
    assert "container cart: env GREETING added" in sut.record("wf-2")["spec"]["changes"]


def test_a_cleanup_sweep_puts_back_what_a_sync_reset_on_the_teams_objects(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """Argo CD without the documented ignores re-aims the HPA, unpins the PDB and scales the original up."""
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.apply(helm_autoscaler(), helm_disruption_budget())
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    live = sut.live_slot()
    assert live is Slot.green

    sut.admin_kube.merge_patch(HPAS, sut.namespace, "cart", {"spec": {"scaleTargetRef": {"name": "cart"}}})
    sut.admin_kube.merge_patch(
        PDBS, sut.namespace, "cart", {"spec": {"selector": {"matchLabels": {SLOT_LABEL: None}}}}
    )
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart", {"spec": {"replicas": 2}})

    assert sut.run_cleanup(all_services=True) == 0

    hpa = sut.admin_kube.must_get(HPAS, sut.namespace, "cart")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "cart-green"
    pdb = sut.admin_kube.must_get(PDBS, sut.namespace, "cart")
    assert pdb["spec"]["selector"]["matchLabels"] == {**SELECTOR_LABELS, SLOT_LABEL: "green"}
    assert sut.replicas("cart") == 0
    assert sut.live_slot() is Slot.green
