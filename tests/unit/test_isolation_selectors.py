"""Which NetworkPolicies govern a slot's pods: LabelSelector matching and the policy types that imply ingress."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steps.isolation import restricts_ingress, selector_matches

LABELS = {"app.kubernetes.io/name": "cart", "argo-bluegreen.io/slot": "green", "tier": "web"}

key = st.sampled_from(["app", "tier", "team", "argo-bluegreen.io/slot"])
value = st.sampled_from(["cart", "web", "blue", "green"])
labels = st.dictionaries(key, value, max_size=4)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),  # podSelector: {} is every pod of the namespace, the default-deny shape
        ({"matchLabels": {"app.kubernetes.io/name": "cart"}}, True),
        ({"matchLabels": {"app.kubernetes.io/name": "payments"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}, False),
        ({"matchExpressions": [{"key": "argo-bluegreen.io/slot", "operator": "NotIn", "values": ["blue"]}]}, True),
        ({"matchExpressions": [{"key": "argo-bluegreen.io/slot", "operator": "NotIn", "values": ["green"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        # Both parts must hold.
        (
            {
                "matchLabels": {"app.kubernetes.io/name": "cart"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}],
            },
            False,
        ),
    ],
)
def test_selector_matches_as_the_api_defines_it(selector: dict[str, Any], expected: bool) -> None:
    assert selector_matches(selector, LABELS) is expected


@given(labels, st.data())
def test_a_selector_made_of_the_pods_own_labels_selects_it(pod: dict[str, str], data: st.DataObject) -> None:
    chosen = data.draw(st.sets(st.sampled_from(sorted(pod)) if pod else st.nothing()))
    selector = {"matchLabels": {k: pod[k] for k in chosen}}
    assert selector_matches(selector, pod)
    for k in chosen:
        excluded = {"matchExpressions": [{"key": k, "operator": "NotIn", "values": [pod[k]]}]}
        assert not selector_matches(excluded, pod)


@given(labels, key, value)
def test_in_and_notin_on_one_value_are_exact_opposites_when_the_key_is_set(
    pod: dict[str, str], k: str, v: str
) -> None:
    within = {"matchExpressions": [{"key": k, "operator": "In", "values": [v]}]}
    outside = {"matchExpressions": [{"key": k, "operator": "NotIn", "values": [v]}]}
    if k in pod:
        assert selector_matches(within, pod) is not selector_matches(outside, pod)
    else:
        assert not selector_matches(within, pod) and selector_matches(outside, pod)


@pytest.mark.parametrize(
    ("policy_types", "egress", "expected"),
    [
        (None, None, True),  # no policyTypes: Ingress is always implied
        (None, [{"ports": [{"port": 53}]}], True),
        (["Ingress"], None, True),
        (["Egress"], [{"ports": [{"port": 53}]}], False),
        (["Ingress", "Egress"], None, True),
    ],
)
def test_ingress_is_governed_unless_the_policy_lists_only_egress(
    policy_types: list[str] | None, egress: list[Any] | None, expected: bool
) -> None:
    body: dict[str, Any] = {"podSelector": {}}
    if policy_types is not None:
        body["policyTypes"] = policy_types
    if egress is not None:
        body["egress"] = egress
    assert restricts_ingress({"spec": body}) is expected
