"""Strict round trip through Hera's generated Argo models: a field the models do not know is a finding.

Hera's generated models ignore unknown fields, which is how a v3-style ``synchronization.mutex`` silently becomes
no lock at all. Validating and dumping again, then diffing against the input, surfaces every such field.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import models as m
from pydantic import BaseModel, ValidationError

from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding

_MODELS: dict[str, type[BaseModel]] = {
    "Workflow": m.Workflow,
    "WorkflowTemplate": m.WorkflowTemplate,
    "ClusterWorkflowTemplate": m.ClusterWorkflowTemplate,
    "CronWorkflow": m.CronWorkflow,
}


def _lost_keys(original: Any, dumped: Any, path: str) -> list[str]:
    if isinstance(original, dict):
        if not isinstance(dumped, dict):
            return [path]
        lost = []
        for key, value in original.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in dumped:
                if value is not None:
                    lost.append(child)
            else:
                lost.extend(_lost_keys(value, dumped[key], child))
        return lost
    if isinstance(original, list) and isinstance(dumped, list):
        lost = []
        for index, (a, b) in enumerate(zip(original, dumped, strict=False)):
            label = a.get("name") if isinstance(a, dict) and "name" in a else index
            lost.extend(_lost_keys(a, b, f"{path}[{label}]"))
        return lost
    return []


def check(document: Document) -> list[Finding]:
    """Findings for unknown fields and wrong types in one Argo object."""
    model = _MODELS.get(document.kind)
    if model is None:
        return []
    try:
        parsed = model.model_validate(document.body)
    except ValidationError as error:
        return [
            Finding(document.file, document.label, ".".join(str(p) for p in item["loc"]), item["msg"])
            for item in error.errors()
        ]
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    return [
        Finding(document.file, document.label, path, "unknown field: Argo Workflows v4 has no such field")
        for path in _lost_keys(document.body, dumped, "")
    ]


__all__ = ["check"]
