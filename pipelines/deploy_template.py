"""The ``blue-green-deploy`` WorkflowTemplate: one run deploys one image to one service without downtime.

The DAG is release -> verify -> retain -> cleanup, where ``release`` runs preflight, deploy-green, probe, smoke
and switch in one Pod (an Argo containerSet, see :mod:`pipelines.step_set`): each Pod boundary costs the
workflow-controller's requeue time, and the steps keep a node each in the UI. A service that verifies its images or
waits for a person's promotion cannot release in that Pod, and preflight says so: the set's later containers end at
once (:mod:`steps.preflight_handoff`), and the staged branch runs one Pod per step instead: [cosign-verify ->
verify-image] -> deploy-green -> probe -> smoke -> [await-promotion -> wait-for-promotion -> confirm-promotion] ->
switch. The image-verification tasks run only when the spec's ``imagePolicy.signature`` is set, the promotion tasks
only when ``spec.promotion.mode`` is ``manual``, and ``verify`` only when the spec has an analysis section (preflight
reports all three), so one template serves every service and a run shows a skipped node for each check its service
does not ask for. ``wait-for-promotion`` is an Argo ``suspend`` node whose duration is the promotion timeout; because
Argo resumes such a node when the duration passes, ``confirm-promotion`` fails the run unless a person promoted it.
The exit handler rolls back whenever the workflow did not succeed (the rollback step itself honours
``spec.rollbackOnFailure``), then always notifies.

A workflow-level mutex keyed by namespace and service keeps two runs for one service from overlapping (invariant I5);
the rollback template takes the same mutex.

Argo references: https://argo-workflows.readthedocs.io/en/latest/walk-through/dag/,
https://argo-workflows.readthedocs.io/en/latest/walk-through/exit-handlers/,
https://argo-workflows.readthedocs.io/en/latest/synchronization/ and
https://argo-workflows.readthedocs.io/en/latest/metrics/.
"""

from __future__ import annotations

import itertools

from hera.workflows import DAG, Parameter, Suspend, Task, WorkflowTemplate
from hera.workflows.metrics import Counter, Gauge, Histogram, Label
from hera.workflows.models import Amount

from bluegreen_contract import (
    DEADLINE_OUTPUTS,
    DEPLOY_TEMPLATE,
    PROMOTION_GATE_TASK,
    STEP_OUTPUTS,
    Output,
    Step,
)
from bluegreen_spec import STEP_DEADLINE_SECONDS
from pipelines.argo_variables import (
    SERVICE,
    SERVICE_PARAMETER,
    TEMPLATE_DURATION,
    TEMPLATE_STATUS,
    WORKFLOW_CREATED_SORTABLE,
    WORKFLOW_DURATION,
    WORKFLOW_NAME,
    WORKFLOW_STATUS,
    input_parameter,
    workflow_parameter,
)
from pipelines.exit_handler import exit_arguments, notify_step, rollback_step
from pipelines.image_verification import cosign_container, verification_tasks, verify_image_step
from pipelines.run_policy import (
    WORKFLOW_DEADLINE_SECONDS,
    common_fields,
    service_mutex,
    workflow_metadata,
)
from pipelines.settings import RenderSettings
from pipelines.step_container import DEADLINE_INPUT, StepSpec, step_container
from pipelines.step_set import SetStep, step_set

NAME = DEPLOY_TEMPLATE
#: The task, and the containerSet template, that runs preflight, deploy-green, probe, smoke and switch in one Pod.
RELEASE_TASK = "release"
RUN_DURATION_BUCKETS: list[float | Amount] = [30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]

PARAMETERS = [
    Parameter(
        name=SERVICE_PARAMETER,
        description="Name of the BlueGreenDeployment (and Service) to deploy, e.g. user-service.",
    ),
    Parameter(
        name="image",
        value="",
        description=(
            "Image for the new version, ideally pinned by digest: registry/name@sha256:<digest>. Empty releases the "
            "team's Deployment exactly as it is (as git last wrote it): its image, env, resources and probes."
        ),
    ),
    Parameter(name="triggered-by", value="", description="Who or what started this deploy, for the audit record."),
    Parameter(name="commit", value="", description="Source commit of the image, for the audit record."),
    Parameter(name="reason", value="", description="Why this deploy happens, for the audit record."),
]


