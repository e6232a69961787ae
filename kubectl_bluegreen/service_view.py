"""One service's state, read once from the cluster: what ``status`` shows as a table and prints as JSON or YAML.

The live slot comes from the route itself (the same router code the switch step uses), not from the status, which
is only the record of intent; the slots' images and availability come from their Deployments; the running workflow
and its current step from the Workflow object.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import (
    BLUE_GREEN_DEPLOYMENTS,
    DEPLOYMENT_RECORDS,
    DEPLOYMENTS,
    WORKFLOW_FINISHED_PHASES,
    WORKFLOW_TEMPLATE_LABEL,
    WORKFLOWS,
)
from kubectl_bluegreen.errors import NotFoundError
from kubectl_bluegreen.submission import pod_steps
from steps import slots
from steps.kube import Kube, Obj
from steps.log import StepLog
from steps.routing import router_for
from steps.service_state import load

RECENT_RUNS = 5


@dataclass(frozen=True)
class SlotView:
    """One slot Deployment."""

    slot: str
    deployment: str
    exists: bool
    image: str = ""
    ready: int = 0
    wanted: int = 0
    available: bool = False
    retain_until: str = ""


@dataclass(frozen=True)
class RunView:
    """The workflow that holds the service, or is waiting for its lock."""

    name: str
    template: str
    phase: str
    started_at: str
    current_steps: list[str]


@dataclass(frozen=True)
class ServiceView:
    """Everything ``kubectl bluegreen status`` shows."""

    namespace: str
    service: str
    router: str
    route: str
    phase: str
    live_slot: str | None
    idle_slot: str | None
    live_image: str | None
    traffic: dict[str, int]
    previous_slot: str | None
    previous_image: str | None
    retain_until: str | None
    slots: list[SlotView]
    workflow: RunView | None
    recent_runs: list[dict[str, Any]] = field(default_factory=list)
    #: What the service's latest run releases against the slot that was live when it started (its record's).
    changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``-o json`` and ``-o yaml``, keyed in camelCase like the Kubernetes objects it comes from."""
        data: dict[str, Any] = _camel(asdict(self))
        return data


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(str(k)): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def read_service(kube: Kube, namespace: str, service: str) -> ServiceView:
    """Read the service's state; a service without a BlueGreenDeployment is :class:`NotFoundError`."""
    if kube.get(BLUE_GREEN_DEPLOYMENTS, namespace, service) is None:
        raise NotFoundError(
            f"BlueGreenDeployment {namespace}/{service} does not exist; check the name and the namespace (-n), "
            "or list them with `kubectl get bluegreendeployments -A`"
        )
    resource, _ = load(kube, namespace, service)
    status = resource.status or spec.BlueGreenDeploymentStatus()
    router = router_for(resource, kube, namespace, StepLog("status", service, stream=io.StringIO()))
    live = router.live_slot()
    slot_views = [_slot_view(kube, namespace, resource, slot) for slot in spec.Slot]
    return ServiceView(
        namespace=namespace,
        service=service,
        router=resource.spec.traffic.router.value,
        route=router.describe(),
        phase=status.phase.value,
        live_slot=live.value if live else None,
        idle_slot=live.other.value if live else None,
        live_image=next((s.image for s in slot_views if live and s.slot == live.value), None) or status.active_image,
        traffic={slot.value: (100 if slot is live else 0) for slot in spec.Slot} if live else {},
        previous_slot=status.previous_slot.value if status.previous_slot else None,
        previous_image=status.previous_image,
        retain_until=status.retain_until,
        slots=slot_views,
        workflow=_run_view(kube, namespace, service, status.workflow),
        recent_runs=[entry.model_dump(by_alias=True, exclude_none=True) for entry in status.history[:RECENT_RUNS]],
        changes=_latest_changes(kube, namespace, status.record),
    )


def _latest_changes(kube: Kube, namespace: str, record: str | None) -> list[str]:
    """The release summary preflight wrote into the latest run's record; empty before any run."""
    found = kube.get(DEPLOYMENT_RECORDS, namespace, record) if record else None
    return list(((found or {}).get("spec") or {}).get("changes") or [])


def _slot_view(kube: Kube, namespace: str, resource: spec.BlueGreenDeployment, slot: spec.Slot) -> SlotView:
    name = slots.deployment_name(resource.service, slot)
    deployment = kube.get(DEPLOYMENTS, namespace, name)
    if deployment is None:
        return SlotView(slot.value, name, exists=False)
    state = slots.availability(deployment)
    annotations = deployment["metadata"].get("annotations") or {}
    return SlotView(
        slot.value,
        name,
        exists=True,
        image=slots.current_image(deployment, resource.spec.container),
        ready=state.ready,
        wanted=state.wanted,
        available=state.available,
        retain_until=str(annotations.get(spec.RETAIN_UNTIL_ANNOTATION, "")),
    )


def _run_view(kube: Kube, namespace: str, service: str, holder: str | None) -> RunView | None:
    """The run that holds the service; else the newest unfinished run for it (queued on the lock, or starting)."""
    workflow: Obj | None = kube.get(WORKFLOWS, namespace, holder) if holder else None
    if workflow is None or _finished(workflow):
        unfinished = [
            w for w in kube.list(WORKFLOWS, namespace, f"{spec.SERVICE_LABEL}={service}") if not _finished(w)
        ]
        workflow = max(unfinished, key=lambda w: str(w["metadata"].get("creationTimestamp", "")), default=None)
    if workflow is None:
        return None
    status = workflow.get("status") or {}
    labels = workflow["metadata"].get("labels") or {}
    return RunView(
        name=str(workflow["metadata"]["name"]),
        template=str(labels.get(WORKFLOW_TEMPLATE_LABEL, "")),
        phase=str(status.get("phase") or "Pending"),
        started_at=str(status.get("startedAt") or ""),
        current_steps=[p.step for p in pod_steps(workflow) if p.phase in {"Pending", "Running"}],
    )


def _finished(workflow: Obj) -> bool:
    return (workflow.get("status") or {}).get("phase") in WORKFLOW_FINISHED_PHASES


__all__ = ["RunView", "ServiceView", "SlotView", "read_service"]
