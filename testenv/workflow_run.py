"""A finished or running Argo Workflow as `argo get -o json` shows it, with the questions the end-to-end tests ask."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubectl_bluegreen.run_steps import step_node_ids, waited_for


@dataclass(frozen=True)
class StepNode:
    """One node of the workflow's graph: a step's Pod, a step's container in a shared Pod, a retry group, a DAG...

    For a step's container, ``template`` is the step (the container's name), ``started_at`` is when the steps it
    waits for had finished (Argo stamps every container of a Pod with the Pod's start), and ``inputs``, ``outputs``
    and ``pod_node`` are those of the Pod's node.
    """

    id: str
    display_name: str
    template: str
    type: str
    phase: str
    started_at: str
    finished_at: str
    message: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    exit_code: str
    #: The node of the Pod this node ran in: itself for a step's own Pod, the set's node for a container.
    pod_node: str = ""


@dataclass(frozen=True)
class WorkflowRun:
    """The workflow object, read once."""

    raw: dict[str, Any]

    @property
    def name(self) -> str:
        """The workflow's name."""
        return str(self.raw["metadata"]["name"])

    @property
    def phase(self) -> str:
        """``Succeeded``, ``Failed``, ``Error``, ``Running``, ..."""
        return str((self.raw.get("status") or {}).get("phase", ""))

    @property
    def message(self) -> str:
        """The workflow's status message."""
        return str((self.raw.get("status") or {}).get("message", ""))

    def nodes(self) -> list[StepNode]:
        """Every node, in no particular order."""
        raw = (self.raw.get("status") or {}).get("nodes") or {}
        found = []
        for node_id, node in raw.items():
            pod_node = node_id if node.get("type") == "Pod" else ""
            started_at = str(node.get("startedAt") or "")
            template = str(node.get("templateName", ""))
            source = node
            if node.get("type") == "Container":
                pod_node = str(node.get("boundaryID", ""))
                source = raw.get(pod_node) or {}
                template = str(node.get("displayName", ""))
                ended = [
                    str(raw[parent]["finishedAt"])
                    for parent in waited_for(raw, node_id)
                    if raw[parent].get("finishedAt")
                ]
                if ended:
                    started_at = max(ended)
            outputs = source.get("outputs") or {}
            inputs = source.get("inputs") or {}
            found.append(
                StepNode(
                    id=node_id,
                    display_name=str(node.get("displayName", "")),
                    template=template,
                    type=str(node.get("type", "")),
                    phase=str(node.get("phase", "")),
                    started_at=started_at,
                    finished_at=str(node.get("finishedAt") or ""),
                    message=str(node.get("message", "")),
                    inputs={p["name"]: str(p.get("value", "")) for p in inputs.get("parameters") or []},
                    outputs={p["name"]: str(p.get("value", "")) for p in outputs.get("parameters") or []},
                    exit_code=_exit_code(node)
                    if node.get("type") == "Container"
                    else str(outputs.get("exitCode", "")),
                    pod_node=pod_node,
                )
            )
        return found

    def steps(self) -> list[StepNode]:
        """The nodes that ran a step, in the order they ran: a step's own Pod, or its container in a shared Pod.

        A shared Pod's own node and its outputs container are not steps; the steps in it are, except those that
        never ran because a step they wait for failed (see :mod:`kubectl_bluegreen.run_steps`).
        """
        by_id = {node.id: node for node in self.nodes()}
        return [by_id[node_id] for node_id in step_node_ids((self.raw.get("status") or {}).get("nodes") or {})]

    def runs_of(self, template: str) -> list[StepNode]:
        """Each run of the step ``template`` (more than one means it was retried)."""
        return [n for n in self.steps() if n.template == template]

    def step_order(self) -> list[str]:
        """The steps in the order they started; retries appear once per attempt."""
        return [n.template for n in self.steps()]

    def finished_before(self, first: str, then: str) -> bool:
        """Whether every run of ``first`` finished before any run of ``then`` started."""
        firsts, thens = self.runs_of(first), self.runs_of(then)
        if not firsts or not thens:
            return False
        return max(n.finished_at for n in firsts) <= min(n.started_at for n in thens)

    def output(self, template: str, name: str) -> str:
        """An output parameter of the last successful run of the step ``template``."""
        succeeded = [n for n in self.runs_of(template) if n.phase == "Succeeded"]
        if not succeeded:
            raise KeyError(f"no successful {template} step in {self.name}: {self.step_order()}")
        return succeeded[-1].outputs[name]

    def input(self, template: str, name: str) -> str:
        """An input parameter of the last run of the step ``template``, as the controller resolved it."""
        ran = self.runs_of(template)
        if not ran:
            raise KeyError(f"no {template} step in {self.name}: {self.step_order()}")
        return ran[-1].inputs[name]

    def summary(self) -> str:
        """One line per step, for assertion messages."""
        return (
            "\n".join(f"{n.template:>14} {n.phase:<9} exit={n.exit_code or '-'} {n.message}" for n in self.steps())
            + f"\nworkflow {self.name}: {self.phase} {self.message}"
        )


def _exit_code(node: dict[str, Any]) -> str:
    """A container node's exit code, from the message Argo gives a failed one ("Error (exit code 1): ...")."""
    found = re.search(r"\(exit code (\d+)\)", str(node.get("message") or ""))
    if found:
        return found.group(1)
    return "0" if node.get("phase") == "Succeeded" else ""
