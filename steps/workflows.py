"""Whether the Argo Workflow that holds a service is still running: the basis of lock checks and repair."""

from __future__ import annotations

from enum import StrEnum

from steps.kube import WORKFLOWS, Kube

FINISHED_PHASES = {"Succeeded", "Failed", "Error"}


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
    return RunState.finished if phase in FINISHED_PHASES else RunState.running


__all__ = ["FINISHED_PHASES", "RunState", "run_state"]
