"""Which WorkflowTemplate a submitter may start: only one it may read, whichever way it creates the Workflow.

Argo's workflow-controller reads a referenced WorkflowTemplate with its own rights, not the submitter's. RBAC's
``get`` on ``blue-green-deploy`` alone therefore keeps ``argo submit --from`` (which reads the template as the caller)
to that template, but a Workflow the CI identity creates directly could reference ``blue-green-rollback``, the
cleanup sweep, another team's template or a ClusterWorkflowTemplate, and the controller would run it.

Each Workflow (or CronWorkflow) below is sent as a dry run, so admission judges it and nothing is stored, by an
identity that holds exactly the Role it would hold in production; it must be refused naming the rule, while the
template that identity may read still starts. The policy is cluster-scoped and loaded a moment after it is written,
so a refusal is awaited for a few seconds.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from pipelines import ci_submitter, cleanup_cron, deploy_template, rollback_template
from pipelines.settings import RenderSettings
from pipelines.submit_policy import POLICY_NAME, RULE, STATUS_RULE
from testenv.apply import apply_manifest_objects
from testenv.cluster import KubeCluster
from testenv.rest import KubeApiError, request
from tests.integration import admission_refusals
from tests.integration.installation import install

pytestmark = pytest.mark.controlplane

ARGO = "/apis/argoproj.io/v1alpha1"
SETTLE_SECONDS = 5.0
DRY_RUN = {"dryRun": "All"}
#: An identity that may schedule runs (create and update CronWorkflows) but read only the deploy template.
SCHEDULER = "release-scheduler"
#: An on-call identity that may start the one-click rollback and read only that template.
ON_CALL = "on-call"
#: An identity that starts deploys and changes its runs (stop, resume, promote: ``update`` on Workflows).
PROMOTER = "promoter"
#: A deploy Workflow the promoter created with another controller's instance id, so no controller has started it.
PARKED = "parked-deploy"
#: What a Workflow's own status could carry for the controller to run instead of the template it references.
OWN_TEMPLATES = {
    "storedWorkflowTemplateSpec": {
        "serviceAccountName": "bluegreen-deployer",
        "entrypoint": "switch",
        "templates": [{"name": "switch", "container": {"image": "busybox", "command": ["sh", "-c", "anything"]}}],
        "workflowTemplateRef": {"name": "blue-green-deploy"},
    }
}


def _role(namespace: str, name: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _get_template(name: str) -> dict[str, Any]:
    return {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtemplates"],
        "resourceNames": [name],
        "verbs": ["get"],
    }


def _a_template(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """A team's own template, which runs as a ServiceAccount of that team's choosing."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "serviceAccountName": "batch-admin",
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}],
        },
    }


@dataclass
class Submitters:
    """A namespace with argo-bluegreen installed, a team's template, and the identities that submit there."""

    namespace: str
    admin: client.ApiClient
    as_identity: Callable[[str], client.ApiClient]
    cluster_template: str

    def workflow(self, identity: str, reference: dict[str, Any], status: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "run-"},
            "spec": {"workflowTemplateRef": reference},
        }
        if status is not None:
            body["status"] = status
        path = f"{ARGO}/namespaces/{self.namespace}/workflows"
        request(self.as_identity(identity), "POST", path, body=body, query=DRY_RUN)

    def cron(self, identity: str, reference: dict[str, Any], name: str = "weekly") -> None:
        body = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": name},
            "spec": {"schedules": ["0 3 * * *"], "workflowSpec": {"workflowTemplateRef": reference}},
        }
        path = f"{ARGO}/namespaces/{self.namespace}/cronworkflows"
        request(self.as_identity(identity), "POST", path, body=body, query=DRY_RUN)

    def cron_retargeted(self, identity: str, reference: dict[str, Any]) -> None:
        """The scheduler's stored CronWorkflow, changed to start another template."""
        self.cron_changed(identity, "nightly", {"spec": {"workflowSpec": {"workflowTemplateRef": reference}}})

    def cron_changed(self, identity: str, name: str, patch: dict[str, Any]) -> None:
        path = f"{ARGO}/namespaces/{self.namespace}/cronworkflows/{name}"
        api = self.as_identity(identity)
        request(api, "PATCH", path, body=patch, content_type="application/merge-patch+json", query=DRY_RUN)

    def parked_changed(self, identity: str, patch: dict[str, Any]) -> None:
        """The Workflow parked for another controller (the promoter's own), changed by a merge patch."""
        path = f"{ARGO}/namespaces/{self.namespace}/workflows/{PARKED}"
        api = self.as_identity(identity)
        request(api, "PATCH", path, body=patch, content_type="application/merge-patch+json", query=DRY_RUN)


