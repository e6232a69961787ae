"""Slot isolation: one slot's pods refuse the other slot's, and the policy never lets in anyone new.

NetworkPolicies only ever add up. A pod that no ingress policy selects accepts everything, so "everyone but the
other slot" narrows its access. A pod that some policy of the team already selects (a namespace default-deny, an
allow-from-the-ingress-controller rule) accepts only what those policies allow; adding "everyone but the other slot"
to that union would open it to every source the team denied. So the isolation policy is created only for pods that
no other ingress policy selects. Otherwise nothing of ours is created (and a policy of ours left from before is
removed), and the run says so: the team's own policies decide who reaches the slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import NETWORK_POLICIES
from steps.kube import Kube, Obj
from steps.log import StepLog


def policy_name(service: str, slot: spec.Slot) -> str:
    """The isolation policy of one slot."""
    return f"{service}-{slot.value}-isolation"


def isolation_policy(namespace: str, service: str, slot: spec.Slot) -> Obj:
    """Pods of ``slot`` accept traffic from anything except the other slot's pods of the same service.

    NetworkPolicies only allow, so "everyone but the other slot" is written as the union of pods outside the
    service, pods outside the other slot, every other namespace, and addresses outside the cluster.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(service, slot),
            "namespace": namespace,
            "labels": {spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot.value},
        },
        "spec": {
            "podSelector": {"matchLabels": {spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot.value}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": spec.SERVICE_LABEL, "operator": "NotIn", "values": [service]}
                                ]
                            }
                        },
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": spec.SLOT_LABEL, "operator": "NotIn", "values": [slot.other.value]}
                                ]
                            }
                        },
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [namespace]}
                                ]
                            }
                        },
                        {"ipBlock": {"cidr": "0.0.0.0/0"}},
                        {"ipBlock": {"cidr": "::/0"}},
                    ]
                }
            ],
        },
    }


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes LabelSelector (matchLabels and matchExpressions) selects an object with ``labels``.

    The empty selector selects everything, as in a NetworkPolicy's ``podSelector: {}``. An operator this code does
    not know counts as a match: for the question "could this policy restrict these pods?" the safe answer is yes.
    """
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def restricts_ingress(policy: Obj) -> bool:
    """Whether a NetworkPolicy governs ingress: listed in policyTypes, or implied when policyTypes is absent."""
    types = policy["spec"].get("policyTypes")
    return True if not types else "Ingress" in types


def foreign_ingress_policies(kube: Kube, namespace: str, service: str, pod_labels: Mapping[str, str]) -> list[str]:
    """The team's NetworkPolicies (not our isolation policies) that govern ingress to pods labelled ``pod_labels``.

    Both slots' pods differ only in the slot label, so one set of labels per slot is checked.
    """
    found = set()
    for policy in kube.list(NETWORK_POLICIES, namespace):
        ours = (policy["metadata"].get("labels") or {}).get(spec.SERVICE_LABEL) == service and policy["metadata"][
            "name"
        ] in {policy_name(service, slot) for slot in spec.Slot}
        if ours or not restricts_ingress(policy):
            continue
        selector = policy["spec"].get("podSelector") or {}
        for slot in spec.Slot:
            if selector_matches(selector, {**pod_labels, spec.SERVICE_LABEL: service, spec.SLOT_LABEL: slot.value}):
                found.add(policy["metadata"]["name"])
    return sorted(found)


@dataclass(frozen=True)
class IsolationOutcome:
    """What :func:`ensure_isolation` did: created the policies, or created none because of ``blocked_by``."""

    blocked_by: tuple[str, ...] = ()

    @property
    def isolated(self) -> bool:
        """Whether the isolation policies are in place."""
        return not self.blocked_by

    def describe(self, namespace: str, service: str) -> str:
        """One line for the record and the log."""
        if self.isolated:
            return f"slots of {service} isolated from each other by NetworkPolicy"
        return skipped_warning(namespace, service, list(self.blocked_by))


def skipped_warning(namespace: str, service: str, blocked_by: list[str]) -> str:
    """Why no isolation policy is created, and what the team can do."""
    names = ", ".join(f"{namespace}/{name}" for name in blocked_by)
    return (
        f"slot isolation not applied: NetworkPolicy {names} already governs ingress to the pods of {service}, and "
        "an isolation policy would widen what it allows (policies add up). To isolate the slots, exclude the other "
        f"slot in your own policy (a podSelector with {spec.SLOT_LABEL} NotIn), or set "
        "spec.traffic.isolateSlots: false to silence this warning"
    )


def ensure_isolation(
    kube: Kube, namespace: str, service: str, pod_labels: Mapping[str, str], log: StepLog
) -> IsolationOutcome:
    """Both slots' isolation policies exist and match, unless the team's policies govern the pods already.

    In that case any policy of ours is removed: it was created while no other policy selected the pods, and since
    then it widens what the team's policy allows.
    """
    blocked_by = foreign_ingress_policies(kube, namespace, service, pod_labels)
    if blocked_by:
        for slot in spec.Slot:
            kube.delete(NETWORK_POLICIES, namespace, policy_name(service, slot))
        log("isolation-skipped", policies=blocked_by)
        return IsolationOutcome(tuple(blocked_by))
    for slot in spec.Slot:
        kube.apply(NETWORK_POLICIES, namespace, isolation_policy(namespace, service, slot))
    log("slots-isolated", policies=[policy_name(service, slot) for slot in spec.Slot])
    return IsolationOutcome()


__all__ = [
    "IsolationOutcome",
    "ensure_isolation",
    "foreign_ingress_policies",
    "isolation_policy",
    "policy_name",
    "selector_matches",
    "skipped_warning",
]
