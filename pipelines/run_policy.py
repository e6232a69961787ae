"""Workflow-level policy shared by every argo-bluegreen workflow: locking, deadlines, garbage collection, labels.

Argo references: https://argo-workflows.readthedocs.io/en/latest/synchronization/,
https://argo-workflows.readthedocs.io/en/latest/fields/#ttlstrategy and
https://argo-workflows.readthedocs.io/en/latest/fields/#podgc.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import models as m

import bluegreen_spec as spec
from bluegreen_contract import TEMPLATES_VERSION_LABEL
from bluegreen_version import __version__
from pipelines.argo_variables import SERVICE, SERVICE_PARAMETER, WORKFLOW_NAMESPACE, workflow_parameter_expression
from pipelines.settings import SERVICE_ACCOUNT, RenderSettings
from pipelines.step_container import POD_SECURITY

PART_OF = {"app.kubernetes.io/part-of": "argo-bluegreen"}
#: The labels of a workflow object itself (WorkflowTemplate, CronWorkflow): also the release that rendered it, which
#: ``kubectl bluegreen version`` reads. Not on the runs' pods: there the version label names a service's version.
WORKFLOW_OBJECT_LABELS = {**PART_OF, TEMPLATES_VERSION_LABEL: __version__}
#: One lock per namespace and service, shared by deploys and rollbacks (invariant I5).
SERVICE_MUTEX = f"bluegreen-{WORKFLOW_NAMESPACE}-{SERVICE}"
WORKFLOW_DEADLINE_SECONDS = 2 * 3600


def pod_gc() -> m.PodGC:
    """Keep failed pods for debugging; successful ones go after a short delay so their logs can still be read."""
    return m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m")


def ttl() -> m.TTLStrategy:
    """Workflow objects go after a while; the DeploymentRecord is the durable audit trail, not the Workflow."""
    return m.TTLStrategy(seconds_after_success=24 * 3600, seconds_after_failure=7 * 24 * 3600)


def service_mutex() -> m.Synchronization:
    """One pipeline per service at a time."""
    return m.Synchronization(mutexes=[m.Mutex(name=SERVICE_MUTEX)])


def workflow_metadata() -> m.WorkflowMetadata:
    """Label each run with its service so ``argo list -l argo-bluegreen.io/service=<svc>`` finds it."""
    return m.WorkflowMetadata(
        labels=dict(PART_OF),
        labels_from={
            spec.SERVICE_LABEL: m.LabelValueFrom(expression=workflow_parameter_expression(SERVICE_PARAMETER))
        },
    )


def pod_metadata() -> m.Metadata:
    """Labels on every step pod."""
    return m.Metadata(labels=dict(PART_OF))


def common_fields(settings: RenderSettings, *, title: str, description: str) -> dict[str, Any]:
    """What every workflow object shares: its namespace, labels and UI text, who its pods run as, and cleanup."""
    return {
        "namespace": settings.namespace,
        "labels": dict(WORKFLOW_OBJECT_LABELS),
        "annotations": {"workflows.argoproj.io/title": title, "workflows.argoproj.io/description": description},
        "service_account_name": SERVICE_ACCOUNT,
        "automount_service_account_token": True,
        "pod_gc": pod_gc(),
        "ttl_strategy": ttl(),
        "security_context": POD_SECURITY,
        "pod_metadata": pod_metadata(),
        "image_pull_secrets": [m.LocalObjectReference(name=name) for name in settings.pull_secret_names] or None,
    }


__all__ = [
    "PART_OF",
    "SERVICE_MUTEX",
    "WORKFLOW_DEADLINE_SECONDS",
    "WORKFLOW_OBJECT_LABELS",
    "common_fields",
    "pod_gc",
    "pod_metadata",
    "service_mutex",
    "ttl",
    "workflow_metadata",
]
