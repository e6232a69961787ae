"""The step contract: every fact ``pipelines`` and ``steps`` share besides the spec model, each defined once.

The WorkflowTemplates in ``pipelines/`` call the step programs in ``steps/``; the two sides agree here on

* the exit codes a step ends with, and which one the templates retry on;
* the environment variables the templates set and the steps read;
* the step names and the output parameters each step writes (Argo reads them with ``valueFrom.path``);
* Argo's final workflow phases, the values ``{{workflow.status}}`` takes in an exit handler;
* the Kubernetes API resources the steps call and the RBAC rules that allow exactly those calls. The Role in
  ``manifests/rbac`` and the RBAC table of docs/reference/rbac.md are generated from :data:`STEP_RULES`.

Slot names are :class:`bluegreen_spec.Slot`. A test parses every rendered container's arguments with the step CLI,
so the templates and the steps cannot disagree without a test failing.

Beside the standard library this module imports only the spec model (for its API group and kinds): no Hera, no
HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

import bluegreen_spec as spec


class ExitCode(IntEnum):
    """How a step ends; the templates retry ``TRANSIENT`` only."""

    OK = 0
    #: The step ran and what it checked failed (an unhealthy version, a breached threshold); do not retry.
    FAILED = 1
    #: Bad input or a spec that cannot be acted on; nothing was written.
    BAD_INPUT = 2
    #: A transient failure (API unavailable, throttled); running the step again may help (EX_TEMPFAIL).
    TRANSIENT = 75


# -- environment ---------------------------------------------------------------------------------------------------

#: Slack incoming-webhook URL, from the optional notifications Secret.
SLACK_WEBHOOK_URL_ENV = "BLUEGREEN_SLACK_WEBHOOK_URL"
#: Generic JSON webhook URL, from the optional notifications Secret.
WEBHOOK_URL_ENV = "BLUEGREEN_WEBHOOK_URL"
#: Base URL of the Argo UI, for links in notifications; a render setting.
ARGO_UI_URL_ENV = "BLUEGREEN_ARGO_UI_URL"
#: Prometheus Pushgateway the steps push a run's metrics to; a render setting.
PUSHGATEWAY_URL_ENV = "BLUEGREEN_PUSHGATEWAY_URL"

#: The workflow running the step's Pod, from the label Argo puts on every Pod it creates (through the downward API):
#: unlike an input parameter, a submitter cannot set it.
RUN_WORKFLOW_ENV = "BLUEGREEN_WORKFLOW"
ARGO_WORKFLOW_POD_LABEL = "workflows.argoproj.io/workflow"
#: The uid of that workflow, from ``{{workflow.uid}}`` in our templates. A name is reused once its workflow is
#: deleted; the uid never is, so it tells a run's own record from one a deleted workflow of the same name left.
RUN_WORKFLOW_UID_ENV = "BLUEGREEN_WORKFLOW_UID"

#: Where a failed step leaves its one-line reason: the Kubernetes default ``terminationMessagePath``, which the
#: step containers keep. The kubelet keeps at most 4096 bytes of it.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096


# -- steps and their outputs ---------------------------------------------------------------------------------------


class Step(StrEnum):
    """The ``bluegreen-step`` subcommands the templates run."""

    preflight = "preflight"
    verify_image = "verify-image"
    deploy_green = "deploy-green"
    probe = "probe"
    smoke = "smoke"
    await_promotion = "await-promotion"
    confirm_promotion = "confirm-promotion"
    switch = "switch"
    verify = "verify"
    retain = "retain"
    cleanup = "cleanup"
    rollback = "rollback"
    notify = "notify"


#: The container that ends a Pod running several steps (an Argo containerSet): Argo collects such a Pod's outputs only
#: from a container of this name. It runs no step; the run's readers leave it out.
SET_OUTPUTS_CONTAINER = "main"

#: Subcommands for people beside the steps; no template runs them.
USER_COMMANDS = ("history", "status")


class Output(StrEnum):
    """Output parameters a step writes under ``--output-dir``, one file each."""

    record = "record"
    live_slot = "live-slot"
    target_slot = "target-slot"
    previous_image = "previous-image"
    analysis_enabled = "analysis-enabled"
    deployment = "deployment"
    switched_at = "switched-at"
    #: Seconds from the switch's intent to its verified read-back, for the switch-duration metric of a Pod that
    #: runs several steps (a step's own Pod measures it with ``{{duration}}``).
    switch_seconds = "switch-seconds"
    deploy_green_deadline = "deploy-green-deadline"
    probe_deadline = "probe-deadline"
    smoke_deadline = "smoke-deadline"
    verify_deadline = "verify-deadline"
    promotion_required = "promotion-required"
    promotion_timeout = "promotion-timeout"
    overdue_slots = "overdue-slots"
    image = "image"
    #: What the release changes against the live slot, one line; the Argo UI shows it among the node's outputs.
    changes = "changes"
    verification_required = "verification-required"
    verification_plan = "verification-plan"
    verification_calls = "verification-calls"
    deferred = "deferred"


#: The steps whose activeDeadlineSeconds preflight computes from the spec, and the output that carries each.
DEADLINE_OUTPUTS: dict[Step, Output] = {
    Step.deploy_green: Output.deploy_green_deadline,
    Step.probe: Output.probe_deadline,
    Step.smoke: Output.smoke_deadline,
    Step.verify: Output.verify_deadline,
}


STEP_OUTPUTS: dict[Step, tuple[Output, ...]] = {
    Step.preflight: (
        Output.record,
        Output.live_slot,
        Output.target_slot,
        Output.previous_image,
        Output.analysis_enabled,
        *DEADLINE_OUTPUTS.values(),
        Output.promotion_required,
        Output.promotion_timeout,
        Output.image,
        Output.changes,
        Output.verification_required,
        Output.verification_plan,
        Output.verification_calls,
    ),
    # A manual rollback whose spec asks to verify the retained image again defers once: it plans the cosign calls,
    # moves no traffic, and the rollback template verifies and then runs it a second time.
    Step.rollback: (
        Output.deferred,
        Output.record,
        Output.target_slot,
        Output.image,
        Output.verification_plan,
        Output.verification_calls,
    ),
    Step.deploy_green: (Output.deployment,),
    Step.switch: (Output.switched_at, Output.switch_seconds),
    Step.cleanup: (Output.overdue_slots,),
}


class CosignCheck(StrEnum):
    """The two cosign checks a run can ask for, one call per trusted signer each."""

    signature = "signature"
    attestation = "attestation"

    @property
    def command(self) -> str:
        """The cosign subcommand."""
        return "verify" if self is CosignCheck.signature else "verify-attestation"

    @property
    def flag(self) -> str:
        """The one argument that differs besides the subcommand.

        ``verify`` restates its default, so both checks share one argument list and so one Argo loop.
        """
        return "--check-claims=true" if self is CosignCheck.signature else "--type=vuln"


#: The deploy DAG's task that loops over the planned cosign calls.
COSIGN_TASK = "cosign-verify"


class CosignField(StrEnum):
    """The fields of one planned cosign call, as preflight writes them into the plan (a JSON list).

    The deploy DAG loops over the calls' indexes (``verification-calls``), and the cosign template reads each field of
    its call out of the whole plan with an Argo expression. Loop items that are maps would be simpler, but Argo puts
    their values in JSON-escaped a second time, which would turn a PEM key's line breaks and a regular expression's
    backslashes into literal backslashes.
    """

    check = "check"
    command = "command"
    flag = "flag"
    authority = "authority"
    key_ref = "keyref"
    public_key = "publickey"
    identity = "identity"
    issuer = "issuer"
    ignore_tlog = "ignoretlog"
    image = "image"


class CosignInput(StrEnum):
    """The cosign template's inputs: the whole plan, and which call of it this one is."""

    plan = "plan"
    call_index = "index"


