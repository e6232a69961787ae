"""Several steps in one Pod: an Argo ``containerSet`` with one container node per step, run in order.

Why: the Argo controller looks at a workflow again only ``DEFAULT_REQUEUE_TIME`` after one of its Pods changed
(10 s unless the controller is tuned), so every Pod boundary on a deploy's path costs that long. Inside one Pod the
controller is not involved at all.

The steps keep their order themselves (:mod:`steps.set_sequence`) rather than through Argo's ``dependencies``: every
step's program starts with the Pod, loads its libraries, and waits for the steps before it to leave their exit code
on the shared emptyDir (``--set-state``, ``--wait-for``). Argo's executor would start a program only after looking
for its dependency's exit once a second, and notice a program's own end once a second too; with a Python start on
top, each boundary cost 0.9 to 2.8 s. A step whose predecessor failed does not run and fails with the executor's
own words for that. The ``main`` container still waits for every step through Argo, so the outputs are whole.

What each step keeps, and how:

* **its own node** in the Argo UI (type ``Container``), with its phase, its logs and its failure message. The UI
  draws the steps side by side, each leading to ``main``, not as a chain: the order is the pipeline's, and each
  step's log says what it waited for and how long (``waited``). A container node's start time is the Pod's, so the
  UI's duration of a later step includes that wait; the step's own log lines carry its real timing.
* **its deadline and its retries**: the executor has neither per container (its inner retry would re-run a failed
  health check), so each step gets ``--deadline-seconds`` and ``--transient-retries`` and enforces them itself
  (:mod:`steps.attempts`), as a step in a Pod of its own does. Pod-level errors (an eviction,
  a lost node) retry the whole set through the template's ``retryStrategy``; every step is idempotent, so the
  steps that had finished find their work done and go on.
* **what an earlier step decided**: Argo fixes every container's arguments when it creates the Pod, so a step that
  needs preflight's choices (the slot, the record, the pinned image, its deadline) reads them from preflight's output
  files (``from_preflight``, :mod:`steps.preflight_handoff`) rather than from parameters.
* **its outputs**: every step writes under ``/tmp/outputs`` on the emptyDir all the containers mount. Argo
  collects a container set's outputs only from a container named ``main`` (its controller refuses a set with outputs
  and no ``main``), when that container exits; so a set with outputs ends with a ``main`` container that waits for
  every step and does nothing else. It shows in the UI as one more node, after the last step.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/container-set-template/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hera.workflows import ContainerNode, ContainerSet, Parameter, Resources
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Gauge, Histogram

from bluegreen_contract import DEADLINE_OUTPUTS, SET_OUTPUTS_CONTAINER, Step
from pipelines.argo_variables import input_parameter
from pipelines.settings import RenderSettings
from pipelines.step_container import (
    OUTPUT_DIR,
    RESTRICTED,
    StepSpec,
    output_parameters,
    pod_error_retry,
    step_args,
    step_env,
    step_resources,
    tmp_volume,
)

#: An output's value when its step did not get to write it: the set failed or stopped before that step.
UNSET_OUTPUT = ""
#: The outputs container runs `true`; the set's resources are the sum of its containers'.
TINY = Resources(cpu_request="10m", cpu_limit="100m", memory_request="16Mi", memory_limit="32Mi")
#: The inputs a step after preflight in the same Pod reads from preflight's outputs instead.
HANDED_OVER = frozenset({"image", "slot", "record"})
#: Added to the sum of the steps' deadlines for the whole Pod, and for a step's wait for those before it.
POD_MARGIN_SECONDS = 60
#: The directory on the Pod's emptyDir where each step leaves its exit code for the steps after it.
SET_STATE_DIR = "/tmp/steps"


@dataclass(frozen=True, kw_only=True)
class SetStep:
    """One step of a set, and the steps of the same set it waits for."""

    spec: StepSpec
    after: Sequence[str] = ()
    #: Runs after preflight in the same Pod and takes the slot, the record, the image and its deadline from
    #: preflight's output files (:mod:`steps.preflight_handoff`): no parameter can carry them into a Pod that exists
    #: before preflight ran.
    from_preflight: bool = False

    @property
    def name(self) -> str:
        """The container's name, which the Argo UI shows as the step's node."""
        return self.spec.template

    @property
    def inputs(self) -> list[str]:
        """The set's inputs this step reads."""
        return [name for name in self.spec.inputs if not (self.from_preflight and name in HANDED_OVER)]

    @property
    def deadline_parameter(self) -> str | None:
        """The set's input that carries this step's per-run deadline, when preflight computes it outside the set."""
        if self.from_preflight or not self.spec.deadline_input:
            return None
        return DEADLINE_OUTPUTS[self.spec.step].value

    def deadline_seconds(self) -> str:
        """This step's deadline as it reaches the container: a fixed number, or the set's input."""
        parameter = self.deadline_parameter
        return input_parameter(parameter) if parameter else str(self.spec.deadline_seconds)

    def args(self, wait_seconds: int = 0) -> list[str]:
        """The step's command line: the one its own Pod would run, plus its deadline, retries and place in the set.

        ``wait_seconds`` bounds the wait for the steps in :attr:`after`: the sum of their own deadlines and more.
        """
        # With preflight's outputs, this is the cap the per-run deadline never exceeds; preflight's own one wins.
        own = [f"--deadline-seconds={self.deadline_seconds()}"]
        if self.from_preflight:
            own.append(f"--preflight-outputs={OUTPUT_DIR}")
        own.append(f"--set-state={SET_STATE_DIR}")
        if self.after:
            own += [f"--wait-for={earlier}" for earlier in self.after]
            own.append(f"--wait-seconds={wait_seconds}")
        return step_args(replace(self.spec, inputs=self.inputs)) + own


