"""Manual promotion: find a run that waits for a person, promote or abort it, and tell a resume from the timeout.

A run with ``spec.promotion.mode: manual`` suspends after smoke on an Argo ``suspend`` node (the DAG task
:data:`bluegreen_contract.PROMOTION_GATE_TASK`). Promoting and aborting change that node through the Kubernetes API,
the way Argo's own ``workflow/util`` does for ``argo resume`` and ``argo stop --node-field-selector`` when no Argo
server is involved: read the Workflow, set the suspended node's phase (``Succeeded`` resumes, ``Failed`` fails the
DAG so the exit handler rolls back), its message and ``finishedAt``, and write the Workflow back with its
resourceVersion, reading again on a conflict. The controller picks the change up on its next pass.

The suspend node also carries the promotion timeout as its ``duration``. Argo *resumes* a suspend node whose
duration has passed, which would switch traffic nobody approved, so the step after it (``confirm-promotion``) judges
how the wait ended, and it alone: one decision, written once.

- A recorded abort always wins: the run fails whatever the node says, so an abort whose node write failed cannot be
  overridden by a later Resume.
- Otherwise only the node counts. A node that a person resumed (it finished before its duration, or its message names
  the resumer) is a promotion, credited to whom the node names (the Argo UI's Resume and ``argo resume`` included); a
  node that finished at its duration is the timeout, and the run fails, whatever the record claims. The record's
  status is writable by identities that may not touch the workflow (the deployer ServiceAccount among them), so a
  promotion found only in the record approves nothing.

The writes are ordered so that a failure between them leaves the safe side standing. Promote resumes the node first
(the act that counts) and records it after; abort records first (a recorded abort is final) and fails the node after.
Neither writes into a record that is not the waiting run's own open record, as after a forced
``kubectl bluegreen route``, which points the service's status at a record of its own.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/walk-through/suspending/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENT_RECORDS, PROMOTION_GATE_TASK, WORKFLOWS
from steps.clock import now, parse_timestamp
from steps.context import record_name
from steps.errors import ApiError, BadInput, CheckFailed, StepError, Transient
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
#: The node message promote writes; the judge reads the promoter back from it.
PLUGIN_PROMOTED = re.compile(rf"Promoted by (?P<by>.+) via {VIA_PLUGIN}")

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
    record = _own_open_record(kube, namespace, service, status)
    return WaitingRun(service, namespace, status.workflow, record, gate[0])


def _own_open_record(kube: Kube, namespace: str, service: str, status: spec.BlueGreenDeploymentStatus) -> str:
    """The waiting run's record, if the status names it and it is open; a clear refusal otherwise."""
    assert status.workflow
    own = record_name(status.workflow)
    stop = (
        f"Nothing was written. To end that run, stop it (`argo stop {status.workflow} -n {namespace}`, its exit "
        "handler rolls back) or let its promotion timeout fail it"
    )
    if status.record and status.record != own:
        raise BadInput(
            f"BlueGreenDeployment {namespace}/{service} names the record {status.record} in status.record, not "
            f"{own}, the record of its waiting workflow {status.workflow}: something else (a forced `kubectl "
            "bluegreen route`, for one) took the service over while the run waited, and a decision now would land "
            f"in the wrong record or undo that change. {stop}"
        )
    found = kube.get(DEPLOYMENT_RECORDS, namespace, own)
    if found is None:
        raise BadInput(
            f"DeploymentRecord {namespace}/{own} of the waiting workflow {status.workflow} does not exist, so the "
            f"decision has nowhere to be recorded. {stop}"
        )
    finished = (found.get("status") or {}).get("finishedAt")
    if finished:
        raise BadInput(
            f"DeploymentRecord {namespace}/{own} of the waiting workflow {status.workflow} is closed (finished at "
            f"{finished}): its run is over as far as the record goes, and a closed record is never written again. "
            f"{stop}"
        )
    return own


def _check_input(namespace: str, service: str, user: str) -> None:
    if not re.fullmatch(spec.DNS1123_LABEL, namespace or ""):
        raise BadInput(f"namespace {namespace!r} is not a DNS-1123 label; pass the namespace the service lives in")
    if not re.fullmatch(spec.DNS1123_LABEL, service or ""):
        raise BadInput(f"service {service!r} is not a DNS-1123 label; pass the BlueGreenDeployment's name")
    if not user.strip():
        raise BadInput("the user who decides is empty; the record must name who promoted or aborted the run")


