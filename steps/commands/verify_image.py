"""``verify-image``: decide from cosign's verified output whether the image may reach a slot, and record why.

The cosign containers before this step did the cryptography; each that passed handed back its signer and what it
verified. This step applies the policy (any trusted signer, the newest scan's age, its severities and the ignore
list), writes the verdict into the record (``status.verification``, an entry, and the ``image-verification`` gate
that ``deploy-green`` and ``switch`` require) and exits 1 on a refusal. Nothing has been written to a slot yet, so the
exit handler has nothing to roll back.
"""

from __future__ import annotations

import argparse
import json

import bluegreen_spec as spec
from steps import image_verdict, run_identity
from steps.clock import now, parse_timestamp
from steps.context import StepContext, record_name
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube


def check_own_record(record: str, workflow: str) -> None:
    """Refuse to write a verdict into another run's record.

    A person allowed to submit the deploy template could start a workflow at ``verify-image`` and hand it a made-up
    plan and cosign outputs; such a verdict may land only in that workflow's own record, which only a preflight run
    creates, so it can never vouch for another run's image. ``workflow`` comes from the Pod's Argo label (empty
    outside a Pod, see :func:`steps.run_identity.pod_workflow`).
    """
    if workflow and record != record_name(workflow):
        raise BadInput(
            f"verify-image of workflow {workflow} may record its verdict only in that run's record "
            f"({record_name(workflow)}), not in {record}; run the blue-green-deploy pipeline from its default "
            "entrypoint"
        )


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The verify-image step."""
    check_own_record(args.record, run_identity.pod_workflow(kube) or "")
    ctx = StepContext.open(kube, args.namespace, args.service, "verify-image")
    policy = ctx.resource.spec.image_policy
    if not policy.verification_required():
        ctx.log("verification-not-required", image=args.image)
        return 0
    try:
        plan = json.loads(args.plan)
    except json.JSONDecodeError:
        raise BadInput(f"--plan is not the JSON list preflight writes: {args.plan[:200]!r}") from None
    target = spec.Slot(args.slot)
    decided_at = now()
    moment = parse_timestamp(decided_at)
    assert moment is not None
    verdict = image_verdict.decide(policy, plan, args.verified, moment)
    assert policy.signature is not None
    verification = spec.ImageVerification(
        image=args.image,
        passed=verdict.refusal is None,
        rule=verdict.refusal.rule if verdict.refusal else "",
        signer=verdict.signer,
        transparency_log=policy.signature.require_transparency_log,
        vulnerabilities=verdict.vulnerabilities,
        time=decided_at,
    )

    def keep(status: spec.DeploymentRecordStatus) -> None:
        status.verification = verification

    ctx.records.modify_status(args.record, keep)
    scan = verdict.vulnerabilities
    details = {
        "signer": verdict.signer,
        **(
            {"scanned-at": scan.scanned_at, "highest-severity": scan.highest_severity or "none"}
            if scan is not None
            else {}
        ),
        **({"ignored": ",".join(scan.ignored)} if scan is not None and scan.ignored else {}),
    }
    passed = verdict.refusal is None
    ctx.records.record_gate(
        args.record, spec.Gate.image_verification, target, args.image, passed=passed, step="verify-image"
    )
    if verdict.refusal is not None:
        line = f"image {args.image} refused by {verdict.refusal.rule}: {verdict.refusal.message}"
        ctx.records.append(args.record, "verify-image", "image-refused", line, rule=verdict.refusal.rule, **details)
        ctx.records.event("ImageRefused", line, warning=True)
        raise CheckFailed(line)
    message = f"{args.image} signed by {verdict.signer}" + (
        f"; scan of {scan.scanned_at}: highest severity {scan.highest_severity or 'none'}" if scan is not None else ""
    )
    ctx.records.append(args.record, "verify-image", "image-verified", message, **details)
    ctx.records.event("ImageVerified", message)
    ctx.log("image-verified", image=args.image, **details)
    return 0


__all__ = ["run"]