class CosignOutput(StrEnum):
    """What each passing cosign call reports back.

    Argo aggregates a loop's outputs from its succeeded iterations only, so the list ``verify-image`` receives names
    exactly the calls that passed.
    """

    call_index = "index"
    verified = "verified"


#: The environment variable the cosign container reads a planned public key from (cosign's ``env://`` key ref).
COSIGN_PUBLIC_KEY_ENV = "COSIGN_PUBLIC_KEY"


#: The deploy DAG's task that suspends a manual-promotion run (an Argo ``suspend`` template). Promote and abort find
#: its node by this display name; the step after it reads the node to tell a person's resume from the timeout.
PROMOTION_GATE_TASK = "wait-for-promotion"

#: Argo's final workflow phases; in an exit handler ``{{workflow.status}}`` is one of them.
WORKFLOW_FINISHED_PHASES = ("Succeeded", "Failed", "Error")


# -- the Kubernetes API the steps call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiResource:
    """A namespaced API resource the steps read or write."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """``group/version``, or just the version for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, an object, or its subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


BLUE_GREEN_DEPLOYMENTS = ApiResource(spec.API_GROUP, spec.API_VERSION, spec.PLURAL, spec.KIND)
DEPLOYMENT_RECORDS = ApiResource(spec.API_GROUP, spec.API_VERSION, spec.RECORD_PLURAL, spec.RECORD_KIND)
DEPLOYMENTS = ApiResource("apps", "v1", "deployments", "Deployment")
SERVICES = ApiResource("", "v1", "services", "Service")
PODS = ApiResource("", "v1", "pods", "Pod")
ENDPOINT_SLICES = ApiResource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
EVENTS = ApiResource("", "v1", "events", "Event")
SECRETS = ApiResource("", "v1", "secrets", "Secret")
CONFIG_MAPS = ApiResource("", "v1", "configmaps", "ConfigMap")
NETWORK_POLICIES = ApiResource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
PDBS = ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
HPAS = ApiResource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
VIRTUAL_SERVICES = ApiResource("networking.istio.io", "v1", "virtualservices", "VirtualService")
DESTINATION_RULES = ApiResource("networking.istio.io", "v1", "destinationrules", "DestinationRule")
HTTP_ROUTES = ApiResource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
#: The ServiceAccount the steps run as, in each namespace argo-bluegreen is installed into.
STEPS_SERVICE_ACCOUNT = "bluegreen-deployer"
#: The RBAC verb by which a namespace grants that ServiceAccount a slot identity: ``use`` on the ServiceAccount a
#: slot's pods run as, and on each Secret they refer to. No built-in API acts on it.
GRANT_VERB = "use"
#: How many distinct Secrets a slot's pods may refer to. Each RBAC check costs a fixed share of an expression's and a
#: policy's CEL budget (Kubernetes charges 350,000 of a 1,000,000 limit per expression and of 10,000,000 per policy),
#: so the admission policy checks each Secret in a validation of its own, and can afford this many.
GRANTED_SECRETS_LIMIT = 16
ROLES = ApiResource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = ApiResource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
WORKFLOWS = ApiResource("argoproj.io", "v1alpha1", "workflows", "Workflow")
WORKFLOW_TASK_RESULTS = ApiResource("argoproj.io", "v1alpha1", "workflowtaskresults", "WorkflowTaskResult")
WORKFLOW_TEMPLATES = ApiResource("argoproj.io", "v1alpha1", "workflowtemplates", "WorkflowTemplate")

