"""A service's BlueGreenDeployment: its validated spec, and its status as the steps' record of intent.

The status says which slot is live, which one a run is moving to and which run holds the service. It is written
*before* every routing change (invariant I3), so a crash at any point leaves enough behind for the next step, the
exit handler or the repair cron to finish or undo the change. It is never trusted for safety decisions on its own:
cleanup and rollback re-read the live route itself (invariant I2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS
from steps.errors import BadInput
from steps.kube import Kube, Obj

HISTORY_IN_STATUS = 10


def load(kube: Kube, namespace: str, service: str) -> tuple[spec.BlueGreenDeployment, Obj]:
    """The validated resource and the raw object; a missing or invalid one fails before any write."""
    raw = kube.get(BLUE_GREEN_DEPLOYMENTS, namespace, service)
    if raw is None:
        raise BadInput(
            f"BlueGreenDeployment {namespace}/{service} does not exist; create one for the service "
            "(see examples/user-service.yaml) or check the service parameter"
        )
    try:
        return spec.load_resource(raw), raw
    except spec.SpecError as error:
        problems = "; ".join(error.problems)
        raise BadInput(f"BlueGreenDeployment {namespace}/{service} is invalid: {problems}; fix the spec") from None


def status_of(raw: Obj) -> spec.BlueGreenDeploymentStatus:
    """The status as the model, with defaults for a resource no run has touched yet."""
    return spec.BlueGreenDeploymentStatus.model_validate(raw.get("status") or {})


def update_status(
    kube: Kube, namespace: str, service: str, change: Callable[[spec.BlueGreenDeploymentStatus], Any]
) -> spec.BlueGreenDeploymentStatus:
    """Apply ``change`` to the live status with optimistic concurrency; returns the status as written."""
    result: list[spec.BlueGreenDeploymentStatus] = []

    def mutate(live: Obj) -> bool:
        status = status_of(live)
        before = status.model_dump(mode="json")
        change(status)
        result[:] = [status]
        if status.model_dump(mode="json") == before:
            return False
        live["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        return True

    kube.modify(BLUE_GREEN_DEPLOYMENTS, namespace, service, mutate, subresource="status")
    return result[0]


def add_history(status: spec.BlueGreenDeploymentStatus, entry: spec.HistoryEntry) -> None:
    """Put ``entry`` first in the status history (replacing an older line of the same record), keep it short."""
    rest = [h for h in status.history if h.record != entry.record]
    status.history = [entry, *rest][:HISTORY_IN_STATUS]


__all__ = ["add_history", "load", "status_of", "update_status"]
