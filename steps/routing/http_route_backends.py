"""Flipping a user-owned HTTPRoute: only the backendRefs that name this service, in the rules that carry it.

``rules`` and ``parentRefs`` are atomic lists in the Gateway API's schema, so a server-side apply of our own rules
would replace the team's: their ``/static`` rules, filters, timeouts and ``sectionName`` would be gone. The steps
therefore read the route, change the backendRefs of this service inside each rule that has one (the application's
Service, or either slot Service), and write it back guarded by its resourceVersion. The service's backendRefs
become two, one per slot Service, sharing the weight the team gave the service; every other backendRef, filter,
match and rule stays as found.

After each write the Gateway reports through ``status.parents[].conditions``; :func:`refusals` reads ``Accepted``
and ``ResolvedRefs`` for the route's current generation, so a route the Gateway refuses fails the step by name.

Gateway API reference: https://gateway-api.sigs.k8s.io/reference/spec/#httproute,
https://gateway-api.sigs.k8s.io/reference/spec/#httpbackendref (weight defaults to 1) and
https://gateway-api.sigs.k8s.io/reference/spec/#routeparentstatus.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import bluegreen_spec as spec
from steps.routing.slot_services import slot_service_name

Rule = dict[str, Any]
#: Conditions a Gateway sets on each parent of a route; False on either means the route does not carry traffic.
REQUIRED_CONDITIONS = ("Accepted", "ResolvedRefs")


@dataclass(frozen=True)
class Backends:
    """What counts as this service among a route's backendRefs."""

    service: str
    namespace: str
    main_service: str
    slot_header: str = ""

    def slot_of(self, ref: dict[str, Any]) -> spec.Slot | None:
        """The slot a backendRef goes to, if it names a slot Service."""
        if not self._is_local_service(ref):
            return None
        for slot in spec.Slot:
            if ref.get("name") == slot_service_name(self.service, slot):
                return slot
        return None

    def _is_local_service(self, ref: dict[str, Any]) -> bool:
        return bool(
            ref.get("group", "") == ""
            and ref.get("kind", "Service") == "Service"
            and ref.get("namespace", self.namespace) == self.namespace
        )

    def is_ours(self, ref: dict[str, Any]) -> bool:
        """Whether a backendRef sends traffic to this service, to either slot or to the application's Service."""
        return self.slot_of(ref) is not None or (self._is_local_service(ref) and ref.get("name") == self.main_service)


def carrying_rules(route_spec: dict[str, Any], backends: Backends) -> list[tuple[int, Rule]]:
    """Every rule with a backendRef for the service, as (index, rule)."""
    return [
        (index, rule)
        for index, rule in enumerate(route_spec.get("rules") or [])
        if any(backends.is_ours(ref) for ref in rule.get("backendRefs") or [])
    ]


def rule_slot(rule: Rule, backends: Backends) -> spec.Slot | None:
    """The slot holding all of the service's weight in one rule; None when split, zero or not per slot yet."""
    weights: dict[spec.Slot | None, int] = {}
    for ref in rule.get("backendRefs") or []:
        if backends.is_ours(ref):
            slot = backends.slot_of(ref)
            weights[slot] = weights.get(slot, 0) + int(ref.get("weight", 1))
    holding = [slot for slot, weight in weights.items() if weight > 0]
    return holding[0] if len(holding) == 1 else None


def live_slot(route_spec: dict[str, Any], backends: Backends) -> spec.Slot | None:
    """The slot every rule carrying the service sends it to; None when they disagree or none carries it."""
    slots = {rule_slot(rule, backends) for _index, rule in carrying_rules(route_spec, backends)}
    return slots.pop() if len(slots) == 1 else None


def _with_slot_header(filters: list[Any], header: str, slot: spec.Slot) -> list[Any]:
    """The ref's filters with our response header set, merged into its ResponseHeaderModifier if it has one."""
    result = copy.deepcopy(filters)
    for item in result:
        if item.get("type") == "ResponseHeaderModifier":
            modifier = item.setdefault("responseHeaderModifier", {})
            kept = [h for h in modifier.get("set") or [] if h.get("name", "").lower() != header]
            modifier["set"] = [*kept, {"name": header, "value": slot.value}]
            return result
    result.append(
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": header, "value": slot.value}]}}
    )
    return result


def flip_rule(rule: Rule, slot: spec.Slot, backends: Backends) -> Rule:
    """The rule with the service's backendRefs replaced by one per slot Service; the rest untouched."""
    refs = rule.get("backendRefs") or []
    ours = [ref for ref in refs if backends.is_ours(ref)]
    total = sum(int(ref.get("weight", 1)) for ref in ours)
    template = next((ref for ref in ours if backends.slot_of(ref) is slot), ours[0])
    flipped: list[Any] = []
    placed = False
    for ref in refs:
        if not backends.is_ours(ref):
            flipped.append(ref)
        elif not placed:
            placed = True
            for s in spec.Slot:
                new = copy.deepcopy(template)
                new["name"] = slot_service_name(backends.service, s)
                new["weight"] = total if s is slot else 0
                if backends.slot_header:
                    new["filters"] = _with_slot_header(new.get("filters") or [], backends.slot_header, s)
                flipped.append(new)
    changed = dict(rule)
    changed["backendRefs"] = flipped
    return changed


def flip(route_spec: dict[str, Any], slot: spec.Slot, backends: Backends) -> dict[str, Any]:
    """A copy of the HTTPRoute spec with every rule carrying the service sending all of its weight to ``slot``."""
    result = copy.deepcopy(route_spec)
    result["rules"] = [
        flip_rule(rule, slot, backends) if any(backends.is_ours(r) for r in rule.get("backendRefs") or []) else rule
        for rule in result.get("rules") or []
    ]
    return result


def refusals(route: dict[str, Any]) -> list[str]:
    """Parents whose Gateway refuses the route's current generation, each as ``parent: Condition=False (reason)``."""
    generation = route["metadata"].get("generation")
    problems = []
    for parent in (route.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        namespace = ref.get("namespace", route["metadata"].get("namespace"))
        who = f"{ref.get('kind', 'Gateway')} {namespace}/{ref.get('name')}"
        if ref.get("sectionName"):
            who += f" section {ref['sectionName']}"
        for condition in parent.get("conditions") or []:
            if condition.get("type") not in REQUIRED_CONDITIONS or condition.get("observedGeneration") != generation:
                continue
            if condition.get("status") == "False":
                problems.append(
                    f"{who}: {condition['type']}=False ({condition.get('reason', '')}: {condition.get('message', '')})"
                )
    return problems


def reported(route: dict[str, Any]) -> bool:
    """Whether every parent reports both conditions for the current generation."""
    generation = route["metadata"].get("generation")
    parents = (route.get("status") or {}).get("parents") or []
    return bool(parents) and all(
        {
            c.get("type")
            for c in parent.get("conditions") or []
            if c.get("observedGeneration") == generation and c.get("status") in {"True", "False"}
        }
        >= set(REQUIRED_CONDITIONS)
        for parent in parents
    )


__all__ = [
    "REQUIRED_CONDITIONS",
    "Backends",
    "carrying_rules",
    "flip",
    "flip_rule",
    "live_slot",
    "refusals",
    "reported",
]