#: The WorkflowTemplates the manifests install, by name: what CI and the kubectl plugin submit.
DEPLOY_TEMPLATE = "blue-green-deploy"
ROLLBACK_TEMPLATE = "blue-green-rollback"
#: Labels Argo puts on a Workflow: the template it was submitted from, and who submitted it (DNS-friendly).
WORKFLOW_TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
CREATOR_LABEL = "workflows.argoproj.io/creator"
CREATOR_USERNAME_LABEL = "workflows.argoproj.io/creator-preferred-username"
#: On every rendered WorkflowTemplate and CronWorkflow: the argo-bluegreen release that rendered it (Kubernetes'
#: recommended label), so ``kubectl bluegreen version`` can tell templates of another release from its own.
TEMPLATES_VERSION_LABEL = "app.kubernetes.io/version"


@dataclass(frozen=True)
class ApiCall:
    """One kind of request: a verb on a resource (and subresource) in the workflow's namespace."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    why: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {self.group or 'core'}/{resource}"


@dataclass(frozen=True)
class ApiRule:
    """One RBAC PolicyRule: verbs on resources of one API group, and why the steps need them."""

    resources: tuple[ApiResource, ...]
    verbs: tuple[str, ...]
    why: str
    subresource: str = ""

    @property
    def api_group(self) -> str:
        """The rule's API group; every resource of a rule shares it."""
        return self.resources[0].group

    @property
    def resource_names(self) -> tuple[str, ...]:
        """The resources as RBAC names them: ``plural`` or ``plural/subresource``."""
        suffix = f"/{self.subresource}" if self.subresource else ""
        return tuple(resource.plural + suffix for resource in self.resources)

    def calls(self) -> tuple[ApiCall, ...]:
        """Every request the rule allows, one per verb and resource."""
        return tuple(
            ApiCall(verb, resource.group, resource.plural, self.subresource, self.why)
            for resource in self.resources
            for verb in self.verbs
        )