def _deadline_sum(steps: Sequence[SetStep]) -> str:
    """An Argo expression for the Pod's deadline: every step's, plus the margin (an upper bound for parallel steps)."""
    fixed = sum(step.spec.deadline_seconds for step in steps if not step.deadline_parameter) + POD_MARGIN_SECONDS
    terms = [f"asInt(inputs.parameters['{step.deadline_parameter}'])" for step in steps if step.deadline_parameter]
    if not terms:
        return str(fixed)
    return "{{=" + " + ".join([*terms, str(fixed)]) + "}}"


def step_set(
    name: str,
    steps: Sequence[SetStep],
    settings: RenderSettings,
    *,
    description: str,
    metrics: Sequence[Counter | Gauge | Histogram] = (),
) -> ContainerSet:
    """Build the containerSet template that runs ``steps`` in one Pod."""
    known = {step.name for step in steps}
    for step in steps:
        unknown = set(step.after) - known
        if unknown:
            raise ValueError(f"step set {name}: {step.name} waits for {sorted(unknown)}, which are not in the set")
    by_name = {step.name: step for step in steps}

    def ancestors(step: SetStep) -> set[str]:
        found: set[str] = set()
        waiting = list(step.after)
        while waiting:
            earlier = waiting.pop()
            if earlier not in found:
                found.add(earlier)
                waiting.extend(by_name[earlier].after)
        return found

    def _wait_bound(earlier: set[str]) -> int:
        # A per-run deadline never exceeds its cap, and a step's deadline covers all of its attempts.
        return sum(by_name[e].spec.deadline_seconds for e in earlier) + POD_MARGIN_SECONDS

    for step in steps:
        if step.from_preflight and not any(by_name[a].spec.step is Step.preflight for a in ancestors(step)):
            raise ValueError(
                f"step set {name}: {step.name} reads preflight's outputs but does not wait for preflight in the set"
            )
    if SET_OUTPUTS_CONTAINER in known:
        raise ValueError(
            f"step set {name}: no step may be called {SET_OUTPUTS_CONTAINER}, Argo's name for the outputs"
        )
    inputs: list[Parameter] = []
    for parameter in dict.fromkeys(p for step in steps for p in step.inputs):
        inputs.append(Parameter(name=parameter))
    for step in steps:
        if step.deadline_parameter:
            inputs.append(Parameter(name=step.deadline_parameter, default=str(step.spec.deadline_seconds)))
    outputs = [parameter for step in steps for parameter in output_parameters(step.spec, missing=UNSET_OUTPUT)]
    tmp = tmp_volume()
    with ContainerSet(
        name=name,
        inputs=inputs,
        outputs=outputs,
        volumes=[tmp],
        volume_mounts=[m.VolumeMount(name=tmp.name, mount_path="/tmp")],
        active_deadline_seconds=_deadline_sum(steps),
        # A step's transient exit code is retried inside its container; the template retries the Pod's errors.
        retry_strategy=pod_error_retry(),
        metrics=list(metrics) or None,
        annotations={"workflows.argoproj.io/description": description},
    ) as template:
        for step in steps:
            ContainerNode(
                name=step.name,
                image=settings.image,
                image_pull_policy="IfNotPresent",
                command=["bluegreen-step"],
                # No `dependencies`: the step waits for those before it itself (see the module's docstring).
                args=step.args(wait_seconds=_wait_bound(ancestors(step))),
                env=step_env(settings),
                security_context=RESTRICTED,
                resources=step_resources(settings),
            )
        if outputs:
            ContainerNode(
                name=SET_OUTPUTS_CONTAINER,
                image=settings.image,
                image_pull_policy="IfNotPresent",
                command=["true"],
                # After every step, so the outputs are all written when Argo's executor reads them.
                dependencies=sorted(known),
                security_context=RESTRICTED,
                resources=TINY,
            )
    return template


__all__ = ["POD_MARGIN_SECONDS", "SET_STATE_DIR", "SetStep", "step_set"]
