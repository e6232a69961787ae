"""Slot isolation beside a team's own NetworkPolicies: it narrows open pods, and never opens guarded ones.

The local cluster has no CNI that enforces NetworkPolicy, so what is proven here is what the steps write: which
policies exist after each step, and that the team's are untouched. Which sources a set of policies lets in follows
from the API's additive semantics, which ``steps.isolation`` spells out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen_contract import NETWORK_POLICIES
from bluegreen_spec import Slot
from steps.isolation import policy_name
from tests.integration.real_world_catalogue import (
    HELM_TRAFFIC,
    allow_from_ingress_controller,
    changed_paths,
    default_deny_ingress,
    egress_only_policy,
    install_helm_release,
    snapshot,
)
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane


def isolation_policies(sut: ServiceUnderTest) -> set[str]:
    """Our isolation policies that exist now."""
    names = {policy_name(sut.name, slot) for slot in Slot}
    return {p["metadata"]["name"] for p in sut.admin_kube.list(NETWORK_POLICIES, sut.namespace)} & names


def test_default_deny_namespace_is_never_opened_through_a_whole_cycle(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-netpol", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    sut.apply(default_deny_ingress(), allow_from_ingress_controller())
    team = ((NETWORK_POLICIES, "default-deny-ingress"), (NETWORK_POLICIES, "cart-allow-ingress-nginx"))
    before = snapshot(sut, *team)

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert isolation_policies(sut) == set(), "an 'everyone but the other slot' policy would open the default-deny"
    warnings = sut.record_messages("wf-1", "warning")
    assert any(
        "slot isolation not applied" in w and "default-deny-ingress" in w and "cart-allow-ingress-nginx" in w
        for w in warnings
    ), warnings
    assert sut.record_messages("wf-1", "isolation-skipped"), "deploy-green must record why the slots are not isolated"

    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2")
    assert sut.run_manual_rollback("wf-back") == 0
    assert sut.run_cleanup(all_services=True) == 0
    assert isolation_policies(sut) == set()
    after = snapshot(sut, *team)
    for key, obj in before.items():
        assert changed_paths(obj, after[key]) == set(), f"{key} changed"


def test_isolation_made_while_pods_were_open_is_removed_once_a_team_policy_guards_them(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    sut = make_service("rw-netpol")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert isolation_policies(sut) == {"cart-blue-isolation", "cart-green-isolation"}

    sut.apply(default_deny_ingress())
    sut.deploy(IMAGE_V3, "wf-2", tmp_path / "2")
    assert isolation_policies(sut) == set(), "kept beside the default-deny, ours would let everyone in"
    assert any("default-deny-ingress" in w for w in sut.record_messages("wf-2", "isolation-skipped"))


def test_policies_that_leave_ingress_open_do_not_stop_isolation(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-netpol", traffic=HELM_TRAFFIC)
    install_helm_release(sut)
    other_app = default_deny_ingress()
    other_app["metadata"]["name"] = "payments-deny"
    other_app["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "payments"}}
    sut.apply(egress_only_policy(), other_app)

    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    assert isolation_policies(sut) == {"cart-blue-isolation", "cart-green-isolation"}
    assert not any("slot isolation" in w for w in sut.record_messages("wf-1", "warning"))
