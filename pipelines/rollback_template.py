"""The ``blue-green-rollback`` WorkflowTemplate: the one-click rollback a person submits from the Argo UI.

Only ``service`` is required. The template takes the same per-service mutex as the deploy template, so a rollback
never races a deploy (invariant I5); it waits for a running deploy to finish first. The rollback step checks that
the previous slot is retained and available, scales it back up if it is not (invariant I1), and otherwise fails
with a message naming the image to redeploy.

Argo references: https://argo-workflows.readthedocs.io/en/latest/workflow-templates/ and
https://argo-workflows.readthedocs.io/en/latest/synchronization/.
"""

from __future__ import annotations

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate

from bluegreen_contract import ROLLBACK_TEMPLATE
from pipelines.argo_variables import SERVICE, SERVICE_PARAMETER, WORKFLOW_NAME, workflow_parameter
from pipelines.exit_handler import exit_arguments, notify_step, rollback_step
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
        rollback = step_container(
            rollback_step("manual", inputs=(SERVICE_PARAMETER, "workflow", "reason", "triggered-by")), settings
        )
        notify = step_container(notify_step(), settings)
        with DAG(name="one-click-rollback"):
            Task(
                name="rollback",
                template=rollback,
                arguments={
                    SERVICE_PARAMETER: SERVICE,
                    "workflow": WORKFLOW_NAME,
                    "reason": workflow_parameter("reason"),
                    "triggered-by": workflow_parameter("triggered-by"),
                },
            )
        with DAG(name="exit-handler"):
            # A manual rollback that fails must not start another rollback: its exit handler only reports.
            Task(name="notify", template=notify, arguments=exit_arguments())
    return template


__all__ = ["NAME", "build"]