def _rule(resources: ApiResource | tuple[ApiResource, ...], verbs: str, why: str, subresource: str = "") -> ApiRule:
    listed = resources if isinstance(resources, tuple) else (resources,)
    if len({resource.group for resource in listed}) != 1:
        raise ValueError("one rule, one API group")
    return ApiRule(listed, tuple(verbs.split()), why, subresource)


#: Every call the steps make: the Role grants exactly these, and nothing cluster-scoped. A step that needs a new
#: call adds it here first; the integration tests prove each one allowed as the rendered ServiceAccount.
STEP_RULES: tuple[ApiRule, ...] = (
    _rule(BLUE_GREEN_DEPLOYMENTS, "get list watch", "read each service's spec; cleanup lists them per namespace"),
    _rule(BLUE_GREEN_DEPLOYMENTS, "get patch update", "record phase, live slot, retention and history", "status"),
    _rule(
        DEPLOYMENT_RECORDS,
        "get list watch create patch update delete",
        "open one DeploymentRecord per run; prune beyond historyLimit",
    ),
    _rule(
        DEPLOYMENT_RECORDS,
        "get patch update",
        "append probe, smoke and transition entries; close the record",
        "status",
    ),
    _rule(
        DEPLOYMENTS,
        "get list watch create patch update delete",
        "create and scale the slot Deployments, watch their rollout, delete expired slots, adopt the original",
    ),
    _rule(
        SERVICES,
        "get list watch create patch update",
        "create the preview Service; the service router patches the live selector",
    ),
    _rule(
        PODS,
        "get list watch",
        "name the reason (ImagePullBackOff, CrashLoopBackOff) when a slot never becomes available",
    ),
    _rule(
        ENDPOINT_SLICES,
        "list",
        "wait until the preview (and the service router's Service) sends requests only to the target slot's pods",
    ),
    _rule(EVENTS, "create patch", "emit an Event on the BlueGreenDeployment for each transition"),
    _rule(
        NETWORK_POLICIES,
        "get list create patch update delete",
        "isolate the blue and green slots of a service from each other, never beside a policy of the team's",
    ),
    _rule(
        PDBS,
        "get list update",
        "pin the team's PodDisruptionBudget to the live slot with the traffic; warn when there is none",
    ),
    _rule(HPAS, "get list update", "move the team's HorizontalPodAutoscaler to the live slot with the traffic"),
    _rule(
        (VIRTUAL_SERVICES, DESTINATION_RULES),
        "get list watch create patch update",
        "istio router: one subset per slot, flip the route weights",
    ),
    _rule(
        HTTP_ROUTES, "get list watch create patch update", "gateway-api router: flip the HTTPRoute backendRef weights"
    ),
    _rule(
        CONFIG_MAPS,
        "get",
        "read the cosign public keys the image policy names (public keys are not secrets)",
    ),
    _rule(
        WORKFLOWS,
        "get list",
        "cleanup repairs runs whose workflow is gone or finished; confirm-promotion reads how the wait ended",
    ),
)

