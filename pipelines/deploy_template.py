"""The ``blue-green-deploy`` WorkflowTemplate: one run deploys one image to one service without downtime.

The DAG is preflight -> deploy-green -> probe -> smoke -> switch -> verify -> retain -> cleanup. ``verify`` runs only
when the service's spec has an analysis section (preflight reports that). The exit handler rolls back whenever the
workflow did not succeed (the rollback step itself honours ``spec.rollbackOnFailure``), then always notifies.

A workflow-level mutex keyed by namespace and service keeps two runs for one service from overlapping (invariant I5);
the rollback template takes the same mutex.

Argo references: https://argo-workflows.readthedocs.io/en/latest/walk-through/dag/,
https://argo-workflows.readthedocs.io/en/latest/walk-through/exit-handlers/,
https://argo-workflows.readthedocs.io/en/latest/synchronization/ and
https://argo-workflows.readthedocs.io/en/latest/metrics/.
"""

from __future__ import annotations

import itertools

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate
from hera.workflows.metrics import Counter, Histogram, Label
from hera.workflows.models import Amount

from pipelines.exit_handler import exit_arguments, notify_step, rollback_step
from pipelines.run_policy import (
    WORKFLOW_DEADLINE_SECONDS,
    common_fields,
    service_mutex,
    workflow_metadata,
)
from pipelines.settings import RenderSettings
from pipelines.step_container import StepSpec, step_container

NAME = "blue-green-deploy"
RUN_DURATION_BUCKETS: list[float | Amount] = [30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]

PARAMETERS = [
    Parameter(
        name="service", description="Name of the BlueGreenDeployment (and Service) to deploy, e.g. user-service."
    ),
    Parameter(
        name="image",
        description="Image for the new version, ideally pinned by digest: registry/name@sha256:<digest>.",
    ),
    Parameter(name="triggered-by", value="", description="Who or what started this deploy, for the audit record."),
    Parameter(name="commit", value="", description="Source commit of the image, for the audit record."),
    Parameter(name="reason", value="", description="Why this deploy happens, for the audit record."),
]


def run_metrics() -> list[Counter | Histogram]:
    """Workflow-level metrics: runs by outcome and their duration, labelled by service."""
    labels = [
        Label(key="service", value="{{workflow.parameters.service}}"),
        Label(key="status", value="{{workflow.status}}"),
    ]
    return [
        Counter(
            name="bluegreen_deploy_runs",
            help="Blue-green deploy runs by service and outcome",
            labels=labels,
            value="1",
        ),
        Histogram(
            name="bluegreen_deploy_duration_seconds",
            help="Duration of blue-green deploy runs",
            labels=labels,
            buckets=RUN_DURATION_BUCKETS,
            value="{{workflow.duration}}",
        ),
    ]


def switch_metrics() -> list[Histogram]:
    """Duration of the traffic switch step, from intent to verified read-back."""
    return [
        Histogram(
            name="bluegreen_switch_duration_seconds",
            help="Duration of blue-green traffic switches",
            labels=[
                Label(key="service", value="{{inputs.parameters.service}}"),
                Label(key="status", value="{{status}}"),
            ],
            buckets=[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0],
            value="{{duration}}",
        ),
    ]


