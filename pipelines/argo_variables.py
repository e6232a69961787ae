"""The Argo template variables the pipelines write, spelled once.

Argo substitutes ``{{...}}`` expressions when it runs a template; a misspelt one is passed through as text, so the
templates build every reference here instead of writing it by hand.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/variables/.
"""

from __future__ import annotations

#: The submit parameter naming the service; the steps' ``--service`` and the per-service mutex key.
SERVICE_PARAMETER = "service"

WORKFLOW_NAME = "{{workflow.name}}"
WORKFLOW_NAMESPACE = "{{workflow.namespace}}"
WORKFLOW_UID = "{{workflow.uid}}"
#: The run's final phase; only meaningful in an exit handler.
WORKFLOW_STATUS = "{{workflow.status}}"
#: The failed nodes as Argo's quoted JSON list, or ``null``; only meaningful in an exit handler.
WORKFLOW_FAILURES = "{{workflow.failures}}"
WORKFLOW_DURATION = "{{workflow.duration}}"
#: A template's own status and duration, for template-level metrics.
TEMPLATE_STATUS = "{{status}}"
#: The run's creation time as the number YYYYMMDDhhmmss (UTC). Argo offers no epoch seconds, and a metric value must
#: be a number; this one still orders runs in time, so "the latest" is the largest.
WORKFLOW_CREATED_SORTABLE = "".join(f"{{{{workflow.creationTimestamp.{part}}}}}" for part in "YmdHMS")
TEMPLATE_DURATION = "{{duration}}"


def workflow_parameter(name: str) -> str:
    """``{{workflow.parameters.<name>}}``: a value given when the workflow was submitted."""
    return f"{{{{workflow.parameters.{name}}}}}"


def workflow_parameter_expression(name: str) -> str:
    """The same parameter inside an ``expr`` expression (``labelsFrom``, ``when`` with expressions)."""
    return f"workflow.parameters.{name}"


def input_parameter(name: str) -> str:
    """``{{inputs.parameters.<name>}}``: a template's own input."""
    return f"{{{{inputs.parameters.{name}}}}}"


def output_parameter(name: str) -> str:
    """``{{outputs.parameters.<name>}}``: a template's own output, readable by that template's metrics."""
    return f"{{{{outputs.parameters.{name}}}}}"


#: The service being deployed or rolled back, as every task of a run receives it.
SERVICE = workflow_parameter(SERVICE_PARAMETER)


__all__ = [
    "SERVICE",
    "SERVICE_PARAMETER",
    "TEMPLATE_DURATION",
    "TEMPLATE_STATUS",
    "WORKFLOW_CREATED_SORTABLE",
    "WORKFLOW_DURATION",
    "WORKFLOW_FAILURES",
    "WORKFLOW_NAME",
    "WORKFLOW_NAMESPACE",
    "WORKFLOW_STATUS",
    "WORKFLOW_UID",
    "input_parameter",
    "output_parameter",
    "workflow_parameter",
    "workflow_parameter_expression",
]
