"""The workflow-controller setting argo-bluegreen's confinement rests on: ``templateReferencing: Strict``.

Kubernetes RBAC can grant ``create`` on Workflows but cannot say what a Workflow runs. With Argo's defaults whoever
may create one (the CI identity of ``rbac/ci-submitter/``) may bring templates of its own, name any ServiceAccount of
the namespace (``bluegreen-deployer`` among them), patch the Pod spec (``podSpecPatch``) or relabel the Pods
(``podMetadata``, which overrides the ``workflows.argoproj.io/workflow`` label the steps take their run from), so
it can run any code as the deployer, write a record's verdicts itself and move any traffic the deployer can.

Under ``workflowRestrictions: {templateReferencing: Strict}`` the controller runs only Workflows that reference a
WorkflowTemplate (``spec.workflowTemplateRef``), and of the Workflow's own spec it keeps only the fields Argo lists
as safe to override (arguments, entrypoint, deadlines, garbage collection, priority, suspend and shutdown, metrics,
workflow metadata); a Workflow that sets any other field is failed before a Pod exists (Argo v4.0.5,
``workflow/util/merge.go``, ``ValidateUserOverrides``). ``Secure`` adds one thing: a run errors when its
WorkflowTemplate changes while it runs, which would fail every deploy in flight during an upgrade of these
manifests, so ``Strict`` is what is shipped.

Argo reads this ConfigMap in its own namespace, which argo-bluegreen does not install into; the file is a merge
patch for it, rendered beside the manifests and outside their kustomization:
``kubectl patch configmap workflow-controller-configmap -n argo --type merge --patch-file
manifests/argo-controller/workflow-restrictions.yaml``. The controller watches its ConfigMap and applies the change
without a restart. Argo reference: https://argo-workflows.readthedocs.io/en/latest/workflow-restrictions/.
"""

from __future__ import annotations

from typing import Any

#: The ConfigMap Argo's installation manifests give the workflow-controller (``--configmap``).
CONTROLLER_CONFIGMAP = "workflow-controller-configmap"
#: Where the patch is rendered, relative to the manifests directory.
DIRECTORY = "argo-controller"
FILE = f"{DIRECTORY}/workflow-restrictions.yaml"
#: The ConfigMap key and its value, as the controller parses them (one top-level setting per key).
WORKFLOW_RESTRICTIONS_KEY = "workflowRestrictions"
TEMPLATE_REFERENCING = "Strict"


def controller_config() -> dict[str, str]:
    """The ConfigMap data the controller needs from argo-bluegreen: its key and YAML value."""
    return {WORKFLOW_RESTRICTIONS_KEY: f"templateReferencing: {TEMPLATE_REFERENCING}\n"}


def configmap_patch() -> dict[str, Any]:
    """A merge patch for the workflow-controller's ConfigMap: adds the key, leaves every other setting as it is."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONTROLLER_CONFIGMAP},
        "data": controller_config(),
    }


__all__ = [
    "CONTROLLER_CONFIGMAP",
    "DIRECTORY",
    "FILE",
    "TEMPLATE_REFERENCING",
    "WORKFLOW_RESTRICTIONS_KEY",
    "configmap_patch",
    "controller_config",
]