def run_metrics() -> list[Counter | Histogram | Gauge]:
    """Workflow-level metrics: runs by outcome and their duration, labelled by service."""
    labels = [
        Label(key="service", value=SERVICE),
        Label(key="status", value=WORKFLOW_STATUS),
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
            value=WORKFLOW_DURATION,
        ),
        deployed_version_metric(),
    ]


def deployed_version_metric() -> Gauge:
    """The image each successful run put live; its value orders runs, so the largest per service is live now."""
    return Gauge(
        name="bluegreen_deployed_version",
        help="Image a successful blue-green deploy put live; value: the run's creation time as YYYYMMDDhhmmss",
        labels=[Label(key="service", value=SERVICE), Label(key="image", value=workflow_parameter("image"))],
        value=WORKFLOW_CREATED_SORTABLE,
        realtime=False,
        when=f"{WORKFLOW_STATUS} == Succeeded",
    )


def started_metrics() -> list[Counter]:
    """Counted when the release Pod ends: started minus ended runs is the runs past that Pod that have not ended.

    Argo emits a template's metrics when its node ends, and preflight shares the release Pod, so a run counts as
    started once that Pod ends.
    """
    return [
        Counter(
            name="bluegreen_deploy_started",
            help="Blue-green deploy runs whose release Pod (preflight through switch) ended",
            labels=[Label(key="service", value=input_parameter(SERVICE_PARAMETER))],
            value="1",
        ),
    ]


