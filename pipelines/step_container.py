"""The one factory for step containers, so every template runs the steps image the same hardened way.

Each template runs ``bluegreen-step <step> --namespace {{workflow.namespace}} ...`` from the steps image. The
factory gives every container the restricted securityContext, resources, a writable ``/tmp`` (the root filesystem is
read-only), the notification URLs from an optional Secret, and outputs read from files with ``valueFrom.path``.

Argo references: https://argo-workflows.readthedocs.io/en/latest/fields/#container,
https://argo-workflows.readthedocs.io/en/latest/retries/ and
https://argo-workflows.readthedocs.io/en/latest/walk-through/output-parameters/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hera.workflows import Container, EmptyDirVolume, Env, FieldEnv, Parameter, Resources, RetryStrategy, SecretEnv
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Gauge, Histogram

from bluegreen_contract import (
    ARGO_UI_URL_ENV,
    ARGO_WORKFLOW_POD_LABEL,
    PUSHGATEWAY_URL_ENV,
    RUN_WORKFLOW_ENV,
    RUN_WORKFLOW_UID_ENV,
    SLACK_WEBHOOK_URL_ENV,
    WEBHOOK_URL_ENV,
    Output,
    Step,
)
from pipelines.argo_variables import WORKFLOW_NAMESPACE, WORKFLOW_UID, input_parameter
from pipelines.settings import SLACK_URL_KEY, WEBHOOK_URL_KEY, RenderSettings

#: The input parameter that carries a per-run activeDeadlineSeconds (see ``StepSpec.deadline_input``).
DEADLINE_INPUT = "deadline"

OUTPUT_DIR = "/tmp/outputs"

RESTRICTED = m.SecurityContext(
    run_as_non_root=True,
    allow_privilege_escalation=False,
    read_only_root_filesystem=True,
    capabilities=m.Capabilities(drop=["ALL"]),
    seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
)

POD_SECURITY = m.PodSecurityContext(
    run_as_non_root=True,
    run_as_user=65532,
    run_as_group=65532,
    fs_group=65532,
    seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
)


def step_resources(settings: RenderSettings) -> Resources:
    """What every step container requests and is limited to: the render's choice (see RenderSettings)."""
    return Resources(
        cpu_request=settings.step_cpu_request,
        cpu_limit=settings.step_cpu_limit,
        memory_request=settings.step_memory_request,
        memory_limit=settings.step_memory_limit,
    )


#: How often a step retries its transient failures (exit 75) in its own process, with :mod:`steps.attempts`' backoff.
TRANSIENT_RETRIES = 3


#: Retry a Pod that Argo found gone (``Error``: a lost node, a Pod deleted before it reported) or whose containers
#: were stopped with SIGTERM (``Failed`` with exit code 143: ``kubectl drain``'s Eviction API, ``kubectl delete pod``,
#: anything that deletes the Pod gracefully). No step exits 143 by itself. Argo tells the two apart only by timing,
#: whether it saw the containers' exit codes before the Pod vanished, and both mean the same to a run. A Pod stopped
#: at its own deadline is not retried: it would only run out of time again.
POD_LOSS_RETRY_EXPRESSION = (
    'lastRetry.status == "Error" || (lastRetry.status == "Failed" && lastRetry.exitCode == "143" '
    '&& !(lastRetry.message contains "deadline"))'
)


def pod_error_retry(limit: int = 3) -> RetryStrategy:
    """Retry a lost Pod (an eviction, a drain, a lost node) at once; never a step's own exit code.

    A step retries its transient exit code (75) itself, with a backoff (``--transient-retries``, see ``step_args``):
    Argo waits out a ``retryStrategy``'s backoff before it evaluates the policy and the expression
    (``processNodeRetries``), so a backoff here would hold every failed check, and the exit handler's rollback after
    it, for the backoff and one more requeue even though no retry follows. Retrying a probe that found the new version
    broken would only delay the rollback, so a failed check (exit 1) is never retried; a lost Pod gets a new Pod at
    once, and every step resumes from the run's record (see :data:`POD_LOSS_RETRY_EXPRESSION`).
    """
    return RetryStrategy(limit=str(limit), retry_policy="Always", expression=POD_LOSS_RETRY_EXPRESSION)


@dataclass(kw_only=True)
class StepSpec:
    """What differs between step templates.

    Attributes:
        template: the Argo template name.
        step: the ``bluegreen-step`` subcommand.
        inputs: input parameter names; each becomes ``--<name>={{inputs.parameters.<name>}}``.
        extra_args: arguments after the inputs, already in their final form.
        outputs: output parameter names the step writes under the output directory.
        deadline_seconds: the template's activeDeadlineSeconds, or with ``deadline_input`` the default of its
            ``deadline`` input, which the DAG sets per run from preflight's outputs.
        deadline_input: whether the deadline comes from the ``deadline`` input parameter.
        retry: whether the step may be retried on transient failure.
        metrics: template metrics.
    """

    template: str
    step: Step
    inputs: Sequence[str] = ()
    extra_args: Sequence[str] = ()
    outputs: Sequence[Output] = ()
    deadline_seconds: int = 300
    deadline_input: bool = False
    retry: bool = False
    metrics: Sequence[Counter | Gauge | Histogram] = field(default_factory=list)
    description: str = ""
    #: Values for outputs a run may not write (a step that failed, or one whose path did not need them).
    output_defaults: Mapping[Output, str] = field(default_factory=dict)


