"""Manual promotion: find a run that waits for a person, promote or abort it, and tell a resume from the timeout.

A run with ``spec.promotion.mode: manual`` suspends after smoke on an Argo ``suspend`` node (the DAG task
:data:`bluegreen_contract.PROMOTION_GATE_TASK`). Promoting and aborting change that node through the Kubernetes API,
the way Argo's own ``workflow/util`` does for ``argo resume`` and ``argo stop --node-field-selector`` when no Argo
server is involved: read the Workflow, set the suspended node's phase (``Succeeded`` resumes, ``Failed`` fails the
DAG so the exit handler rolls back), its message and ``finishedAt``, and write the Workflow back with its
resourceVersion, reading again on a conflict. The controller picks the change up on its next pass.

The suspend node also carries the promotion timeout as its ``duration``. Argo *resumes* a suspend node whose
duration has passed, which would switch traffic nobody approved, so the step after it (``confirm-promotion``) reads
how the wait ended: a promotion in the record, or a node that finished before its duration did, is a person's
decision (the Argo UI's Resume and ``argo resume`` included); a node that finished at its duration is the timeout, and
the step fails the run.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/walk-through/suspending/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, PROMOTION_GATE_TASK, WORKFLOWS
from steps.clock import now, parse_timestamp
from steps.context import record_name
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube, Obj
from steps.log import StepLog
from steps.records import Records

#: What records and node messages name as the way a decision was made.
VIA_PLUGIN = "kubectl-bluegreen"
VIA_ARGO = "argo"
VIA_TIMEOUT = "timeout"
#: Who a resume is credited to when Argo left no name: the UI without SSO, or ``argo resume`` with a kubeconfig.
UNKNOWN_ARGO_USER = "someone outside kubectl-bluegreen (Argo UI or argo resume)"

#: Argo's labels for the last person who acted on a workflow (workflow/common/common.go ``LabelKeyActor*``).
ACTOR_LABELS = (
    "workflows.argoproj.io/actor-preferred-username",
    "workflows.argoproj.io/actor-email",
    "workflows.argoproj.io/actor",
)
ACTION_LABEL = "workflows.argoproj.io/action"
#: The prefix Argo's ResumeWorkflow writes into a node's message when the request carried the caller's identity.
ARGO_RESUMED_BY = "Resumed by: "

SELF_SUBJECT_REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@dataclass(frozen=True)
class WaitingRun:
    """A run suspended at the promotion gate."""

    service: str
    namespace: str
    workflow: str
    record: str
    node_id: str


@dataclass(frozen=True)
class PromotionResult:
    """What a promote or abort did: which run, decided by whom and when."""

    service: str
    namespace: str
    workflow: str
    record: str
    state: spec.PromotionState
    by: str
    at: str


def current_user(kube: Kube) -> str:
    """The name the API server knows the caller by (SelfSubjectReview), for the record."""
    answer = kube.post(
        SELF_SUBJECT_REVIEW_PATH,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        what="create SelfSubjectReview",
    )
    return str(((answer.get("status") or {}).get("userInfo") or {}).get("username") or "")


def gate_node(workflow: Obj) -> tuple[str, Obj] | None:
    """The workflow's promotion-gate suspend node (id, status), whatever its phase; None when it has none yet."""
    status = workflow.get("status") or {}
    if status.get("compressedNodes") or status.get("offloadNodeStatusVersion"):
        name = workflow["metadata"]["name"]
        raise CheckFailed(
            f"workflow {name} keeps its node status compressed or offloaded, which this command cannot edit; "
            f"use `argo resume {name}` or `argo stop {name}` with the Argo server instead"
        )
    for node_id, node in (status.get("nodes") or {}).items():
        if node.get("type") == "Suspend" and node.get("displayName") == PROMOTION_GATE_TASK:
            return node_id, node
    return None


def find_waiting_run(kube: Kube, namespace: str, service: str) -> WaitingRun:
    """The service's running workflow that waits at the promotion gate; a clear error when there is none."""
    found = kube.get(BLUE_GREEN_DEPLOYMENTS, namespace, service)
    if found is None:
        raise BadInput(f"BlueGreenDeployment {namespace}/{service} does not exist; check the name and the namespace")
    status = spec.BlueGreenDeploymentStatus.model_validate(found.get("status") or {})
    if not status.workflow:
        raise BadInput(
            f"BlueGreenDeployment {namespace}/{service} has no run in progress; nothing waits for promotion"
        )
    workflow = kube.get(WORKFLOWS, namespace, status.workflow)
    phase = ((workflow or {}).get("status") or {}).get("phase")
    if workflow is None or phase != "Running":
        raise BadInput(
            f"workflow {namespace}/{status.workflow} of {service} is {phase or 'gone'}, not running; "
            "nothing waits for promotion"
        )
    gate = gate_node(workflow)
    if gate is None or gate[1].get("phase") != "Running":
        where = "has not reached" if gate is None else f"is past ({gate[1].get('phase')})"
        raise BadInput(
            f"workflow {namespace}/{status.workflow} of {service} {where} its promotion gate; "
            "only a run with spec.promotion.mode manual that has passed smoke can be promoted or aborted"
        )
    return WaitingRun(service, namespace, status.workflow, status.record or record_name(status.workflow), gate[0])


