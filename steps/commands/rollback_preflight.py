"""``rollback-preflight``: before a manual rollback, find the retained slot, open the record, plan re-verification.

It refuses, before any write, when nothing is retained. When the spec sets ``imagePolicy.reverifyOnRollback`` (say,
after keys were rotated because one leaked), it plans the cosign calls for the retained image exactly as preflight
does for a deploy, and the rollback template's ``cosign-verify`` and ``verify-image`` then check it before the
``rollback`` step moves traffic. Without the flag the retained image is trusted: it was verified when it was deployed.
"""

from __future__ import annotations

import argparse

from bluegreen_contract import Output
from steps import images, manual_rollback, verification_plan
from steps.context import StepContext, write_outputs
from steps.errors import BadInput
from steps.kube import Kube


def run(kube: Kube, args: argparse.Namespace) -> int:
    """The rollback-preflight step."""
    ctx = StepContext.open(kube, args.namespace, args.service, "rollback-preflight")
    to = manual_rollback.retained_target(ctx)
    policy = ctx.resource.spec.image_policy
    required = policy.reverify_on_rollback and policy.signature is not None
    calls: list[dict[str, str]] = []
    if required:
        if images.parse(to.image).digest is None:
            raise BadInput(
                f"BlueGreenDeployment {ctx.namespace}/{ctx.service} sets spec.imagePolicy.reverifyOnRollback, but the "
                f"retained image {to.image} is not pinned by digest, so what runs cannot be verified again; redeploy "
                "the version you want by digest with blue-green-deploy"
            )
        calls = verification_plan.for_policy(kube, ctx.namespace, ctx.service, policy, to.image)
    name = manual_rollback.open_record(ctx, args.workflow, args.reason, args.triggered_by, to)
    write_outputs(
        args.output_dir,
        {
            Output.record: name,
            Output.target_slot: to.target.value,
            Output.image: to.image,
            Output.verification_required: "true" if required else "false",
            Output.verification_plan: verification_plan.encode(calls),
            Output.verification_calls: verification_plan.encode_indexes(calls),
        },
    )
    ctx.log("rollback-planned", record=name, target=to.target.value, image=to.image, reverify=required)
    return 0


__all__ = ["run"]
