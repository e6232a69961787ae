"""Starting a run from a WorkflowTemplate through the Kubernetes API, the object ``argo submit --from`` creates.

``argo submit --from workflowtemplate/NAME -p k=v`` (Argo v4, ``workflow/common/convert.go`` and
``workflow/util/util.go``) builds a Workflow with ``generateName: NAME-``, the label
``workflows.argoproj.io/workflow-template: NAME``, ``spec.workflowTemplateRef.name: NAME`` and the parameters in the
order given, then labels it with the caller's identity (``workflows.argoproj.io/creator``). Creating the same object
here means no Argo server is needed: the workflow controller picks it up like any other. See
https://argo-workflows.readthedocs.io/en/latest/workflow-templates/#create-workflow-from-workflowtemplate-spec
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bluegreen_contract import (
    CREATOR_LABEL,
    WORKFLOW_FINISHED_PHASES,
    WORKFLOW_TEMPLATE_LABEL,
    WORKFLOW_TEMPLATES,
    WORKFLOWS,
)
from kubectl_bluegreen.errors import NotFoundError, PluginError, UsageError
from kubectl_bluegreen.run_steps import step_node_ids
from steps.kube import Kube, Obj

#: How the API server's managedFields name this plugin's writes (argo's CLI writes as ``argo``).
FIELD_MANAGER = "kubectl-bluegreen"


def dns_friendly(text: str) -> str:
    """A label value from a user name, as Argo's ``creator.dnsFriendly`` makes it: the last 63 safe characters."""
    value = re.sub(r"[^-_.a-zA-Z0-9]", "-", text)[-63:]
    value = re.sub(r"^[^a-zA-Z0-9]*", "", value)
    return re.sub(r"[^a-zA-Z0-9]*$", "", value)


def workflow_from_template(template: str, parameters: list[tuple[str, str]], creator: str = "") -> Obj:
    """The Workflow ``argo submit --from workflowtemplate/<template> -p ...`` creates, before the server names it."""
    labels = {WORKFLOW_TEMPLATE_LABEL: template}
    if dns_friendly(creator):
        labels[CREATOR_LABEL] = dns_friendly(creator)
    body: Obj = {
        "apiVersion": WORKFLOWS.api_version,
        "kind": WORKFLOWS.kind,
        "metadata": {"generateName": f"{template}-", "labels": labels},
        "spec": {"workflowTemplateRef": {"name": template}},
    }
    if parameters:
        body["spec"]["arguments"] = {"parameters": [{"name": name, "value": value} for name, value in parameters]}
    return body


def check_parameters(template: Obj, parameters: list[tuple[str, str]]) -> None:
    """Refuse, before creating anything, a parameter the template does not declare or a required one left out."""
    name = template["metadata"]["name"]
    declared = (template.get("spec") or {}).get("arguments", {}).get("parameters") or []
    known = {str(p["name"]) for p in declared}
    given = {key for key, _ in parameters}
    unknown = sorted(given - known)
    if unknown:
        raise UsageError(
            f"WorkflowTemplate {name} declares no parameter {', '.join(unknown)} (it has {', '.join(sorted(known))}); "
            "re-apply the manifests of this release"
        )
    required = sorted(str(p["name"]) for p in declared if "value" not in p and p["name"] not in given)
    if required:
        raise UsageError(f"WorkflowTemplate {name} needs parameter(s) {', '.join(required)}; nothing was created")


def submit(kube: Kube, namespace: str, template: str, parameters: list[tuple[str, str]], creator: str) -> Obj:
    """Create the Workflow in ``namespace``; a missing template is :class:`NotFoundError`."""
    found = kube.get(WORKFLOW_TEMPLATES, namespace, template)
    if found is None:
        raise NotFoundError(
            f"WorkflowTemplate {namespace}/{template} does not exist; install the manifests into {namespace} "
            "(kubectl apply -k manifests/) or pass -n with the namespace they are installed in"
        )
    check_parameters(found, parameters)
    body = workflow_from_template(template, parameters, creator)
    body["metadata"]["namespace"] = namespace
    return kube.create(WORKFLOWS, namespace, body, field_manager=FIELD_MANAGER)


def who_am_i(kube: Kube, fallback: str) -> str:
    """The user the API server authenticates this client as (a SelfSubjectReview), else the kubeconfig user."""
    from kubernetes import client

    try:
        review = client.AuthenticationV1Api(kube.api).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
    except Exception:  # an old or locked-down API server: the kubeconfig's user name still says who
        return fallback
    info = review.status.user_info if review.status else None
    return str(info.username) if info is not None and info.username else fallback


@dataclass(frozen=True)
class StepProgress:
    """One step of the run as the workflow's status shows it."""

    step: str
    phase: str
    message: str


def pod_steps(workflow: Obj) -> list[StepProgress]:
    """The run's steps in the order they ran: step Pods, and the steps inside a Pod that runs several.

    A Pod that runs several steps (the release Pod) is shown as its steps, each a container node of its own; a step
    there that never started, because one it waits for failed, is left out (see :mod:`kubectl_bluegreen.run_steps`).
    """
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    steps = [nodes[node_id] for node_id in step_node_ids(nodes)]
    return [StepProgress(_step_name(n), str(n.get("phase", "")), str(n.get("message", ""))) for n in steps]


def _step_name(node: Obj) -> str:
    """The DAG task's name; a retried task's attempts are ``name(0)``, ``name(1)``: the attempt is not the step."""
    return re.sub(r"\(\d+\)$", "", str(node.get("displayName") or node.get("templateName", "")))


def follow(
    kube: Kube,
    namespace: str,
    name: str,
    timeout_seconds: float,
    on_step: Callable[[StepProgress], None],
) -> Obj:
    """Watch the workflow until it finishes or the deadline passes; reports each step as its phase changes."""
    deadline = time.monotonic() + timeout_seconds
    seen: dict[str, str] = {}
    for workflow in _workflow_updates(kube, namespace, name, deadline):
        for progress in pod_steps(workflow):
            if seen.get(progress.step) != progress.phase:
                seen[progress.step] = progress.phase
                on_step(progress)
        if (workflow.get("status") or {}).get("phase") in WORKFLOW_FINISHED_PHASES:
            return workflow
    raise PluginError(
        f"Workflow {namespace}/{name} did not finish within {timeout_seconds:.0f}s; it goes on running: "
        f"kubectl bluegreen status -n {namespace} <service> --watch follows it"
    )


def _workflow_updates(kube: Kube, namespace: str, name: str, deadline: float) -> Iterator[Obj]:
    """The workflow now, then every change to it, until the deadline; each new watch starts from a fresh read."""
    while time.monotonic() < deadline:
        current = kube.get(WORKFLOWS, namespace, name)
        if current is None:
            raise NotFoundError(f"Workflow {namespace}/{name} is gone (deleted, or its TTL passed)")
        yield current
        remaining = int(deadline - time.monotonic())
        if remaining <= 0:
            return
        for kind, workflow in kube.watch(
            WORKFLOWS,
            namespace,
            name=name,
            resource_version=current["metadata"]["resourceVersion"],
            timeout_seconds=min(remaining, 120),
        ):
            if kind == "DELETED":
                raise NotFoundError(f"Workflow {namespace}/{name} was deleted while it ran")
            if kind in {"ADDED", "MODIFIED"}:
                yield workflow


__all__ = [
    "StepProgress",
    "check_parameters",
    "dns_friendly",
    "follow",
    "pod_steps",
    "submit",
    "who_am_i",
    "workflow_from_template",
]