def _check_input(namespace: str, service: str, user: str) -> None:
    if not re.fullmatch(spec.DNS1123_LABEL, namespace or ""):
        raise BadInput(f"namespace {namespace!r} is not a DNS-1123 label; pass the namespace the service lives in")
    if not re.fullmatch(spec.DNS1123_LABEL, service or ""):
        raise BadInput(f"service {service!r} is not a DNS-1123 label; pass the BlueGreenDeployment's name")
    if not user.strip():
        raise BadInput("the user who decides is empty; the record must name who promoted or aborted the run")


def _settle_node(kube: Kube, run: WaitingRun, phase: str, message: str, action: str) -> None:
    """Set the gate node's phase, message and finish time, as Argo's updateSuspendedNode does."""

    def mutate(workflow: Obj) -> bool:
        node = (workflow.get("status") or {}).get("nodes", {}).get(run.node_id)
        if node is None or node.get("phase") != "Running":
            raise CheckFailed(
                f"the promotion gate of workflow {run.namespace}/{run.workflow} was decided meanwhile "
                f"({None if node is None else node.get('phase')}); see the record {run.record}"
            )
        for parameter in (node.get("outputs") or {}).get("parameters") or []:
            # As Argo's OverrideOutputParametersWithDefault: an unset output takes its default on resume.
            if "value" not in parameter and "default" in (parameter.get("valueFrom") or {}):
                parameter["value"] = parameter["valueFrom"]["default"]
        node["phase"] = phase
        node["message"] = message
        node["finishedAt"] = now()
        workflow["metadata"].setdefault("labels", {})[ACTION_LABEL] = action
        return True

    kube.modify(WORKFLOWS, run.namespace, run.workflow, mutate)


def _write_decision(records: Records, run: WaitingRun, decision: spec.PromotionRecord) -> None:
    """Write the decision unless one stands already; the opposite decision standing is an error, not a write."""
    standing: list[spec.PromotionRecord] = []

    def change(status: spec.DeploymentRecordStatus) -> None:
        waiting = status.promotion or spec.PromotionRecord(state=spec.PromotionState.waiting)
        if waiting.state is not spec.PromotionState.waiting:
            standing.append(waiting)  # decided already: the first decision stands
            return
        status.promotion = waiting.model_copy(
            update={"state": decision.state, "by": decision.by, "at": decision.at, "how": decision.how}
            | ({"reason": decision.reason} if decision.reason else {})
        )

    records.modify_status(run.record, change)
    if standing:
        first = standing[-1]
        if first.state is not decision.state:
            raise CheckFailed(
                f"the run {run.workflow} of {run.namespace}/{run.service} was already {first.state.value.lower()} "
                f"by {first.by} at {first.at}; see the record {run.record}"
            )
        return  # the same decision, repeated after a crash: only the node is left to settle
    records.append(
        run.record,
        "promotion",
        decision.state.value.lower(),
        decision.reason or f"{decision.state.value.lower()} by {decision.by} via {decision.how}",
        by=decision.by,
        how=decision.how,
    )


def _decide(
    kube: Kube,
    namespace: str,
    service: str,
    user: str,
    state: spec.PromotionState,
    reason: str = "",
    log: StepLog | None = None,
) -> PromotionResult:
    _check_input(namespace, service, user)
    run = find_waiting_run(kube, namespace, service)
    log = log or StepLog("promotion", service)
    records = Records(kube, namespace, service, log)
    at = now()
    decision = spec.PromotionRecord(state=state, by=user, at=at, how=VIA_PLUGIN, reason=reason)
    # The record first: the step after the gate reads it to know a person decided, and a crash between the two
    # writes leaves a decision a second call completes.
    _write_decision(records, run, decision)
    if state is spec.PromotionState.promoted:
        _settle_node(kube, run, "Succeeded", f"Promoted by {user} via {VIA_PLUGIN}", "Resume")
    else:
        _settle_node(kube, run, "Failed", f"Aborted by {user} via {VIA_PLUGIN}: {reason}", "Stop")
    records.event(
        "Promoted" if state is spec.PromotionState.promoted else "Aborted",
        f"{decision.state.value.lower()} by {user} ({run.workflow}){': ' + reason if reason else ''}",
        warning=state is not spec.PromotionState.promoted,
    )
    log(f"run-{state.value.lower()}", workflow=run.workflow, by=user)
    return PromotionResult(service, namespace, run.workflow, run.record, state, user, at)


