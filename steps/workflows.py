"""Whether the Argo Workflow that holds a service is still running: the basis of lock checks and repair."""

from __future__ import annotations

from enum import StrEnum

from bluegreen_contract import WORKFLOW_FINISHED_PHASES, WORKFLOWS
from steps.kube import Kube


class RunState(StrEnum):
    """What became of a workflow."""

    running = "running"
    finished = "finished"
    gone = "gone"


def run_state(kube: Kube, namespace: str, workflow: str) -> RunState:
    """Running, finished (any final phase) or gone (deleted, or its TTL passed)."""
    found = kube.get(WORKFLOWS, namespace, workflow)
    if found is None:
        return RunState.gone
    phase = (found.get("status") or {}).get("phase")
    return RunState.finished if phase in WORKFLOW_FINISHED_PHASES else RunState.running


__all__ = ["RunState", "run_state"]
