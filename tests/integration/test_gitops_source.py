"""The team's Deployment stays the source of truth after adoption, as it is when git and Argo CD own it.

Each test starts where a GitOps team stands: the chart's Deployment, Service, HPA and PDB, applied with Argo CD's
tracking, then adopted by a first deploy. What the team (or Argo CD, syncing git) writes into its Deployment
afterwards must reach the next slot, and what a sync resets on the team's objects must be put back on the live slot
by the next cleanup sweep, not only by the next deploy.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bluegreen_contract import DEPLOYMENTS, HPAS, PDBS
from bluegreen_spec import SLOT_LABEL, Slot
from steps.adoption import interrupted_original, scale_original_down_again
from steps.context import StepContext
from steps.kube import Kube
from tests.integration.real_world_catalogue import (
    HELM_TRAFFIC,
    SELECTOR_LABELS,
    helm_autoscaler,
    helm_disruption_budget,
    install_helm_release,
)
from tests.integration.service_helpers import IMAGE_V1, IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest
from tests.integration.test_steps_failures import FAST_PROBE, argo_failures
from tests.steps.http_servers import AppServer

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


def test_the_sweep_scales_down_the_original_it_read_and_no_other(make_service: ServiceFactory, tmp_path: Path) -> None:
    """The scale-down is conditional on the object read (its uid), not on its resourceVersion."""
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart", {"spec": {"replicas": 2}})
    log = io.StringIO()
    ctx = StepContext.open(sut.steps_kube, sut.namespace, "cart", "cleanup", log_to=log)
    read = interrupted_original(ctx)
    assert read is not None
    # A status write in between (as the deployment controller makes) does not stop the scale-down...
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart", {"metadata": {"labels": {"touched": "yes"}}})
    scale_original_down_again(ctx, read)
    assert sut.replicas("cart") == 0
    # ...but the team's Deployment deleted and created again since it was read is not ours to scale.
    sut.admin_kube.merge_patch(DEPLOYMENTS, sut.namespace, "cart", {"spec": {"replicas": 2}})
    # A sweep whose first write this is (the server's 422 is then bad input, not a failed check) as well.
    ctx = StepContext.open(Kube(sut.steps_kube.transport), sut.namespace, "cart", "cleanup", log_to=log)
    read = interrupted_original(ctx)
    assert read is not None
    team = sut.admin_kube.must_get(DEPLOYMENTS, sut.namespace, "cart")
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")
    sut.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {k: team["metadata"][k] for k in ("name", "labels", "annotations")},
            "spec": team["spec"],
        }
    )
    scale_original_down_again(ctx, read)
    assert sut.replicas("cart") == 2
    assert '"action": "original-recreated"' in log.getvalue()


def test_a_new_selector_in_the_teams_deployment_recreates_the_idle_slot(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """A selector cannot change in place; the idle slot takes no traffic, so it is deleted and made again."""
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    team = sut.deployment("cart")
    assert team is not None
    # Git's new selector: the team recreates its Deployment (Argo CD's Replace=true does the same).
    recreated: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {k: team["metadata"][k] for k in ("name", "labels", "annotations")},
        "spec": {k: v for k, v in team["spec"].items() if k != "selector"},
    }
    recreated["spec"]["selector"] = {"matchLabels": {**SELECTOR_LABELS, "tier": "web"}}
    recreated["spec"]["template"]["metadata"]["labels"] = {**SELECTOR_LABELS, "tier": "web"}
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")
    sut.apply(recreated)
    old_blue = sut.deployment("cart-blue")
    assert old_blue is not None

    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2", cleanup=False)

    blue = sut.deployment("cart-blue")
    assert blue is not None and blue["metadata"]["uid"] != old_blue["metadata"]["uid"]
    assert blue["spec"]["selector"]["matchLabels"]["tier"] == "web"
    assert sut.live_slot() is Slot.blue
    green = sut.deployment("cart-green")
    assert green is not None and "tier" not in green["spec"]["selector"]["matchLabels"], "the retained slot changed"
    # The version blue retained could not be put back under the new selector: it is no rollback target any more.
    assert any("no longer a rollback target" in m for m in sut.record_messages("wf-2", "slot-recreated"))


def test_without_the_teams_deployment_a_release_copies_the_live_slot_and_says_so(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("gitops", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, "cart")

    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2", cleanup=False)

    assert container(sut.deployment("cart-blue"))["image"] == IMAGE_V3
    warnings = sut.record_messages("wf-2", "warning")
    assert any("cart does not exist, so this release copies the live slot's pod template" in w for w in warnings)


def test_a_failed_release_puts_the_retained_template_back_not_only_its_image(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """The idle slot held the previous version for rollback; a failed deploy into it must leave it as it ran."""
    sut = make_service("gitops", traffic=HELM_TRAFFIC, healthCheck=FAST_PROBE)
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert sut.live_slot() is Slot.green and sut.status().previous_slot is Slot.blue
    before = container(sut.deployment("cart-blue"))
    commit_to_team_deployment(sut, {"env": [{"name": "FEATURE", "value": "on"}]})

    target, record = sut.preflight(IMAGE_V3, "wf-2", tmp_path / "2")
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0
    with AppServer() as app:
        app.route("/health", 503)
        assert sut.run_probe(target, record, app.url) == 1
    sut.exit_handler("wf-2", argo_failures("probe", "Error (exit code 1)"))

    assert sut.live_slot() is Slot.green
    assert sut.status().previous_slot is Slot.blue, "the rollback target was given up"
    reinstated = container(sut.deployment("cart-blue"))
    assert reinstated["image"] == IMAGE_V1
    assert "env" not in reinstated, "the failed release's env stayed in the rollback target"
    assert reinstated == before


def test_a_sidecar_image_the_policy_refuses_stops_the_release_before_any_write(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("gitops", traffic=HELM_TRAFFIC, imagePolicy={"allowedRegistries": ["ghcr.io/argo-bluegreen"]})
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")

    def add_init_container(live: dict[str, Any]) -> bool:
        live["spec"]["template"]["spec"]["initContainers"] = [{"name": "setup", "image": "evil.example.com/x:1"}]
        return True

    sut.admin_kube.modify(DEPLOYMENTS, sut.namespace, "cart", add_init_container)
    records = len(sut.records())

    assert sut.run_preflight(IMAGE_V3, "wf-2", out=tmp_path / "2") != 0
    assert len(sut.records()) == records, "a record was written before the refusal"
    blue = sut.deployment("cart-blue")
    assert blue is not None and "initContainers" not in blue["spec"]["template"]["spec"]


def test_deploy_green_checks_the_teams_images_itself(make_service: ServiceFactory, tmp_path: Path) -> None:
    """A commit synced after preflight, or a run submitted at deploy-green, must not carry an image past the policy."""
    sut = make_service("gitops", traffic=HELM_TRAFFIC, imagePolicy={"allowedRegistries": ["ghcr.io/argo-bluegreen"]})
    install_helm_release(sut)
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    target, record = sut.preflight(IMAGE_V3, "wf-2", tmp_path / "2")
    commit_to_team_deployment(sut, {"image": IMAGE_V3})

    def add_sidecar(live: dict[str, Any]) -> bool:
        live["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "evil.example.com/p:1"})
        return True

    sut.admin_kube.modify(DEPLOYMENTS, sut.namespace, "cart", add_sidecar)

    assert sut.run_deploy_green(IMAGE_V3, target, record) != 0
    slot = sut.deployment(f"cart-{target}")
    assert slot is not None and len(slot["spec"]["template"]["spec"]["containers"]) == 1