def _settle_node(kube: Kube, run: WaitingRun, phase: str, message: str, action: str, at: str) -> None:
    """Set the gate node's phase, message and finish time, as Argo's updateSuspendedNode does.

    ``at`` is the decision's time, so the node and the record agree on it whichever is written first.
    """

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
        node["finishedAt"] = at
        workflow["metadata"].setdefault("labels", {})[ACTION_LABEL] = action
        return True

    kube.modify(WORKFLOWS, run.namespace, run.workflow, mutate)


def _write_decision(records: Records, run: WaitingRun, decision: spec.PromotionRecord) -> None:
    """Write the decision into the run's open record, unless a final one stands there already.

    Final are an abort (it always wins) and the timeout. A promotion in the record is not: whoever may write the
    record's status can put one there without touching the workflow, and only the node counts for a promotion, so a
    new decision replaces it. An abort repeated (after a crash or a lost reply) writes nothing; the opposite decision
    standing is an error.
    """
    standing: list[spec.PromotionRecord] = []

    def change(status: spec.DeploymentRecordStatus) -> None:
        if status.finished_at:
            # Closed while the decision was under way: a closed record keeps what it says.
            raise CheckFailed(
                f"the record {run.namespace}/{run.record} of {run.workflow} was closed at {status.finished_at} "
                "while the decision was being written; nothing was written into it"
            )
        held = status.promotion or spec.PromotionRecord(state=spec.PromotionState.waiting)
        if held.state in {spec.PromotionState.aborted, spec.PromotionState.expired}:
            standing.append(held)
            return
        status.promotion = held.model_copy(
            update={
                "state": decision.state,
                "by": decision.by,
                "at": decision.at,
                "how": decision.how,
                "reason": decision.reason,
            }
        )

    records.modify_status(run.record, change)
    if standing:
        first = standing[-1]
        if first.state is not decision.state:
            raise CheckFailed(
                f"the run {run.workflow} of {run.namespace}/{run.service} was already {first.state.value.lower()} "
                f"by {first.by} at {first.at}; see the record {run.record}"
            )
        return  # the same abort, repeated after a crash: only the node is left to settle
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
    if state is spec.PromotionState.promoted:
        _refuse_a_recorded_abort(records, run)
        # The node first: it is what confirm-promotion counts. A refused or lost node write leaves no promotion in the
        # record to mislead anyone; a lost record write is made good by confirm-promotion, which reads the promoter
        # back from the node's message.
        try:
            _settle_node(kube, run, "Succeeded", f"Promoted by {user} via {VIA_PLUGIN}", "Resume", at)
        except ApiError as error:
            if error.status != 403:
                raise
            raise _refused(error, run, "the run was not promoted and nothing was recorded") from error
        try:
            _write_decision(records, run, decision)
        except StepError as error:
            raise CheckFailed(
                f"promoted {run.workflow} of {namespace}/{service} (its gate node is resumed and the run goes on), "
                f"but the record {run.record} was not written: {error}; confirm-promotion records the promotion from "
                "the node"
            ) from error
    else:
        # The record first: a recorded abort is final, so even if the node write fails below, confirm-promotion
        # fails the run when the gate ends, whoever resumes it.
        _write_decision(records, run, decision)
        try:
            _settle_node(kube, run, "Failed", f"Aborted by {user} via {VIA_PLUGIN}: {reason}", "Stop", at)
        except StepError as error:
            outcome = (
                f"the abort is recorded in {run.record} and stands: the run fails at confirm-promotion whenever its "
                "gate ends, at the latest at its promotion timeout, whoever resumes it"
            )
            if isinstance(error, ApiError) and error.status == 403:
                raise _refused(error, run, outcome) from error
            if isinstance(error, Transient):
                raise Transient(f"{error}; {outcome}; run the abort again to end the run now") from error
            raise CheckFailed(f"{error}; {outcome}") from error
    records.event(
        "Promoted" if state is spec.PromotionState.promoted else "Aborted",
        f"{decision.state.value.lower()} by {user} ({run.workflow}){': ' + reason if reason else ''}",
        warning=state is not spec.PromotionState.promoted,
    )
    log(f"run-{state.value.lower()}", workflow=run.workflow, by=user)
    return PromotionResult(service, namespace, run.workflow, run.record, state, user, at)


