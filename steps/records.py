"""DeploymentRecords: the durable audit trail, one object per run, plus an Event per transition.

Records are custom resources, not Events, because Events expire after an hour by default and the Workflow object is
garbage-collected by its TTL; a record stays until ``historyLimit`` newer ones push it out. Each is labelled with
its service and workflow, so ``kubectl get bgr -l argo-bluegreen.io/service=user-service`` lists a service's
history. A record is named after the workflow that runs it, which makes opening it idempotent (invariant I4), and it
is closed exactly once with an outcome (invariant I6).
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENT_RECORDS, EVENTS
from steps.clock import now
from steps.errors import Conflict
from steps.kube import Kube, Obj
from steps.log import StepLog

MAX_ENTRIES = 500
OPEN_PHASES = {
    spec.Phase.deploying.value,
    spec.Phase.switching.value,
    spec.Phase.verifying.value,
    spec.Phase.rolling_back.value,
}


class Records:
    """Reads and writes one service's DeploymentRecords and Events."""

    def __init__(self, kube: Kube, namespace: str, service: str, log: StepLog) -> None:
        self.kube = kube
        self.namespace = namespace
        self.service = service
        self.log = log

    def get(self, name: str) -> spec.DeploymentRecord | None:
        """The record, read into the model once, or None when it does not exist."""
        found = self.kube.get(DEPLOYMENT_RECORDS, self.namespace, name)
        return None if found is None else spec.DeploymentRecord.model_validate(found)

    def open(self, name: str, record_spec: spec.DeploymentRecordSpec) -> None:
        """Create the run's record in phase Deploying; a record that already exists is kept as it is."""
        body = {
            "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
            "kind": spec.RECORD_KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {spec.SERVICE_LABEL: self.service, spec.WORKFLOW_LABEL: record_spec.workflow[:63]},
            },
            "spec": record_spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        try:
            self.kube.create(DEPLOYMENT_RECORDS, self.namespace, body)
        except Conflict:
            existing = self.get(name)
            if existing is None:
                raise
            self.log("record-exists", record=name)
            if existing.status is None:  # created, but the reply (and the phase after it) was lost
                self.set_phase(name, spec.Phase.deploying)
            return
        self.set_phase(name, spec.Phase.deploying)
        self.log("record-opened", record=name, image=record_spec.image)

    def modify_status(self, name: str, change: Any) -> Obj:
        """Read the record's status into the model, let ``change`` edit it, write it back if it changed."""

        def mutate(live: Obj) -> bool:
            status = spec.DeploymentRecordStatus.model_validate(live.get("status") or {})
            before = status.model_dump(mode="json")
            change(status)
            if status.model_dump(mode="json") == before:
                return False
            live["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
            return True

        return self.kube.modify(DEPLOYMENT_RECORDS, self.namespace, name, mutate, subresource="status")

    def set_phase(self, name: str, phase: spec.Phase, **fields: str) -> Obj:
        """Move the record to ``phase`` (and set e.g. ``switched_at``); a no-op when already there."""

        def change(status: spec.DeploymentRecordStatus) -> None:
            status.phase = phase
            for key, value in fields.items():
                setattr(status, key, value)

        return self.modify_status(name, change)

    def append(self, name: str, step: str, event: str, message: str = "", **details: Any) -> None:
        """Add one entry; the oldest entries beyond the cap are dropped, the first (the start) is kept.

        Without a record (a repair of a run that never opened one) the entry goes to the log only.
        """
        if not name:
            self.log("unrecorded", step=step, event=event, message=message, **details)
            return

        # Built once: when a write whose reply was lost is retried and re-applied after a fresh read, the same
        # entry is found already there instead of being added twice.
        entry = spec.RecordEntry(
            time=now(), step=step, event=event, message=message, details={k: str(v) for k, v in details.items()}
        )

        def change(status: spec.DeploymentRecordStatus) -> None:
            if entry in status.entries:
                return
            status.entries.append(entry)
            if len(status.entries) > MAX_ENTRIES:
                status.entries[1:] = status.entries[-(MAX_ENTRIES - 1) :]

        self.modify_status(name, change)

    def record_gate(self, name: str, gate: spec.Gate, slot: spec.Slot, image: str, *, passed: bool, step: str) -> None:
        """Keep the latest verdict of ``gate`` for ``slot`` running ``image``; without a record, the log only."""
        if not name:
            self.log("unrecorded-gate", gate=gate.value, slot=slot.value, image=image, passed=passed)
            return
        result = spec.GateResult(gate=gate, slot=slot, image=image, passed=passed, time=now(), step=step)

        def change(status: spec.DeploymentRecordStatus) -> None:
            kept = [g for g in status.gates if (g.gate, g.slot, g.image) != (gate, slot, image)]
            status.gates = [*kept, result][-spec.MAX_GATE_RESULTS :]

        self.modify_status(name, change)

    def close(self, name: str, phase: spec.Phase, reason: str = "") -> Obj:
        """Close the record with its final phase and outcome; a closed record keeps its first outcome."""

        def change(status: spec.DeploymentRecordStatus) -> None:
            if status.finished_at:
                return
            status.phase = phase
            status.outcome = phase.value
            status.reason = reason[:2000]
            status.finished_at = now()

        closed = self.modify_status(name, change)
        self.log("record-closed", record=name, outcome=phase.value, reason=reason)
        return closed

    def history(self) -> list[Obj]:
        """This service's records, oldest first."""
        records = self.kube.list(DEPLOYMENT_RECORDS, self.namespace, f"{spec.SERVICE_LABEL}={self.service}")
        return sorted(records, key=lambda r: (r["spec"].get("startedAt", ""), r["metadata"]["name"]))

    def prune(self, history_limit: int) -> list[str]:
        """Delete the oldest closed records beyond ``history_limit``; open records are never deleted."""
        records = self.history()
        excess = len(records) - history_limit
        removed = []
        for record in records:
            if excess <= 0:
                break
            if (record.get("status") or {}).get("phase") in OPEN_PHASES:
                continue
            if self.kube.delete(
                DEPLOYMENT_RECORDS,
                self.namespace,
                record["metadata"]["name"],
                resource_version=record["metadata"]["resourceVersion"],
            ):
                removed.append(record["metadata"]["name"])
            excess -= 1
        if removed:
            self.log("records-pruned", removed=removed)
        return removed

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event on the BlueGreenDeployment, for ``kubectl describe bgd``; best effort by nature."""
        stamp = now()
        digest = hashlib.sha256(f"{reason}{message}{stamp}".encode()).hexdigest()[:10]
        body = {
            "metadata": {"name": f"{self.service}.{digest}", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
                "kind": spec.KIND,
                "name": self.service,
                "namespace": self.namespace,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": "argo-bluegreen"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        with contextlib.suppress(Conflict):  # the same event in the same second is already there
            self.kube.create(EVENTS, self.namespace, body)


__all__ = ["OPEN_PHASES", "Records"]
