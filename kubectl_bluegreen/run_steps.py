"""Which nodes of an Argo workflow's status are the run's steps, and the order they ran in.

A step runs as a Pod of its own or as a container of a Pod that runs several (the release Pod, an Argo
containerSet). Such a Pod's own node is not a step, and neither is its outputs container. A step whose predecessor
in the Pod failed does not run: it fails with the words Argo's executor uses for a container it does not start, and
is not a step that ran. The containers of one Pod all start with it, and the controller may mark several of them
finished at once, so they are ordered by the pipeline: in a shared Pod a step runs after every step of that Pod that
comes before it in :class:`bluegreen_contract.Step`, and the outputs container after them all. When preflight
leaves the release to Pods of their own (a service that verifies images or waits for promotion), the release Pod's
later containers end at once without doing anything, and its outputs say so: those containers are not steps that
ran either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bluegreen_contract import SET_OUTPUTS_CONTAINER, Step
from steps.kube import Obj
from steps.preflight_handoff import HANDED_OFF_STEPS, released_elsewhere

#: Why a container did not run its step: one it waits for failed (Argo's executor's words, which the steps reuse).
NEVER_STARTED = re.compile(r'dependency "[^"]+" exited with non-zero code')
_PIPELINE = [step.value for step in Step]


def _place_in_pipeline(node: Obj) -> int:
    name = str(node.get("displayName"))
    return _PIPELINE.index(name) if name in _PIPELINE else len(_PIPELINE)


def waited_for(nodes: Mapping[str, Obj], node_id: str) -> list[str]:
    """The ids of the containers of the same Pod that container ``node_id`` runs after; none for any other node."""
    node = nodes[node_id]
    if node.get("type") != "Container":
        return []
    place = _place_in_pipeline(node)
    return [
        key
        for key, other in nodes.items()
        if other.get("type") == "Container"
        and other.get("boundaryID") == node.get("boundaryID")
        and _place_in_pipeline(other) < place
    ]


def place_in_pod(nodes: Mapping[str, Obj], node_id: str) -> int:
    """0 for a node that is no container; 1 for a container that waits for none, else one more than those it does."""
    if nodes[node_id].get("type") != "Container":
        return 0
    return 1 + max((place_in_pod(nodes, parent) for parent in waited_for(nodes, node_id)), default=0)


def never_started(node: Obj) -> bool:
    """A container that did not run its step because one it waits for failed (Error from the executor, else Failed)."""
    return node.get("phase") in ("Error", "Failed") and bool(NEVER_STARTED.search(str(node.get("message") or "")))


def handed_off(nodes: Mapping[str, Obj], node: Obj) -> bool:
    """A container of a release Pod whose preflight left the release to Pods of their own: it did nothing."""
    if node.get("displayName") not in {step.value for step in HANDED_OFF_STEPS}:
        return False
    pod = nodes.get(str(node.get("boundaryID"))) or {}
    parameters = (pod.get("outputs") or {}).get("parameters") or []
    return released_elsewhere({str(p.get("name")): str(p.get("value", "")) for p in parameters})


def step_node_ids(nodes: Mapping[str, Obj]) -> list[str]:
    """The ids of the nodes that ran a step, in the order they ran (``nodes`` is the status's map by id)."""
    shared = {n.get("boundaryID") for n in nodes.values() if n.get("type") == "Container"}

    def ran_a_step(node_id: str, node: Obj) -> bool:
        if node.get("type") == "Pod":
            return node_id not in shared
        return (
            node.get("type") == "Container"
            and node.get("displayName") != SET_OUTPUTS_CONTAINER
            and not never_started(node)
            and not handed_off(nodes, node)
        )

    def order(node_id: str) -> tuple[str, int, str]:
        node = nodes[node_id]
        pod = nodes.get(str(node.get("boundaryID")), node) if node.get("type") == "Container" else node
        return (str(pod.get("startedAt") or "~"), place_in_pod(nodes, node_id), str(node.get("finishedAt") or "~"))

    return sorted((key for key, node in nodes.items() if ran_a_step(key, node)), key=order)


__all__ = ["NEVER_STARTED", "handed_off", "never_started", "place_in_pod", "step_node_ids", "waited_for"]
