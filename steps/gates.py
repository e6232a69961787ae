"""The gates a slot must pass before ``switch`` sends it traffic, as the run's record keeps them.

Argo lets whoever submits a workflow pick its entrypoint, so ``argo submit --entrypoint switch`` would otherwise move
traffic to a slot that no preflight, probe or smoke test has seen. Each checking step therefore writes its verdict,
for the slot and the image it checked, into the run's record (``status.gates``), and ``switch`` refuses unless the
record of the run that holds the service shows every gate passed for the image the slot runs now.

The submitter also chooses ``--record``, so a gate reads only the record of the workflow its own Pod belongs to
(:mod:`steps.run_identity`): another run's verdicts, a finished run's included, vouch for nothing here.
"""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import run_identity
from steps.context import StepContext
from steps.errors import CheckFailed
from steps.kube import Obj
from steps.slots import current_image, deployment_name

#: What each gate stands for, in the words a refusal uses.
GATE_CHECKS: dict[spec.Gate, str] = {
    spec.Gate.image_policy: "the image policy (preflight)",
    spec.Gate.image_verification: "signature and vulnerability verification (verify-image)",
    spec.Gate.available: "availability of every replica (deploy-green)",
    spec.Gate.probe: "the health check (probe)",
    spec.Gate.smoke: "the smoke tests (smoke)",
}


def slot_image(ctx: StepContext, deployment: Obj | None) -> str | None:
    """The image a slot's Deployment runs, or None when the slot does not exist."""
    return None if deployment is None else current_image(deployment, ctx.resource.spec.container)


def read_slot_image(ctx: StepContext, slot: spec.Slot) -> str | None:
    """The image ``slot`` runs now, read before a check starts: a verdict vouches for what was there to check."""
    return slot_image(ctx, ctx.kube.get(DEPLOYMENTS, ctx.namespace, deployment_name(ctx.service, slot)))


def record_verdict(
    ctx: StepContext, record: str, gate: spec.Gate, slot: spec.Slot, image: str | None, *, passed: bool
) -> None:
    """Write ``gate``'s verdict for ``slot`` running ``image``; a missing slot has nothing to vouch for.

    If the image changes while the check runs, the verdict stays with the image read before, and ``switch`` then
    finds the slot running another one and refuses. The step has already called :func:`require_run_record`, so the
    record is its own run's.
    """
    if image is not None:
        ctx.records.record_gate(record, gate, slot, image, passed=passed, step=ctx.log.step)


def require_run_record(ctx: StepContext, record_name: str, consequence: str) -> spec.DeploymentRecord | None:
    """The run's record (None when there is none), refused if another workflow opened it.

    That other workflow is a deleted run whose name this one reuses: its record, hold and verdicts are not this run's.
    A step calls this before it writes anything into the record, entries included; a failed verdict there would
    hold that run's switch, a passed one vouch for what this run never checked.
    """
    record = ctx.records.get(record_name) if record_name else None
    if record is not None:
        where = f"BlueGreenDeployment {ctx.namespace}/{ctx.service}: DeploymentRecord {record_name}"
        run_identity.require_same_workflow(record, where, consequence)
    return record


def required(policy: spec.ImagePolicy) -> list[spec.Gate]:
    """The gates a slot must pass, in pipeline order: verification only when the image policy asks for it."""
    return [gate for gate in spec.Gate if gate is not spec.Gate.image_verification or policy.verification_required()]


def unpassed(
    record: spec.DeploymentRecord, slot: spec.Slot, image: str, gates: list[spec.Gate] | None = None
) -> list[spec.Gate]:
    """Of ``gates`` (every gate by default), those not passed by ``slot`` running ``image``, in pipeline order."""
    results = (record.status or spec.DeploymentRecordStatus()).gates
    passed = {result.gate for result in results if result.slot is slot and result.image == image and result.passed}
    return [gate for gate in (list(spec.Gate) if gates is None else gates) if gate not in passed]


