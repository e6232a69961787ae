"""The ``blue-green-rollback`` WorkflowTemplate: the one-click rollback a person submits from the Argo UI.

Only ``service`` is required. The template takes the same per-service mutex as the deploy template, so a rollback
never races a deploy (invariant I5); it waits for a running deploy to finish first. The rollback step checks that
the previous slot is retained and available, scales it back up if it is not (invariant I1), and otherwise fails
with a message naming the image to redeploy.

When the service's spec sets ``imagePolicy.reverifyOnRollback`` and the retained image was not verified in this run,
``rollback`` moves no traffic and reports ``deferred`` with a cosign plan; the same ``cosign-verify`` loop and
``verify-image`` step as in a deploy then check the image, and ``rollback-verified`` runs the rollback. Otherwise those
three are skipped without a Pod: the default rollback stays one Pod, because the image was verified when it was
deployed.

Argo references: https://argo-workflows.readthedocs.io/en/latest/workflow-templates/ and
https://argo-workflows.readthedocs.io/en/latest/synchronization/.
"""

from __future__ import annotations

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate

from bluegreen_contract import ROLLBACK_TEMPLATE, Output
from pipelines.argo_variables import SERVICE, SERVICE_PARAMETER, WORKFLOW_NAME, workflow_parameter
from pipelines.exit_handler import exit_arguments, manual_rollback_steps, notify_step
from pipelines.image_verification import cosign_container, verification_tasks, verify_image_step
from pipelines.run_policy import (
    WORKFLOW_DEADLINE_SECONDS,
    common_fields,
    service_mutex,
    workflow_metadata,
)
from pipelines.settings import RenderSettings
from pipelines.step_container import step_container

NAME = ROLLBACK_TEMPLATE


def build(settings: RenderSettings) -> WorkflowTemplate:
    """Build the rollback WorkflowTemplate."""
    with WorkflowTemplate(
        name=NAME,
        **common_fields(
            settings,
            title="Blue-green rollback",
            description=(
                "Move a service's traffic back to its previous, retained version in seconds. "
                "Submit with just the service name."
            ),
        ),
        entrypoint="one-click-rollback",
        on_exit="exit-handler",
        arguments=[
            Parameter(
                name=SERVICE_PARAMETER, description="Name of the BlueGreenDeployment to roll back, e.g. user-service."
            ),
            Parameter(name="reason", value="", description="Why you roll back, for the audit record."),
            Parameter(name="triggered-by", value="", description="Who rolls back, for the audit record."),
        ],
        active_deadline_seconds=WORKFLOW_DEADLINE_SECONDS,
        synchronization=service_mutex(),
        workflow_metadata=workflow_metadata(),
    ) as template:
        request = (SERVICE_PARAMETER, "workflow", "reason", "triggered-by")
        first, again = manual_rollback_steps(request)
        rollback = step_container(first, settings)
        rollback_verified = step_container(again, settings)
        cosign = cosign_container(settings)
        verify_image = step_container(verify_image_step(), settings)
        notify = step_container(notify_step(), settings)
        with DAG(name="one-click-rollback"):
            arguments = {
                SERVICE_PARAMETER: SERVICE,
                "workflow": WORKFLOW_NAME,
                "reason": workflow_parameter("reason"),
                "triggered-by": workflow_parameter("triggered-by"),
            }
            t_rollback = Task(name="rollback", template=rollback, arguments=arguments)
            deferred = f"{t_rollback.get_parameter(Output.deferred).value} == true"
            _, t_verify = verification_tasks(
                cosign,
                verify_image,
                t_rollback,
                slot=t_rollback.get_parameter(Output.target_slot).value,
                record=t_rollback.get_parameter(Output.record).value,
                when=deferred,
            )
            t_again = Task(name="rollback-verified", template=rollback_verified, arguments=arguments, when=deferred)
            t_verify >> t_again
        with DAG(name="exit-handler"):
            # A manual rollback that fails must not start another rollback: its exit handler only reports.
            Task(name="notify", template=notify, arguments=exit_arguments())
    return template


__all__ = ["NAME", "build"]
