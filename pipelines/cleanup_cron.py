"""The ``blue-green-cleanup`` CronWorkflow: removes expired previous versions and repairs abandoned runs.

``argo terminate`` skips a workflow's exit handler, and a controller crash can do the same, so the rollback cannot
rest on ``onExit`` alone. Every few minutes this workflow looks at every managed service in its namespace: a record
left in ``Deploying`` or ``Switching`` whose workflow is gone or finished gets its traffic restored to the last
verified slot, and previous slots whose retention has passed (and which the live route, re-read, does not use) are
scaled down and deleted. ``concurrencyPolicy: Forbid`` keeps two sweeps from overlapping.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/cron-workflows/.
"""

from __future__ import annotations

from hera.workflows import DAG, CronWorkflow, Task
from hera.workflows.metrics import Counter, Gauge, Label

from bluegreen_contract import STEP_OUTPUTS, Output, Step
from bluegreen_spec import STEP_DEADLINE_SECONDS
from pipelines.argo_variables import TEMPLATE_STATUS, WORKFLOW_NAMESPACE, WORKFLOW_STATUS, output_parameter
from pipelines.run_policy import common_fields
from pipelines.settings import RenderSettings
from pipelines.step_container import StepSpec, step_container

NAME = "blue-green-cleanup"
#: A repair restores traffic as the rollback step does, waiting up to the spec's readinessTimeout for the previous
#: slot; the sweep step gets the rollback step's deadline plus time for every other service's cleanup.
SWEEP_STEP_DEADLINE_SECONDS = STEP_DEADLINE_SECONDS[Step.rollback] + 5 * 60
SWEEP_DEADLINE_SECONDS = SWEEP_STEP_DEADLINE_SECONDS + 60


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


def build(settings: RenderSettings) -> CronWorkflow:
    """Build the cleanup/repair CronWorkflow."""
    with CronWorkflow(
        name=NAME,
        **common_fields(
            settings,
            title="Blue-green cleanup and repair",
            description=(
                "Remove previous versions whose retention has passed and repair runs that died without "
                "their exit handler, for every BlueGreenDeployment in this namespace."
            ),
        ),
        schedules=[settings.cleanup_schedule],
        timezone="UTC",
        concurrency_policy="Forbid",
        starting_deadline_seconds=60,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=5,
        entrypoint="sweep",
        active_deadline_seconds=SWEEP_DEADLINE_SECONDS,
        metrics=[
            Counter(
                name="bluegreen_cleanup_runs",
                help="Blue-green cleanup sweeps by outcome",
                labels=[Label(key="status", value=WORKFLOW_STATUS)],
                value="1",
            ),
        ],
    ) as cron:
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
    return cron


__all__ = ["NAME", "build"]
