"""The run a step belongs to: the workflow its Pod was created for, which a submitter cannot choose.

Argo lets whoever submits a workflow choose its entrypoint and every parameter, ``record`` among them, so a step's
``--record`` says only which record the submitter named. Argo's controller labels each Pod with the name of its
workflow (``workflows.argoproj.io/workflow``), every step container receives that label through the downward API
(:data:`bluegreen_contract.RUN_WORKFLOW_ENV`), and preflight names a run's record after its workflow
(:func:`steps.context.record_name`). A step that reads or writes a run's verdicts compares the two.

A workflow's name is free again once the workflow is deleted, and a new one of the same name gets Pods with the same
label. Its uid (:data:`bluegreen_contract.RUN_WORKFLOW_UID_ENV`, from ``{{workflow.uid}}`` in our templates) is never
reused: preflight writes it into the record, and a step of another workflow of that name is refused the record.

The label is out of a submitter's reach only while the controller refuses Workflows that bring their own templates,
``podSpecPatch`` or pod metadata (``workflowRestrictions.templateReferencing: Strict``; see docs/reference/rbac.md).
"""

from __future__ import annotations

import os

import bluegreen_spec as spec
from bluegreen_contract import ARGO_WORKFLOW_POD_LABEL, RUN_WORKFLOW_ENV, RUN_WORKFLOW_UID_ENV
from steps.api_transport import InClusterTransport
from steps.context import record_name
from steps.errors import BadInput, CheckFailed
from steps.kube import Kube


def pod_workflow(kube: Kube) -> str | None:
    """The workflow of the Pod this step runs in, or None when the step runs outside a Pod.

    Outside a Pod (a person's kubeconfig, the tests' in-process steps) the caller acts with credentials of its own,
    and whoever may make a step's writes may as well write a record's verdicts directly: there is no Pod identity to
    bind to, so the record named is taken as given unless the variable is set. A step that acts with a Pod's
    ServiceAccount (``kube`` speaks through :class:`~steps.api_transport.InClusterTransport`) without the variable was
    not started from argo-bluegreen's templates, which always set it, and is refused before anything is read.
    """
    workflow = os.environ.get(RUN_WORKFLOW_ENV, "")
    if workflow:
        return workflow
    if isinstance(kube.transport, InClusterTransport):
        raise BadInput(
            f"this step runs in a Pod as its ServiceAccount but without {RUN_WORKFLOW_ENV}, the workflow the Pod "
            f"belongs to (argo-bluegreen's templates set it from the Pod's label {ARGO_WORKFLOW_POD_LABEL}); submit "
            "the run from the installed WorkflowTemplate; nothing was read or written"
        )
    return None


def require_own_workflow(kube: Kube, step: str, named: str) -> None:
    """Refuse a step told to act for workflow ``named`` when its Pod belongs to another.

    Preflight, the promotion gate, the rollback and notify take the workflow they act for as a parameter, which the
    DAG fills from ``{{workflow.name}}`` but a submitter who starts the workflow at that step may set to any run's
    name: a rollback or notify would then close, or roll back, another run. Outside a Pod there is nothing to
    compare (see :func:`pod_workflow`).
    """
    own = pod_workflow(kube)
    if own is not None and named != own:
        raise BadInput(
            f"{step} runs in workflow {own} and may act only for it, not for workflow {named}: the run a step acts "
            "for is the one its Pod belongs to; run the pipeline from its default entrypoint; nothing was written"
        )


def own_record(workflow: str | None) -> str | None:
    """The only record ``workflow``'s steps may use (None: no Pod identity, see :func:`pod_workflow`)."""
    return None if workflow is None else record_name(workflow)


def pod_workflow_uid() -> str:
    """The uid of the workflow this step's Pod belongs to; empty outside a Pod, as for :func:`pod_workflow`."""
    return os.environ.get(RUN_WORKFLOW_UID_ENV, "")


def same_workflow(record: spec.DeploymentRecord) -> bool:
    """Whether ``record`` was opened by this step's workflow, not by a deleted one whose name it reuses.

    A record without a uid (opened outside a Pod, or by a release before uids were kept) and a step without one
    compare by name alone, as before.
    """
    uid, recorded = pod_workflow_uid(), record.spec.workflow_uid
    return not uid or not recorded or uid == recorded


def require_same_workflow(record: spec.DeploymentRecord, where: str, consequence: str) -> None:
    """Refuse ``record`` unless :func:`same_workflow`; ``consequence`` ends the refusal: what was left alone."""
    if not same_workflow(record):
        raise CheckFailed(
            f"{where} belongs to workflow {record.spec.workflow} with uid {record.spec.workflow_uid}, not this one "
            f"(uid {pod_workflow_uid()}): a workflow that reuses the name of a deleted one is a new run and may not "
            "take over that run's record, hold or verdicts; submit the deploy under a new name (argo submit "
            f"--from names each run from generateName); {consequence}"
        )


__all__ = [
    "own_record",
    "pod_workflow",
    "pod_workflow_uid",
    "require_own_workflow",
    "require_same_workflow",
    "same_workflow",
]