def build(settings: RenderSettings) -> WorkflowTemplate:
    """Build the deploy WorkflowTemplate."""
    with WorkflowTemplate(
        name=NAME,
        **common_fields(
            settings,
            title="Blue-green deploy",
            description=(
                "Deploy an image to a service's idle slot, prove it with probes and smoke tests, switch all "
                "traffic at once, keep the previous version warm for instant rollback. Rolls back on any failure."
            ),
        ),
        entrypoint="deploy",
        on_exit="exit-handler",
        arguments=PARAMETERS,
        active_deadline_seconds=WORKFLOW_DEADLINE_SECONDS,
        synchronization=service_mutex(),
        workflow_metadata=workflow_metadata(),
        metrics=run_metrics(),
    ) as template:
        preflight = step_container(
            StepSpec(
                template="preflight",
                step="preflight",
                inputs=["service", "image", "workflow", "triggered-by", "commit", "reason"],
                outputs=["record", "live-slot", "target-slot", "previous-image", "analysis-enabled"],
                deadline_seconds=15 * 60,
                retry=True,
                description="Validate inputs, adopt an unmanaged service, open the deployment record.",
            ),
            settings,
        )
        deploy_green = step_container(
            StepSpec(
                template="deploy-green",
                step="deploy-green",
                inputs=["service", "image", "slot", "record"],
                outputs=["deployment"],
                deadline_seconds=20 * 60,
                retry=True,
                description="Bring the new version up in the idle slot and wait until every replica is available.",
            ),
            settings,
        )
        probe = step_container(
            StepSpec(
                template="probe",
                step="probe",
                inputs=["service", "slot", "record"],
                deadline_seconds=10 * 60,
                description="Health-check the idle slot through the preview Service.",
            ),
            settings,
        )
        smoke = step_container(
            StepSpec(
                template="smoke",
                step="smoke",
                inputs=["service", "slot", "record"],
                deadline_seconds=5 * 60,
                description="Run the spec's smoke tests against the idle slot.",
            ),
            settings,
        )
        switch = step_container(
            StepSpec(
                template="switch",
                step="switch",
                inputs=["service", "slot", "record"],
                outputs=["switched-at"],
                deadline_seconds=5 * 60,
                retry=True,
                metrics=switch_metrics(),
                description="Record the intent, then move all traffic to the new slot in one update.",
            ),
            settings,
        )
        verify = step_container(
            StepSpec(
                template="verify",
                step="verify",
                inputs=["service", "record"],
                deadline_seconds=60 * 60,
                description="Post-switch analysis against Prometheus; a breach fails the run and rolls back.",
            ),
            settings,
        )
        retain = step_container(
            StepSpec(
                template="retain",
                step="retain",
                inputs=["service", "record"],
                deadline_seconds=3 * 60,
                retry=True,
                description="Keep the previous slot warm until its retention ends; close the record.",
            ),
            settings,
        )
        cleanup = step_container(
            StepSpec(
                template="cleanup",
                step="cleanup",
                inputs=["service"],
                deadline_seconds=5 * 60,
                retry=True,
                description="Remove this service's expired previous versions.",
            ),
            settings,
        )
        rollback = step_container(rollback_step("on-exit"), settings)
        notify = step_container(notify_step(), settings)

        service = "{{workflow.parameters.service}}"
        with DAG(name="deploy"):
            t_preflight = Task(
                name="preflight",
                template=preflight,
                arguments={
                    "service": service,
                    "image": "{{workflow.parameters.image}}",
                    "workflow": "{{workflow.name}}",
                    "triggered-by": "{{workflow.parameters.triggered-by}}",
                    "commit": "{{workflow.parameters.commit}}",
                    "reason": "{{workflow.parameters.reason}}",
                },
            )
            slot_and_record = {
                "service": service,
                "slot": t_preflight.get_parameter("target-slot").value,
                "record": t_preflight.get_parameter("record").value,
            }
            record_only = {"service": service, "record": t_preflight.get_parameter("record").value}
            t_deploy = Task(
                name="deploy-green",
                template=deploy_green,
                arguments={**slot_and_record, "image": "{{workflow.parameters.image}}"},
            )
            t_probe = Task(name="probe", template=probe, arguments=slot_and_record)
            t_smoke = Task(name="smoke", template=smoke, arguments=slot_and_record)
            t_switch = Task(name="switch", template=switch, arguments=slot_and_record)
            t_verify = Task(
                name="verify",
                template=verify,
                arguments=record_only,
                when=f"{t_preflight.get_parameter('analysis-enabled').value} == true",
            )
            t_retain = Task(name="retain", template=retain, arguments=record_only)
            t_cleanup = Task(name="cleanup", template=cleanup, arguments={"service": service})
            # A bare name in `depends` also accepts Skipped, so retain still runs when verify is skipped.
            chain = [t_preflight, t_deploy, t_probe, t_smoke, t_switch, t_verify, t_retain, t_cleanup]
            for before, after in itertools.pairwise(chain):
                before >> after

        with DAG(name="exit-handler"):
            t_rollback = Task(
                name="rollback", template=rollback, arguments=exit_arguments(), when="{{workflow.status}} != Succeeded"
            )
            Task(
                name="notify",
                template=notify,
                arguments=exit_arguments(),
                # notify always runs, after the rollback finished whatever its outcome.
                depends=" || ".join(
                    f"{t_rollback.name}.{result}" for result in ("Succeeded", "Failed", "Errored", "Skipped")
                ),
            )
    return template


__all__ = ["NAME", "build"]