def _refuse_a_recorded_abort(records: Records, run: WaitingRun) -> None:
    """Stop a promote before the node when an abort stands in the record.

    The abort wins at confirm-promotion, so resuming the node would only move the run on to fail there.
    """
    found = records.get(run.record)
    held = found.status.promotion if found is not None and found.status is not None else None
    if held is not None and held.state is spec.PromotionState.aborted:
        raise CheckFailed(
            f"the run {run.workflow} of {run.namespace}/{run.service} was already aborted by {held.by} at {held.at} "
            f"({held.reason}); a recorded abort stands, and the run rolls back when its gate ends. Nothing was "
            f"changed; see the record {run.record}"
        )


def _refused(error: ApiError, run: WaitingRun, outcome: str) -> ApiError:
    """A 403 on the node write, said for the person deciding rather than for a step's ServiceAccount."""
    return ApiError(
        f"the API server refused the update of workflow {run.namespace}/{run.workflow} ({error.reason}); {outcome}. "
        f"Deciding needs get and update on workflows in {run.namespace}, besides the record's status: ask for them, "
        "or have someone who holds them decide",
        error.status,
        error.reason,
    )


def promote(kube: Kube, namespace: str, service: str, user: str, log: StepLog | None = None) -> PromotionResult:
    """Resume the service's run waiting at the promotion gate, then record who promoted it.

    ``log`` takes the JSON log lines (stdout by default); a command that prints its own output passes another.
    """
    return _decide(kube, namespace, service, user, spec.PromotionState.promoted, log=log)


def abort(
    kube: Kube, namespace: str, service: str, user: str, reason: str, log: StepLog | None = None
) -> PromotionResult:
    """Record who aborted the service's waiting run and why, then fail its gate node so the exit handler rolls back."""
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


def plugin_promoter(message: str) -> str:
    """The user in the node message promote writes (``Promoted by carol via kubectl-bluegreen``); empty otherwise."""
    found = PLUGIN_PROMOTED.fullmatch(message)
    return found.group("by") if found else ""


def how_the_wait_ended(
    workflow: Obj, timeout_seconds: int, decided: spec.PromotionRecord | None
) -> spec.PromotionRecord:
    """Aborted, promoted or expired: the judgement of confirm-promotion, from the recorded decision and the gate node.

    A recorded abort is returned as it is, whatever the node says. Otherwise the node decides: Argo ends the suspend
    node at its duration on its own, with no message, and anything that ended it sooner was a person; a message that
    names the resumer (Argo's, or promote's) is a person's too. Times are whole seconds on both sides, so a node that
    finished before ``startedAt + timeout`` was resumed, and one that finished at or after it was not. A recorded
    promotion is returned only when the node names the same promoter through the same way; one the node does not back
    is overruled (the node's own account, or the timeout).
    """
    if decided is not None and decided.state is spec.PromotionState.aborted:
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
    by_plugin = plugin_promoter(message)
    by_person = (
        bool(by_plugin)
        or ARGO_RESUMED_BY in message
        or (started is not None and finished is not None and finished < started + timedelta(seconds=timeout_seconds))
    )
    at = node.get("finishedAt") or now()
    claim = decided if decided is not None and decided.state is spec.PromotionState.promoted else None
    if not by_person:
        unbacked = (
            f" (the record's promotion by {claim.by} via {claim.how} never resumed the gate node, so it does not "
            "count)"
            if claim is not None
            else ""
        )
        return spec.PromotionRecord(
            state=spec.PromotionState.expired,
            by=VIA_TIMEOUT,
            at=at,
            how=VIA_TIMEOUT,
            reason=f"nobody promoted the run within its promotion timeout of {timeout_seconds}s{unbacked}",
        )
    if by_plugin:
        node_says = spec.PromotionRecord(state=spec.PromotionState.promoted, by=by_plugin, at=at, how=VIA_PLUGIN)
    else:
        node_says = spec.PromotionRecord(
            state=spec.PromotionState.promoted, by=_argo_actor(workflow, node), at=at, how=VIA_ARGO
        )
    if claim is not None and (claim.by, claim.how) == (node_says.by, node_says.how):
        return claim
    return node_says


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
    "plugin_promoter",
    "promote",
    "waiting_record",
]