def promote(kube: Kube, namespace: str, service: str, user: str, log: StepLog | None = None) -> PromotionResult:
    """Resume the service's run waiting at the promotion gate, after recording who promoted it.

    ``log`` takes the JSON log lines (stdout by default); a command that prints its own output passes another.
    """
    return _decide(kube, namespace, service, user, spec.PromotionState.promoted, log=log)


def abort(
    kube: Kube, namespace: str, service: str, user: str, reason: str, log: StepLog | None = None
) -> PromotionResult:
    """Fail the service's run waiting at the promotion gate, so its exit handler rolls back; records who and why."""
    if not reason.strip():
        raise BadInput(f"abort of {namespace}/{service} needs a reason for the record, such as 'errors on /checkout'")
    return _decide(kube, namespace, service, user, spec.PromotionState.aborted, reason.strip(), log)


def argo_resumer(message: str) -> str:
    """The user in Argo's ``Resumed by: map[Email:... PreferredUsername:... User:...]``; empty when none is named.

    Argo prints Go's map of the caller's claims; the most readable name wins.
    """
    if ARGO_RESUMED_BY not in message:
        return ""
    claims: dict[str, str] = dict(re.findall(r"(\w+):(\S+?)(?=\s|\]|$)", message.split(ARGO_RESUMED_BY, 1)[1]))
    for key in ("PreferredUsername", "Email", "User"):
        if claims.get(key):
            return claims[key]
    return ""


def _argo_actor(workflow: Obj, node: Obj) -> str:
    named = argo_resumer(str(node.get("message") or ""))
    if named:
        return named
    labels = workflow["metadata"].get("labels") or {}
    if labels.get(ACTION_LABEL) == "Resume":
        for key in ACTOR_LABELS:
            if labels.get(key):
                return str(labels[key])
    return UNKNOWN_ARGO_USER


def how_the_wait_ended(
    workflow: Obj, timeout_seconds: int, decided: spec.PromotionRecord | None
) -> spec.PromotionRecord:
    """Promoted (through the plugin, or by a resume from Argo) or expired, from the record and the gate node.

    Argo ends the suspend node at its duration on its own, with no message; anything that ended it sooner was a
    person. Times are whole seconds on both sides, so a node that finished before ``startedAt + timeout`` was
    resumed, and one that finished at or after it was not.
    """
    if decided is not None and decided.state is spec.PromotionState.promoted:
        return decided
    gate = gate_node(workflow)
    if gate is None:
        raise CheckFailed(
            f"workflow {workflow['metadata']['name']} has no {PROMOTION_GATE_TASK} node; "
            "re-apply the blue-green-deploy WorkflowTemplate from this release"
        )
    node = gate[1]
    started = parse_timestamp(node.get("startedAt"))
    finished = parse_timestamp(node.get("finishedAt"))
    message = str(node.get("message") or "")
    by_person = ARGO_RESUMED_BY in message or (
        started is not None and finished is not None and finished < started + timedelta(seconds=timeout_seconds)
    )
    at = node.get("finishedAt") or now()
    if by_person:
        return spec.PromotionRecord(
            state=spec.PromotionState.promoted, by=_argo_actor(workflow, node), at=at, how=VIA_ARGO
        )
    return spec.PromotionRecord(
        state=spec.PromotionState.expired,
        by=VIA_TIMEOUT,
        at=at,
        how=VIA_TIMEOUT,
        reason=f"nobody promoted the run within its promotion timeout of {timeout_seconds}s",
    )


def waiting_record(preview_url: str, timeout_seconds: int) -> spec.PromotionRecord:
    """The record's promotion block while a run waits."""
    return spec.PromotionRecord(
        state=spec.PromotionState.waiting,
        preview_url=preview_url,
        waiting_since=now(),
        timeout_seconds=timeout_seconds,
    )


def as_details(result: PromotionResult) -> dict[str, Any]:
    """A result as a flat mapping, for logs and ``-o json``."""
    return {
        "service": result.service,
        "namespace": result.namespace,
        "workflow": result.workflow,
        "record": result.record,
        "state": result.state.value,
        "by": result.by,
        "at": result.at,
    }


__all__ = [
    "UNKNOWN_ARGO_USER",
    "VIA_ARGO",
    "VIA_PLUGIN",
    "VIA_TIMEOUT",
    "PromotionResult",
    "WaitingRun",
    "abort",
    "argo_resumer",
    "as_details",
    "current_user",
    "find_waiting_run",
    "gate_node",
    "how_the_wait_ended",
    "promote",
    "waiting_record",
]
