"""Where a workflow's time went, step by step, from its Pods and its nodes, as the benchmarks print it.

Kubernetes and Argo stamp times to the second, so every figure here is coarse; wall times are measured by the caller.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from testenv.demo_service import workflow_pods
from testenv.local_cluster import LocalCluster
from testenv.workflow_run import StepNode, WorkflowRun


def timestamp(value: str) -> datetime.datetime:
    """An API server time stamp (``2026-11-27T06:24:03Z``) as an aware datetime."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _pods_by_node(cluster: LocalCluster, run: WorkflowRun) -> dict[str, dict[str, Any]]:
    """The run's Pods, keyed by the id of the node each one ran."""
    by_node: dict[str, dict[str, Any]] = {}
    for pod in workflow_pods(cluster, run.raw["metadata"]["namespace"], run.name):
        node_id = (pod["metadata"].get("annotations") or {}).get("workflows.argoproj.io/node-id")
        if node_id:
            by_node[node_id] = pod
    return by_node


def _terminated(pod: dict[str, Any], node: StepNode) -> dict[str, Any] | None:
    """The terminated state of ``node``'s container in ``pod``, or None while it runs or if it never started."""
    # A step's own Pod runs it in `main`; a shared Pod runs each step in the container named after it.
    container = "main" if node.type == "Pod" else node.display_name
    status = next((c for c in (pod.get("status") or {}).get("containerStatuses", []) if c["name"] == container), None)
    terminated: dict[str, Any] | None = ((status or {}).get("state") or {}).get("terminated")
    return terminated


def program_ended(cluster: LocalCluster, run: WorkflowRun, template: str) -> datetime.datetime | None:
    """When the program of ``template``'s last attempt in ``run`` ended, as its container's status says.

    Not the node's ``finishedAt``: Argo stamps a container node of a shared Pod when it next looks at the Pod, which
    with the default requeue time can be seconds after the program ended.
    """
    attempts = [node for node in run.runs_of(template) if node.pod_node]
    if not attempts:
        return None
    pod = _pods_by_node(cluster, run).get(attempts[-1].pod_node)
    terminated = None if pod is None else _terminated(pod, attempts[-1])
    return None if terminated is None else timestamp(terminated["finishedAt"])


def step_split(cluster: LocalCluster, run: WorkflowRun) -> dict[str, dict[str, float]]:
    """Per step, in seconds, where each step's time went, whether it ran in a Pod of its own or shared one.

    Controller queueing (the previous step's end to this Pod's creation), Pod start (creation to the step's container
    starting), the step's own work (its container running), and the controller noticing the end (the container's end
    to the node's end).
    """
    by_node = _pods_by_node(cluster, run)
    split: dict[str, dict[str, float]] = {}
    previous_end: datetime.datetime | None = None
    previous_pod, previous_exit = "", None
    for node in run.steps():
        pod = by_node.get(node.pod_node)
        if pod is None or not node.finished_at:
            continue
        terminated = _terminated(pod, node)
        if terminated is None:
            continue
        created = timestamp(pod["metadata"]["creationTimestamp"])
        container_start, finished = timestamp(terminated["startedAt"]), timestamp(terminated["finishedAt"])
        # In a shared Pod every container starts with the Pod, and a later step's program waits until the step
        # before it has exited. No object records the moment it goes on, so a later step's own work runs from the
        # previous step's exit; it has no queueing or Pod start.
        if node.pod_node == previous_pod and previous_exit is not None:
            started = max(container_start, previous_exit)
            queueing, pod_start = 0.0, 0.0
        else:
            started = container_start
            queueing = (created - previous_end).total_seconds() if previous_end else 0.0
            pod_start = (container_start - created).total_seconds()
        split[node.template] = {
            "queueing": queueing,
            "pod start": pod_start,
            "own work": (finished - started).total_seconds(),
            "noticing": (timestamp(node.finished_at) - finished).total_seconds(),
        }
        previous_pod, previous_exit = node.pod_node, finished
        previous_end = timestamp(node.finished_at)
    return split


def logged_work(log: str) -> float | None:
    """Seconds a step worked, from its own log lines, which it stamps to the millisecond; None without any.

    From its ``waited`` line (or its first line, when it waited for nothing) to its last line.
    """
    stamps: list[tuple[datetime.datetime, str]] = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line a library printed, not the step's own
        if isinstance(entry, dict) and isinstance(entry.get("time"), str):
            stamps.append((datetime.datetime.fromisoformat(entry["time"]), str(entry.get("action", ""))))
    if not stamps:
        return None
    begun = next((at for at, action in stamps if action == "waited"), stamps[0][0])
    return (stamps[-1][0] - begun).total_seconds()


def readiness_span(pods: list[dict[str, Any]]) -> float:
    """Seconds from the first of ``pods`` being created to the last of them turning Ready (0 for none)."""
    created = [timestamp(pod["metadata"]["creationTimestamp"]) for pod in pods]
    ready = [
        timestamp(condition["lastTransitionTime"])
        for pod in pods
        for condition in (pod.get("status") or {}).get("conditions") or []
        if condition["type"] == "Ready" and condition["status"] == "True"
    ]
    if not created or len(ready) < len(pods):
        return 0.0
    return (max(ready) - min(created)).total_seconds()
