"""The cosign template: sigstore's own cosign, in its own container, checks one signer's signature or attestation.

The deploy DAG loops this template over the indexes of the calls preflight planned (``withParam``), one container per
check and trusted signer. Each container gets the whole plan and its index, and reads its call's fields with Argo's
``jsonpath`` expression, so a PEM key's line breaks and a regular expression's backslashes arrive intact (see
:class:`bluegreen_contract.CosignField` for why the loop items are not the calls themselves). cosign reads the public
key from an environment variable (``--key env://...``); the container needs neither a key volume nor API access.
A passing call writes what cosign verified to a file and echoes its index back; a failing call exits non-zero and
reports nothing, which is how ``verify-image`` tells them apart (Argo aggregates only the outputs of a loop's
succeeded iterations).

A refused signature is the loop's expected failure, so ``verify-image`` depends on the loop having Succeeded *or*
Failed (:func:`after_cosign`; Argo refuses ``continueOn`` beside ``depends``) and decides and explains. Only the
leaf tasks decide a DAG's phase, so the failed loop does not fail a run that verify-image lets through. Pod-level
errors (an eviction, a lost node) are retried; a cosign refusal is not.

cosign references: https://docs.sigstore.dev/cosign/verifying/verify/ and
https://docs.sigstore.dev/cosign/verifying/attestation/.
"""

from __future__ import annotations

from hera.workflows import Container, EmptyDirVolume, Env, Parameter, Resources, RetryStrategy, Task
from hera.workflows import models as m

from bluegreen_contract import (
    COSIGN_PUBLIC_KEY_ENV,
    COSIGN_TASK,
    CosignField,
    CosignInput,
    CosignOutput,
    Output,
    Step,
)
from bluegreen_spec import STEP_DEADLINE_SECONDS
from pipelines.argo_variables import SERVICE, SERVICE_PARAMETER, input_parameter
from pipelines.settings import RenderSettings
from pipelines.step_container import RESTRICTED, StepSpec

TEMPLATE = "cosign"
#: Where ko, which builds sigstore's cosign image, puts the program; it is also the image's entrypoint.
COSIGN_COMMAND = "/ko-app/cosign"
VERIFIED_PATH = "/tmp/verified.json"
#: Long enough for cosign to read a signature and attestations from a slow registry, short next to a deploy.
DEADLINE_SECONDS = 120
RESOURCES = Resources(cpu_request="50m", cpu_limit="1", memory_request="64Mi", memory_limit="256Mi")


def planned(field: CosignField) -> str:
    """An Argo expression for one field of this container's call in the plan."""
    plan, index = (f"inputs.parameters.{name.value}" for name in (CosignInput.plan, CosignInput.call_index))
    return f"{{{{=jsonpath({plan}, '$[' + {index} + '].{field.value}')}}}}"


def cosign_args() -> list[str]:
    """The cosign command line, every value from the plan; ``--name=value`` so an empty value stays one argument."""
    return [
        planned(CosignField.command),
        planned(CosignField.flag),
        f"--key={planned(CosignField.key_ref)}",
        f"--certificate-identity-regexp={planned(CosignField.identity)}",
        f"--certificate-oidc-issuer-regexp={planned(CosignField.issuer)}",
        f"--insecure-ignore-tlog={planned(CosignField.ignore_tlog)}",
        f"--output-file={VERIFIED_PATH}",
        planned(CosignField.image),
    ]


def cosign_container(settings: RenderSettings) -> Container:
    """The template; the image's entrypoint is cosign itself, so the arguments start with the subcommand."""
    return Container(
        name=TEMPLATE,
        image=settings.cosign_image,
        image_pull_policy="IfNotPresent",
        # The image's own entrypoint, named: Argo's emissary executor must otherwise read it from the registry, which
        # fails in clusters that cannot reach ghcr.io or need credentials for a mirror.
        command=[COSIGN_COMMAND],
        args=cosign_args(),
        inputs=[Parameter(name=name.value) for name in CosignInput],
        outputs=[
            Parameter(name=CosignOutput.call_index.value, value=input_parameter(CosignInput.call_index)),
            # A failed call writes no file; the default keeps its missing output from turning Failed into Error.
            Parameter(name=CosignOutput.verified.value, value_from=m.ValueFrom(path=VERIFIED_PATH, default="")),
        ],
        env=[
            Env(name=COSIGN_PUBLIC_KEY_ENV, value=planned(CosignField.public_key)),
            # The root filesystem is read-only: cosign's config and sigstore's trust cache go to the scratch volume.
            Env(name="HOME", value="/tmp"),
            Env(name="TUF_ROOT", value="/tmp/.sigstore"),
        ],
        security_context=RESTRICTED,
        resources=RESOURCES,
        volumes=[EmptyDirVolume(name="tmp", mount_path="/tmp", size_limit=m.Quantity("64Mi"))],
        active_deadline_seconds=str(DEADLINE_SECONDS),
        retry_strategy=RetryStrategy(limit="2", retry_policy="OnError"),
        annotations={
            "workflows.argoproj.io/description": (
                "cosign verifies one trusted signer's signature or vulnerability attestation on the image's digest."
            )
        },
    )


def after_cosign() -> str:
    """``verify-image``'s dependency: the cosign loop finished, whatever each call said, or was skipped."""
    return " || ".join(f"{COSIGN_TASK}.{phase}" for phase in ("Succeeded", "Failed", "Skipped"))


def verification_tasks(
    cosign: Container, verify_image: Container, planner: Task, slot: str | None, record: str | None, when: str
) -> tuple[Task, Task]:
    """The ``cosign-verify`` loop over ``planner``'s calls and the ``verify-image`` task after it, both under ``when``.

    ``planner`` is the task that wrote the plan (preflight in a deploy, the first rollback pass in a rollback); it
    must come before the loop, and the caller puts whatever follows after ``verify-image``.
    """
    plan = planner.get_parameter(Output.verification_plan).value
    loop = Task(
        name=COSIGN_TASK,
        template=cosign,
        with_param=planner.get_parameter(Output.verification_calls).value,
        arguments={CosignInput.plan.value: plan, CosignInput.call_index.value: "{{item}}"},
        when=when,
    )
    verify = Task(
        name="verify-image",
        template=verify_image,
        arguments={
            SERVICE_PARAMETER: SERVICE,
            "image": planner.get_parameter(Output.image).value,
            "slot": slot,
            "record": record,
            "plan": plan,
            "verified": f"{{{{tasks.{COSIGN_TASK}.outputs.parameters}}}}",
        },
        when=when,
        # A refused signature fails its iteration; verify-image reads which passed and explains the verdict.
        depends=after_cosign(),
    )
    planner >> loop
    return loop, verify


def verify_image_step() -> StepSpec:
    """The step after the cosign loop: the policy's verdict on what cosign verified, written into the record."""
    return StepSpec(
        template="verify-image",
        step=Step.verify_image,
        inputs=[SERVICE_PARAMETER, "image", "slot", "record", "plan", "verified"],
        deadline_seconds=STEP_DEADLINE_SECONDS[Step.verify_image],
        retry=True,
        description="Apply the image policy to what cosign verified; record the verdict and the signer.",
    )


__all__ = [
    "COSIGN_COMMAND",
    "TEMPLATE",
    "VERIFIED_PATH",
    "after_cosign",
    "cosign_args",
    "cosign_container",
    "planned",
    "verification_tasks",
    "verify_image_step",
]