@pytest.fixture(scope="module")
def submitters(kube_cluster: KubeCluster) -> Iterator[Submitters]:
    """One namespace for the module: every attempt is a dry run, so none changes what the next one meets."""
    admin = kube_cluster.admin_api_client()
    namespace = f"submit-{uuid.uuid4().hex[:8]}"
    request(
        admin,
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    install(admin, namespace)
    settings = RenderSettings(namespace=namespace)
    scheduler_rules = [
        _get_template(deploy_template.NAME),
        {"apiGroups": ["argoproj.io"], "resources": ["cronworkflows"], "verbs": ["get", "create", "update", "patch"]},
    ]
    on_call_rules = [
        _get_template(rollback_template.NAME),
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
    ]
    promoter_rules = [
        _get_template(deploy_template.NAME),
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "create", "update", "patch"]},
    ]
    cluster_template = f"{deploy_template.NAME}-{uuid.uuid4().hex[:6]}"
    apply_manifest_objects(
        admin,
        [
            ci_submitter.service_account(settings),
            ci_submitter.role(settings),
            ci_submitter.role_binding(settings),
            *_role(namespace, SCHEDULER, scheduler_rules),
            *_role(namespace, ON_CALL, on_call_rules),
            *_role(namespace, PROMOTER, promoter_rules),
            _a_template("WorkflowTemplate", "batch-job", namespace),
            _a_template("ClusterWorkflowTemplate", cluster_template),
        ],
    )
    # The scheduler's existing nightly deploy, created by an administrator before the scheduler touches it.
    request(
        admin,
        "POST",
        f"{ARGO}/namespaces/{namespace}/cronworkflows",
        body={
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": "nightly"},
            "spec": {
                "schedules": ["0 3 * * *"],
                "suspend": True,
                "workflowSpec": {"workflowTemplateRef": {"name": deploy_template.NAME}},
            },
        },
    )
    request(
        admin,
        "POST",
        f"{ARGO}/namespaces/{namespace}/workflows",
        body={
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": PARKED, "labels": {"workflows.argoproj.io/controller-instanceid": "parked"}},
            "spec": {"workflowTemplateRef": {"name": deploy_template.NAME}},
        },
    )
    try:
        yield Submitters(
            namespace,
            admin,
            lambda identity: kube_cluster.impersonating_api_client(namespace, identity),
            cluster_template,
        )
    finally:
        with contextlib.suppress(KubeApiError):
            request(admin, "DELETE", f"{ARGO}/clusterworkflowtemplates/{cluster_template}")
        with contextlib.suppress(KubeApiError):
            request(admin, "DELETE", f"/api/v1/namespaces/{namespace}")


ACCEPTED = "accepted: the API server let this identity start a template it may not read"


def refusal(action: Callable[[], None]) -> str:
    """The 403 message ``action`` gets once the policies have settled."""
    return admission_refusals.refusal(action, settle_seconds=SETTLE_SECONDS, accepted=ACCEPTED)


CI = ci_submitter.NAME
#: Each attempt, and the rule that must refuse it.
REFUSED: dict[str, tuple[str, Callable[[Submitters], None]]] = {
    "CI starts the one-click rollback": (RULE, lambda s: s.workflow(CI, {"name": rollback_template.NAME})),
    "CI starts the cleanup sweep": (RULE, lambda s: s.workflow(CI, {"name": cleanup_cron.NAME})),
    "CI starts another team's template": (RULE, lambda s: s.workflow(CI, {"name": "batch-job"})),
    "CI starts a ClusterWorkflowTemplate": (
        RULE,
        lambda s: s.workflow(CI, {"name": s.cluster_template, "clusterScope": True}),
    ),
    # A ClusterWorkflowTemplate named like the deploy template: the name CI may read is a namespaced template's.
    "CI starts a ClusterWorkflowTemplate of the deploy's name": (
        RULE,
        lambda s: s.workflow(CI, {"name": deploy_template.NAME, "clusterScope": True}),
    ),
    "the scheduler schedules the rollback": (RULE, lambda s: s.cron(SCHEDULER, {"name": rollback_template.NAME})),
    "the scheduler re-aims its nightly deploy at the rollback": (
        RULE,
        lambda s: s.cron_retargeted(SCHEDULER, {"name": rollback_template.NAME}),
    ),
    "on-call starts a deploy": (RULE, lambda s: s.workflow(ON_CALL, {"name": deploy_template.NAME})),
    # Argo runs a Workflow's status.storedWorkflowTemplateSpec as it finds it, without reading the template again.
    "CI brings its own templates in the Workflow's status": (
        STATUS_RULE,
        lambda s: s.workflow(CI, {"name": deploy_template.NAME}, status=OWN_TEMPLATES),
    ),
    "the promoter re-aims a Workflow no controller has started yet": (
        RULE,
        lambda s: s.parked_changed(PROMOTER, {"spec": {"workflowTemplateRef": {"name": rollback_template.NAME}}}),
    ),
    "the promoter writes its own templates into a Workflow's status": (
        STATUS_RULE,
        lambda s: s.parked_changed(PROMOTER, {"status": OWN_TEMPLATES}),
    ),
    "the scheduler reschedules the cleanup it may not read": (
        RULE,
        lambda s: s.cron_changed(
            SCHEDULER, cleanup_cron.NAME, {"spec": {"schedules": ["* * * * *"], "suspend": False}}
        ),
    ),
}


@pytest.mark.parametrize("attempt", list(REFUSED), ids=list(REFUSED))
def test_a_submitter_cannot_start_a_template_it_may_not_read(submitters: Submitters, attempt: str) -> None:
    rule, attack = REFUSED[attempt]
    message = refusal(lambda: attack(submitters))
    assert POLICY_NAME in message and f"[{rule}]" in message, message


def test_each_identity_still_starts_the_template_it_may_read(submitters: Submitters) -> None:
    # Once the policy refuses, it is loaded: what it allows is then allowed for its own reason, not its absence.
    refusal(lambda: submitters.workflow(CI, {"name": rollback_template.NAME}))
    submitters.workflow(CI, {"name": deploy_template.NAME})
    submitters.workflow(ON_CALL, {"name": rollback_template.NAME})
    submitters.cron(SCHEDULER, {"name": deploy_template.NAME}, name="hourly")
    submitters.cron_retargeted(SCHEDULER, {"name": deploy_template.NAME})
    submitters.cron_changed(SCHEDULER, "nightly", {"spec": {"schedules": ["0 4 * * *"]}})
    # Stopping, suspending and relabelling a run change no template and no stored spec.
    submitters.parked_changed(PROMOTER, {"spec": {"suspend": True}, "metadata": {"labels": {"team": "shop"}}})