def switch_metrics(*, from_output: bool = False) -> list[Histogram]:
    """Duration of the traffic switch step, from intent to verified read-back.

    A switch Pod of its own is measured by Argo (``{{duration}}``). A switch that shares the release Pod reports
    its own seconds as an output, and only a switch that got that far is observed.
    """
    seconds = f"{{{{outputs.parameters.{Output.switch_seconds.value}}}}}"
    return [
        Histogram(
            name="bluegreen_switch_duration_seconds",
            help="Duration of blue-green traffic switches",
            labels=[
                Label(key="service", value=input_parameter(SERVICE_PARAMETER)),
                Label(key="status", value=TEMPLATE_STATUS),
            ],
            buckets=[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0],
            value=seconds if from_output else TEMPLATE_DURATION,
            when=f"{seconds} >= 0" if from_output else None,
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
        preflight_spec = StepSpec(
            template="preflight",
            step=Step.preflight,
            inputs=[SERVICE_PARAMETER, "image", "workflow", "triggered-by", "commit", "reason"],
            outputs=STEP_OUTPUTS[Step.preflight],
            deadline_seconds=STEP_DEADLINE_SECONDS[Step.preflight],
            retry=True,
            description="Validate inputs, adopt an unmanaged service, open the deployment record.",
        )
        cosign = cosign_container(settings)
        verify_image = step_container(verify_image_step(), settings)
        deploy_green_spec = StepSpec(
            template="deploy-green",
            step=Step.deploy_green,
            inputs=[SERVICE_PARAMETER, "image", "slot", "record"],
            outputs=STEP_OUTPUTS[Step.deploy_green],
            deadline_seconds=STEP_DEADLINE_SECONDS[Step.deploy_green],
            deadline_input=True,
            retry=True,
            description="Bring the new version up in the idle slot and wait until every replica is available.",
        )
        deploy_green = step_container(deploy_green_spec, settings)
        probe_spec = StepSpec(
            template="probe",
            step=Step.probe,
            # Retried on pod-level errors (eviction, a lost node) and exit code 75 only; a failed check exits 1.
            retry=True,
            inputs=[SERVICE_PARAMETER, "slot", "record"],
            deadline_seconds=STEP_DEADLINE_SECONDS[Step.probe],
            deadline_input=True,
            description="Health-check the idle slot through the preview Service.",
        )
        probe = step_container(probe_spec, settings)
        smoke_spec = StepSpec(
            template="smoke",
            step=Step.smoke,
            # Retried on pod-level errors (eviction, a lost node) and exit code 75 only; a failed check exits 1.
            retry=True,
            inputs=[SERVICE_PARAMETER, "slot", "record"],
            deadline_seconds=STEP_DEADLINE_SECONDS[Step.smoke],
            deadline_input=True,
            description="Run the spec's smoke tests against the idle slot.",
        )
        smoke = step_container(smoke_spec, settings)
        await_promotion = step_container(
            StepSpec(
                template="await-promotion",
                step=Step.await_promotion,
                inputs=[SERVICE_PARAMETER, "slot", "record", "timeout"],
                deadline_seconds=STEP_DEADLINE_SECONDS[Step.await_promotion],
                retry=True,
                description="Record the preview URL and the wait, and notify that the run waits for promotion.",
            ),
            settings,
        )
        promotion_gate = Suspend(
            name=PROMOTION_GATE_TASK,
            inputs=[Parameter(name="timeout")],
            # Seconds, as Argo reads a bare number; on expiry Argo resumes the node, and confirm-promotion fails it.
            duration=input_parameter("timeout"),
            annotations={
                "workflows.argoproj.io/description": (
                    "Waits for `kubectl bluegreen promote` or Resume in the Argo UI; `kubectl bluegreen abort` "
                    "fails it and the run rolls back."
                )
            },
        )
        confirm_promotion = step_container(
            StepSpec(
                template="confirm-promotion",
                step=Step.confirm_promotion,
                inputs=[SERVICE_PARAMETER, "record", "workflow", "timeout"],
                deadline_seconds=STEP_DEADLINE_SECONDS[Step.confirm_promotion],
                retry=True,
                description="Go on only if a person promoted the run; the promotion timeout fails it.",
            ),
            settings,
        )
        switch_spec = StepSpec(
            template="switch",
            step=Step.switch,
            inputs=[SERVICE_PARAMETER, "slot", "record"],
            outputs=STEP_OUTPUTS[Step.switch],
            deadline_seconds=STEP_DEADLINE_SECONDS[Step.switch],
            retry=True,
            metrics=switch_metrics(),
            # What the switch-duration metric of the release Pod reads when the switch never ran (see there).
            output_defaults={Output.switch_seconds: "-1"},
            description="Record the intent, then move all traffic to the new slot in one update.",
        )
        switch = step_container(switch_spec, settings)
        verify = step_container(
            StepSpec(
                template="verify",
                step=Step.verify,
                # Retried on pod-level errors (eviction, a lost node) and exit code 75 only; a failed check exits 1.
                retry=True,
                inputs=[SERVICE_PARAMETER, "record"],
                deadline_seconds=STEP_DEADLINE_SECONDS[Step.verify],
                deadline_input=True,
                description="Post-switch analysis against Prometheus; a breach fails the run and rolls back.",
            ),
            settings,
        )
        retain = step_container(
            StepSpec(
                template="retain",
                step=Step.retain,
                inputs=[SERVICE_PARAMETER, "record"],
                deadline_seconds=STEP_DEADLINE_SECONDS[Step.retain],
                retry=True,
                description="Keep the previous slot warm until its retention ends; close the record.",
            ),
            settings,
        )
        cleanup = step_container(
            StepSpec(
                template="cleanup",
                step=Step.cleanup,
                inputs=[SERVICE_PARAMETER],
                deadline_seconds=STEP_DEADLINE_SECONDS[Step.cleanup],
                retry=True,
                description="Remove this service's expired previous versions.",
            ),
            settings,
        )
        rollback = step_container(rollback_step("on-exit"), settings)
        notify = step_container(notify_step(), settings)

        release = step_set(
            RELEASE_TASK,
            [
                SetStep(spec=preflight_spec),
                SetStep(spec=deploy_green_spec, after=[Step.preflight.value], from_preflight=True),
                SetStep(spec=probe_spec, after=[Step.deploy_green.value], from_preflight=True),
                # After probe, not beside it: probe is what waits until the preview Service answers at all (the
                # node's proxy rules for the new Pods can lag their readiness); smoke tests expect an answer.
                SetStep(spec=smoke_spec, after=[Step.probe.value], from_preflight=True),
                SetStep(spec=switch_spec, after=[Step.smoke.value], from_preflight=True),
            ],
            settings,
            metrics=[*switch_metrics(from_output=True), *started_metrics()],
            description=(
                "preflight, deploy-green, probe, smoke and switch in one Pod, each step a node of its own. A service "
                "that verifies images or waits for promotion runs the four steps after preflight as Pods of their "
                "own instead; their containers here then end at once and log why."
            ),
        )

        with DAG(name="deploy"):
            t_release = Task(
                name=RELEASE_TASK,
                template=release,
                arguments={
                    SERVICE_PARAMETER: SERVICE,
                    "image": workflow_parameter("image"),
                    "workflow": WORKFLOW_NAME,
                    "triggered-by": workflow_parameter("triggered-by"),
                    "commit": workflow_parameter("commit"),
                    "reason": workflow_parameter("reason"),
                },
            )
            slot_and_record = {
                SERVICE_PARAMETER: SERVICE,
                "slot": t_release.get_parameter(Output.target_slot).value,
                "record": t_release.get_parameter(Output.record).value,
            }
            record_only = {SERVICE_PARAMETER: SERVICE, "record": t_release.get_parameter(Output.record).value}

            def deadline(step: Step) -> dict[str, str | None]:
                return {DEADLINE_INPUT: t_release.get_parameter(DEADLINE_OUTPUTS[step]).value}

            verification = f"{t_release.get_parameter(Output.verification_required).value} == true"
            _, t_verify_image = verification_tasks(
                cosign,
                verify_image,
                t_release,
                slot=slot_and_record["slot"],
                record=slot_and_record["record"],
                when=verification,
            )
            # The image as preflight pinned it: a tag resolved once to its digest, which every later step uses.
            image = t_release.get_parameter(Output.image).value
            manual = f"{t_release.get_parameter(Output.promotion_required).value} == true"
            # These services run the release as one Pod per step after the set (see steps.preflight_handoff): the
            # image is verified before a slot runs it, and the suspend node sits between smoke and switch. The run
            # waits for cosign or for a person anyway.
            staged = f"{verification} || {manual}"
            t_deploy = Task(
                name="deploy-green",
                template=deploy_green,
                arguments={**slot_and_record, "image": image, **deadline(Step.deploy_green)},
                when=staged,
            )
            t_probe = Task(
                name="probe", template=probe, arguments={**slot_and_record, **deadline(Step.probe)}, when=staged
            )
            t_smoke = Task(
                name="smoke", template=smoke, arguments={**slot_and_record, **deadline(Step.smoke)}, when=staged
            )
            timeout = {"timeout": t_release.get_parameter(Output.promotion_timeout).value}
            t_await = Task(
                name="await-promotion",
                template=await_promotion,
                arguments={**slot_and_record, **timeout},
                when=manual,
            )
            t_gate = Task(name=PROMOTION_GATE_TASK, template=promotion_gate, arguments=timeout, when=manual)
            t_confirm = Task(
                name="confirm-promotion",
                template=confirm_promotion,
                arguments={**record_only, "workflow": WORKFLOW_NAME, **timeout},
                when=manual,
            )
            t_switch = Task(name="switch", template=switch, arguments=slot_and_record, when=staged)
            t_verify = Task(
                name="verify",
                template=verify,
                arguments={**record_only, **deadline(Step.verify)},
                when=f"{t_release.get_parameter(Output.analysis_enabled).value} == true",
            )
            t_retain = Task(name="retain", template=retain, arguments=record_only)
            t_cleanup = Task(name="cleanup", template=cleanup, arguments={SERVICE_PARAMETER: SERVICE})
            # A bare name in `depends` also accepts Skipped: a skipped verify-image or promotion gate lets the
            # staged steps go on, verify runs after the release whichever way it ran, and retain still runs when
            # verify is skipped.
            staged_chain = [t_verify_image, t_deploy, t_probe, t_smoke, t_await, t_gate, t_confirm, t_switch]
            t_release >> t_deploy
            for before, after in itertools.pairwise(staged_chain):
                before >> after
            t_release >> t_verify
            t_switch >> t_verify
            for before, after in itertools.pairwise([t_verify, t_retain, t_cleanup]):
                before >> after

        with DAG(name="exit-handler"):
            t_rollback = Task(
                name="rollback", template=rollback, arguments=exit_arguments(), when=f"{WORKFLOW_STATUS} != Succeeded"
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
