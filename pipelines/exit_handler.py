"""The steps exit handlers run: rollback when a run failed, and the notification that always closes a run.

``{{workflow.failures}}`` reaches both as a parameter: Argo quotes it as a JSON string (or ``null``), and the
steps decode it into the record's reason.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/walk-through/exit-handlers/ and the "Exit
Handler" variables in https://argo-workflows.readthedocs.io/en/latest/variables/.
"""

from __future__ import annotations

from collections.abc import Sequence

from hera.workflows.metrics import Counter, Histogram, Label

from bluegreen_contract import STEP_OUTPUTS, Output, Step
from bluegreen_spec import STEP_DEADLINE_SECONDS
from pipelines.argo_variables import (
    SERVICE,
    SERVICE_PARAMETER,
    TEMPLATE_DURATION,
    TEMPLATE_STATUS,
    WORKFLOW_FAILURES,
    WORKFLOW_NAME,
    WORKFLOW_STATUS,
    input_parameter,
    output_parameter,
)
from pipelines.step_container import StepSpec

EXIT_INPUTS = (SERVICE_PARAMETER, "workflow", "workflow-status", "failures")


def exit_arguments() -> dict[str, str]:
    """What exit handler tasks receive: the run's identity, outcome and failures."""
    return {
        SERVICE_PARAMETER: SERVICE,
        "workflow": WORKFLOW_NAME,
        "workflow-status": WORKFLOW_STATUS,
        "failures": WORKFLOW_FAILURES,
    }


def rollback_metrics(trigger: str, when: str | None = None) -> list[Counter | Histogram]:
    """How many rollbacks ran and how long each took to restore traffic; ``when`` leaves some runs out."""
    labels = [
        Label(key="service", value=input_parameter(SERVICE_PARAMETER)),
        Label(key="trigger", value=trigger),
        Label(key="status", value=TEMPLATE_STATUS),
    ]
    return [
        Counter(
            name="bluegreen_rollbacks",
            help="Blue-green rollbacks by service, trigger and outcome",
            labels=labels,
            value="1",
            when=when,
        ),
        Histogram(
            name="bluegreen_rollback_duration_seconds",
            help="Duration of blue-green rollbacks",
            labels=labels,
            buckets=[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0],
            value=TEMPLATE_DURATION,
            when=when,
        ),
    ]


def rollback_step(trigger: str, inputs: Sequence[str] = EXIT_INPUTS) -> StepSpec:
    """The rollback template; ``trigger`` is ``on-exit`` (automatic) or ``manual`` (the one-click template)."""
    return StepSpec(
        template="rollback",
        step=Step.rollback,
        inputs=inputs,
        extra_args=["--trigger", trigger],
        deadline_seconds=STEP_DEADLINE_SECONDS[Step.rollback],
        retry=True,
        metrics=rollback_metrics(trigger),
        description="Restore traffic to the previous slot, scaling it back up first if needed.",
    )


def manual_rollback_steps(inputs: Sequence[str]) -> tuple[StepSpec, StepSpec]:
    """The one-click rollback, and the same step run again after the retained image was verified again.

    The first reports ``deferred`` (and the cosign plan) instead of moving traffic when the spec asks for the retained
    image to be verified again; its metrics leave that pass out, so a deferred pass is not counted as a rollback.
    """
    outputs = STEP_OUTPUTS[Step.rollback]
    defaults = {output: ("false" if output is Output.deferred else "") for output in outputs}
    counted = f"{output_parameter(Output.deferred)} != true"
    first = StepSpec(
        template="rollback",
        step=Step.rollback,
        inputs=inputs,
        extra_args=["--trigger", "manual"],
        outputs=outputs,
        output_defaults=defaults,
        deadline_seconds=STEP_DEADLINE_SECONDS[Step.rollback],
        retry=True,
        metrics=rollback_metrics("manual", when=counted),
        description="Restore traffic to the previous slot; plan its verification first when the spec asks.",
    )
    again = StepSpec(
        template="rollback-verified",
        step=Step.rollback,
        inputs=inputs,
        extra_args=["--trigger", "manual", "--after-verification"],
        deadline_seconds=STEP_DEADLINE_SECONDS[Step.rollback],
        retry=True,
        metrics=rollback_metrics("manual"),
        description="Restore traffic to the previous slot, now that its image was verified again.",
    )
    return first, again


def notify_step() -> StepSpec:
    """The run summary; the notify step never fails the run over a notification."""
    return StepSpec(
        template="notify",
        step=Step.notify,
        inputs=EXIT_INPUTS,
        deadline_seconds=STEP_DEADLINE_SECONDS[Step.notify],
        description="Send the run summary to Slack and the webhook.",
    )


__all__ = ["EXIT_INPUTS", "exit_arguments", "manual_rollback_steps", "notify_step", "rollback_step"]