def step_env(settings: RenderSettings) -> list[Env | SecretEnv | FieldEnv]:
    """Environment every step gets: URLs from the render settings and from an optional Secret, and its workflow.

    Notification URLs carry credentials, so they come from the Secret through the kubelet, never through the API.
    The workflow's name comes from the Pod's own label, which a submitter cannot choose the way it chooses inputs, and
    its uid from the controller's substitution.
    """
    env: list[Env | SecretEnv | FieldEnv] = [
        FieldEnv(name=RUN_WORKFLOW_ENV, field_path=f"metadata.labels['{ARGO_WORKFLOW_POD_LABEL}']"),
        # Substituted by the controller into our own template, which a submitter cannot replace: Strict refuses a
        # Workflow's own templates, and the submit policy templates smuggled into its status.
        Env(name=RUN_WORKFLOW_UID_ENV, value=WORKFLOW_UID),
        SecretEnv(
            name=SLACK_WEBHOOK_URL_ENV,
            secret_name=settings.notifications_secret,
            secret_key=SLACK_URL_KEY,
            optional=True,
        ),
        SecretEnv(
            name=WEBHOOK_URL_ENV, secret_name=settings.notifications_secret, secret_key=WEBHOOK_URL_KEY, optional=True
        ),
    ]
    if settings.argo_ui_url:
        env.append(Env(name=ARGO_UI_URL_ENV, value=settings.argo_ui_url))
    if settings.pushgateway_url:
        env.append(Env(name=PUSHGATEWAY_URL_ENV, value=settings.pushgateway_url))
    return env


def step_args(spec: StepSpec) -> list[str]:
    """The ``bluegreen-step`` command line of one step, its inputs as the template's input parameters."""
    args = [spec.step.value, "--namespace", WORKFLOW_NAMESPACE]
    # `--name=value` as one argument, so a value that starts with "-" (a reason, say) is never read as an option.
    args += [f"--{name}={input_parameter(name)}" for name in spec.inputs]
    args += list(spec.extra_args)
    if spec.retry:
        args.append(f"--transient-retries={TRANSIENT_RETRIES}")
    if spec.outputs:
        args += ["--output-dir", OUTPUT_DIR]
    return args


def output_parameters(spec: StepSpec, missing: str | None = None) -> list[Parameter]:
    """The step's outputs, each read by Argo from its file under the output directory.

    ``missing`` is the value of an output the step did not write and that has no default of its own.
    """
    return [
        Parameter(
            name=name.value,
            value_from=m.ValueFrom(path=f"{OUTPUT_DIR}/{name.value}", default=spec.output_defaults.get(name, missing)),
        )
        for name in spec.outputs
    ]


def tmp_volume() -> EmptyDirVolume:
    """The writable ``/tmp`` every step gets (the root filesystem is read-only); outputs are written there too."""
    return EmptyDirVolume(name="tmp", mount_path="/tmp", size_limit=m.Quantity("64Mi"))


def step_container(spec: StepSpec, settings: RenderSettings) -> Container:
    """Build the Container template for one step."""
    return Container(
        name=spec.template,
        image=settings.image,
        image_pull_policy="IfNotPresent",
        command=["bluegreen-step"],
        args=step_args(spec),
        inputs=[
            *(Parameter(name=name) for name in spec.inputs),
            *([Parameter(name=DEADLINE_INPUT, default=str(spec.deadline_seconds))] if spec.deadline_input else []),
        ],
        outputs=output_parameters(spec),
        env=step_env(settings),
        security_context=RESTRICTED,
        resources=step_resources(settings),
        volumes=[tmp_volume()],
        # Argo substitutes parameters into a leaf template's activeDeadlineSeconds (validate.go accepts a variable).
        active_deadline_seconds=input_parameter(DEADLINE_INPUT) if spec.deadline_input else str(spec.deadline_seconds),
        retry_strategy=pod_error_retry() if spec.retry else None,
        metrics=list(spec.metrics) or None,
        annotations={"workflows.argoproj.io/description": spec.description} if spec.description else None,
    )


__all__ = [
    "DEADLINE_INPUT",
    "OUTPUT_DIR",
    "POD_LOSS_RETRY_EXPRESSION",
    "POD_SECURITY",
    "RESTRICTED",
    "TRANSIENT_RETRIES",
    "StepSpec",
    "output_parameters",
    "pod_error_retry",
    "step_args",
    "step_container",
    "step_env",
    "step_resources",
    "tmp_volume",
]