def require_own_record(ctx: StepContext, record_name: str, consequence: str) -> None:
    """Refuse, before anything is read, a record other than the one of the workflow this step's Pod belongs to.

    ``consequence`` ends the refusal: what the step left alone. Outside a Pod there is no such workflow and the named
    record is taken as given (see :func:`steps.run_identity.pod_workflow`).
    """
    workflow = run_identity.pod_workflow(ctx.kube)
    own = run_identity.own_record(workflow)
    if own is not None and record_name != own:
        raise CheckFailed(
            f"BlueGreenDeployment {ctx.namespace}/{ctx.service}: {ctx.log.step} runs in workflow {workflow} and may "
            f"use only its record {own}, not {record_name or '(none)'}: a gate accepts only the verdicts of the run "
            "its Pod belongs to; run the blue-green-deploy pipeline from its default entrypoint; "
            f"{consequence}"
        )


def require_verified(ctx: StepContext, record_name: str, slot: spec.Slot, image: str) -> None:
    """Refuse, before any write, a slot write outside this run's own open record, or unverified when asked for.

    Argo lets a submitter start the workflow at ``deploy-green`` and name any record. A slot is written only for a
    run that preflight opened and that is still going: a workflow that names a record no preflight created, or a
    finished one, would otherwise overwrite a slot (the retained previous version, say) outside any run.
    """
    unchanged = "no slot was changed"
    require_own_record(ctx, record_name, unchanged)
    where = f"BlueGreenDeployment {ctx.namespace}/{ctx.service}"
    rerun = f"run the blue-green-deploy pipeline from its default entrypoint; {unchanged}"
    record = require_run_record(ctx, record_name, unchanged)
    if record is None:
        raise CheckFailed(
            f"{where}: DeploymentRecord {ctx.namespace}/{record_name or '(no record)'} does not exist, so no "
            f"preflight opened this run; {rerun}"
        )
    if record.status is not None and record.status.finished_at:
        raise CheckFailed(
            f"{where}: DeploymentRecord {record_name} is closed ({record.status.outcome}); a finished run writes no "
            f"slot; {rerun}"
        )
    if not ctx.resource.spec.image_policy.verification_required():
        return
    if unpassed(record, slot, image, [spec.Gate.image_verification]):
        raise CheckFailed(
            f"{where}: image {image} has no passing signature and vulnerability verification in run {record_name} "
            f"(spec.imagePolicy.signature); {rerun}"
        )


def require_proven(ctx: StepContext, record_name: str, slot: spec.Slot, image: str) -> None:
    """Refuse, before any write, to send traffic to ``slot`` unless this run proved it with ``image``."""
    where = f"BlueGreenDeployment {ctx.namespace}/{ctx.service}"
    rerun = "run the blue-green-deploy pipeline from its default entrypoint; traffic stays where it is"
    require_own_record(ctx, record_name, "traffic stays where it is")
    if not record_name:
        raise CheckFailed(f"{where}: switch needs the run's record (--record) to see its checks; {rerun}")
    holder = ctx.status.record
    if holder != record_name:
        raise CheckFailed(
            f"{where}: record {record_name} is not the run that holds the service (status.record is "
            f"{holder or 'empty'}); {rerun}"
        )
    record = require_run_record(ctx, record_name, "traffic stays where it is")
    if record is None:
        raise CheckFailed(f"{where}: DeploymentRecord {ctx.namespace}/{record_name} does not exist; {rerun}")
    if record.status is not None and record.status.finished_at:
        raise CheckFailed(
            f"{where}: DeploymentRecord {record_name} is closed ({record.status.outcome}); a finished run cannot "
            f"switch traffic; {rerun}"
        )
    if record.spec.to_slot is not slot or record.spec.image != image:
        raise CheckFailed(
            f"{where}: run {record_name} deploys {record.spec.image} to slot "
            f"{record.spec.to_slot.value if record.spec.to_slot else 'none'}, but slot {slot.value} runs {image}; "
            f"{rerun}"
        )
    missing = unpassed(record, slot, image, required(ctx.resource.spec.image_policy))
    if missing:
        checks = ", ".join(GATE_CHECKS[gate] for gate in missing)
        raise CheckFailed(
            f"{where}: slot {slot.value} running {image} has not passed {checks} in run {record_name}; {rerun}"
        )


__all__ = [
    "GATE_CHECKS",
    "read_slot_image",
    "record_verdict",
    "require_own_record",
    "require_proven",
    "require_verified",
    "required",
    "slot_image",
    "unpassed",
]
