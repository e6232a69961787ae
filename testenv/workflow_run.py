"""A finished or running Argo Workflow as `argo get -o json` shows it, with the questions the end-to-end tests ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepNode:
    """One node of the workflow's graph: a step's Pod, a retry group, a DAG or the exit handler."""

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
        found = []
        for node_id, node in ((self.raw.get("status") or {}).get("nodes") or {}).items():
            outputs = node.get("outputs") or {}
            inputs = node.get("inputs") or {}
            found.append(
                StepNode(
                    id=node_id,
                    display_name=str(node.get("displayName", "")),
                    template=str(node.get("templateName", "")),
                    type=str(node.get("type", "")),
                    phase=str(node.get("phase", "")),
                    started_at=str(node.get("startedAt") or ""),
                    finished_at=str(node.get("finishedAt") or ""),
                    message=str(node.get("message", "")),
                    inputs={p["name"]: str(p.get("value", "")) for p in inputs.get("parameters") or []},
                    outputs={p["name"]: str(p.get("value", "")) for p in outputs.get("parameters") or []},
                    exit_code=str(outputs.get("exitCode", "")),
                )
            )
        return found

    def pods(self) -> list[StepNode]:
        """The nodes that ran a Pod, in the order they started."""
        return sorted((n for n in self.nodes() if n.type == "Pod"), key=lambda n: (n.started_at, n.finished_at))

    def pod_steps(self, template: str) -> list[StepNode]:
        """Each Pod that ran ``template`` (more than one means Argo retried it)."""
        return [n for n in self.pods() if n.template == template]

    def step_order(self) -> list[str]:
        """Templates of the Pods in the order they started; retries appear once per attempt."""
        return [n.template for n in self.pods()]

    def finished_before(self, first: str, then: str) -> bool:
        """Whether every Pod of ``first`` finished before any Pod of ``then`` started."""
        firsts, thens = self.pod_steps(first), self.pod_steps(then)
        if not firsts or not thens:
            return False
        return max(n.finished_at for n in firsts) <= min(n.started_at for n in thens)

    def output(self, template: str, name: str) -> str:
        """An output parameter of the last successful Pod of ``template``."""
        succeeded = [n for n in self.pod_steps(template) if n.phase == "Succeeded"]
        if not succeeded:
            raise KeyError(f"no successful {template} step in {self.name}: {self.step_order()}")
        return succeeded[-1].outputs[name]

    def input(self, template: str, name: str) -> str:
        """An input parameter of the last Pod of ``template``, as the controller resolved it."""
        ran = self.pod_steps(template)
        if not ran:
            raise KeyError(f"no {template} step in {self.name}: {self.step_order()}")
        return ran[-1].inputs[name]

    def summary(self) -> str:
        """One line per Pod, for assertion messages."""
        return (
            "\n".join(f"{n.template:>14} {n.phase:<9} exit={n.exit_code or '-'} {n.message}" for n in self.pods())
            + f"\nworkflow {self.name}: {self.phase} {self.message}"
        )