#: What Argo's emissary executor does with the same ServiceAccount to report step outputs.
EXECUTOR_RULES: tuple[ApiRule, ...] = (
    _rule(WORKFLOW_TASK_RESULTS, "create patch", "Argo's executor reports step outputs (required since Argo 3.4)"),
)

#: Calls the ServiceAccount must never be able to make.
FORBIDDEN_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "", SECRETS.plural, why="notification URLs come from env, never the API"),
    ApiCall("list", "", SECRETS.plural, why="notification URLs come from env, never the API"),
    ApiCall("list", "", CONFIG_MAPS.plural, why="public keys are read by the names the spec gives, nothing else"),
    ApiCall(
        "delete", BLUE_GREEN_DEPLOYMENTS.group, BLUE_GREEN_DEPLOYMENTS.plural, why="the platform team's to remove"
    ),
    ApiCall("update", BLUE_GREEN_DEPLOYMENTS.group, BLUE_GREEN_DEPLOYMENTS.plural, why="steps write status only"),
    ApiCall("delete", "", SERVICES.plural, why="the live Service is never removed"),
    ApiCall("create", "", PODS.plural, why="pods come from Deployments only"),
    ApiCall("patch", WORKFLOWS.group, WORKFLOWS.plural, why="steps do not steer Argo"),
)


__all__ = [
    "ARGO_UI_URL_ENV",
    "ARGO_WORKFLOW_POD_LABEL",
    "BLUE_GREEN_DEPLOYMENTS",
    "CONFIG_MAPS",
    "COSIGN_PUBLIC_KEY_ENV",
    "COSIGN_TASK",
    "CREATOR_LABEL",
    "CREATOR_USERNAME_LABEL",
    "DEADLINE_OUTPUTS",
    "DEPLOYMENTS",
    "DEPLOYMENT_RECORDS",
    "DEPLOY_TEMPLATE",
    "DESTINATION_RULES",
    "ENDPOINT_SLICES",
    "EVENTS",
    "EXECUTOR_RULES",
    "FORBIDDEN_CALLS",
    "GRANTED_SECRETS_LIMIT",
    "GRANT_VERB",
    "HPAS",
    "HTTP_ROUTES",
    "NETWORK_POLICIES",
    "PDBS",
    "PODS",
    "PROMOTION_GATE_TASK",
    "PUSHGATEWAY_URL_ENV",
    "ROLES",
    "ROLE_BINDINGS",
    "ROLLBACK_TEMPLATE",
    "RUN_WORKFLOW_ENV",
    "RUN_WORKFLOW_UID_ENV",
    "SECRETS",
    "SERVICES",
    "SLACK_WEBHOOK_URL_ENV",
    "STEPS_SERVICE_ACCOUNT",
    "STEP_OUTPUTS",
    "STEP_RULES",
    "TEMPLATES_VERSION_LABEL",
    "TERMINATION_MESSAGE_LIMIT",
    "TERMINATION_MESSAGE_PATH",
    "USER_COMMANDS",
    "VIRTUAL_SERVICES",
    "WEBHOOK_URL_ENV",
    "WORKFLOWS",
    "WORKFLOW_FINISHED_PHASES",
    "WORKFLOW_TASK_RESULTS",
    "WORKFLOW_TEMPLATES",
    "WORKFLOW_TEMPLATE_LABEL",
    "ApiCall",
    "ApiResource",
    "ApiRule",
    "CosignCheck",
    "CosignField",
    "CosignInput",
    "CosignOutput",
    "ExitCode",
    "Output",
    "Step",
]
