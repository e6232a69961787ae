"""The ``blue-green-cleanup`` sweep: removes expired previous versions and repairs abandoned runs.

``argo terminate`` skips a workflow's exit handler, and a controller crash can do the same, so the rollback cannot
rest on ``onExit`` alone. Every few minutes this workflow looks at every managed service in its namespace: a record
left in ``Deploying`` or ``Switching`` whose workflow is gone or finished gets its traffic restored to the last
verified slot, and previous slots whose retention has passed (and which the live route, re-read, does not use) are
scaled down and deleted.

The sweep is a WorkflowTemplate and the CronWorkflow of the same name only starts it (``workflowTemplateRef``): a
workflow-controller under ``templateReferencing: Strict`` (see :mod:`pipelines.argo_controller`) runs no Workflow
that brings its own templates, and a CronWorkflow's Workflows are no exception. A mutex per namespace keeps two sweeps
from overlapping however they were started (the schedule, ``argo submit --from``); ``concurrencyPolicy: Forbid`` keeps
the schedule from queueing sweeps behind it.

Argo references: https://argo-workflows.readthedocs.io/en/latest/cron-workflows/ and
https://argo-workflows.readthedocs.io/en/latest/workflow-templates/#referencing-other-workflowtemplates.
"""

from __future__ import annotations

from hera.workflows import DAG, CronWorkflow, Task, WorkflowTemplate
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Gauge, Label

from bluegreen_contract import STEP_OUTPUTS, Output, Step
from bluegreen_spec import STEP_DEADLINE_SECONDS
from pipelines.argo_variables import TEMPLATE_STATUS, WORKFLOW_NAMESPACE, WORKFLOW_STATUS, output_parameter
from pipelines.run_policy import WORKFLOW_OBJECT_LABELS, common_fields
from pipelines.settings import RenderSettings
from pipelines.step_container import StepSpec, step_container

NAME = "blue-green-cleanup"
#: A repair restores traffic as the rollback step does, waiting up to the spec's readinessTimeout for the previous
#: slot; the sweep step gets the rollback step's deadline plus time for every other service's cleanup.
SWEEP_STEP_DEADLINE_SECONDS = STEP_DEADLINE_SECONDS[Step.rollback] + 5 * 60
SWEEP_DEADLINE_SECONDS = SWEEP_STEP_DEADLINE_SECONDS + 60
#: One sweep per namespace at a time. The dot keeps it apart from every per-service mutex
#: (``bluegreen-<namespace>-<service>``): neither a namespace nor a Service name holds one.
SWEEP_MUTEX = f"bluegreen.cleanup.{WORKFLOW_NAMESPACE}"
TITLE = "Blue-green cleanup and repair"
DESCRIPTION = (
    "Remove previous versions whose retention has passed and repair runs that died without their exit handler, for "
    "every BlueGreenDeployment in this namespace."
)


def overdue_metric() -> Gauge:
    """Slots past their retention that the latest successful sweep left in place, per namespace.

    The sweep counts them after its own removals, so a value above zero means the cleanup is stuck on them (a
    finalizer, a broken route, a run that never lets go), not merely that a retention has just ended.
    """
    return Gauge(
        name="bluegreen_cleanup_overdue_slots",
        help="Previous slots past their retention that the latest cleanup sweep left in place",
        # Not `namespace`: Prometheus gives that label the scraped controller's namespace and renames this one.
        labels=[Label(key="managed_namespace", value=WORKFLOW_NAMESPACE)],
        value=output_parameter(Output.overdue_slots.value),
        realtime=False,
        when=f"{TEMPLATE_STATUS} == Succeeded",
    )


def build_template(settings: RenderSettings) -> WorkflowTemplate:
    """Build the sweep's WorkflowTemplate: what runs, as whom, for how long, and its metrics."""
    with WorkflowTemplate(
        name=NAME,
        **common_fields(settings, title=TITLE, description=DESCRIPTION),
        entrypoint="sweep",
        active_deadline_seconds=SWEEP_DEADLINE_SECONDS,
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=SWEEP_MUTEX)]),
        metrics=[
            Counter(
                name="bluegreen_cleanup_runs",
                help="Blue-green cleanup sweeps by outcome",
                labels=[Label(key="status", value=WORKFLOW_STATUS)],
                value="1",
            ),
        ],
    ) as template:
        sweep = step_container(
            StepSpec(
                template="cleanup-all",
                step=Step.cleanup,
                extra_args=["--all-services"],
                outputs=STEP_OUTPUTS[Step.cleanup],
                metrics=[overdue_metric()],
                deadline_seconds=SWEEP_STEP_DEADLINE_SECONDS,
                retry=True,
                description="Clean up and repair every managed service in the namespace.",
            ),
            settings,
        )
        with DAG(name="sweep"):
            Task(name="cleanup-all", template=sweep)
    return template


def build(settings: RenderSettings) -> CronWorkflow:
    """Build the CronWorkflow that starts the sweep on a schedule; it carries nothing of the sweep itself."""
    return CronWorkflow(
        name=NAME,
        namespace=settings.namespace,
        labels=dict(WORKFLOW_OBJECT_LABELS),
        annotations={"workflows.argoproj.io/title": TITLE, "workflows.argoproj.io/description": DESCRIPTION},
        schedules=[settings.cleanup_schedule],
        timezone="UTC",
        concurrency_policy="Forbid",
        starting_deadline_seconds=60,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=5,
        workflow_template_ref=m.WorkflowTemplateRef(name=NAME),
    )


__all__ = ["NAME", "SWEEP_MUTEX", "build", "build_template"]
