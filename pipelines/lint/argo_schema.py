"""Validation against Argo Workflows' own JSON schema (``api/jsonschema/schema.json``), in strict mode.

Argo's schema leaves ``additionalProperties`` open, so a misspelt field would pass; strict mode closes every object
that lists its properties, which is how ``kubectl --validate=strict`` treats a CRD.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding

_DEFINITION = {
    "Workflow": "io.argoproj.workflow.v1alpha1.Workflow",
    "WorkflowTemplate": "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    "ClusterWorkflowTemplate": "io.argoproj.workflow.v1alpha1.ClusterWorkflowTemplate",
    "CronWorkflow": "io.argoproj.workflow.v1alpha1.CronWorkflow",
}


def _close_objects(node: Any) -> None:
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


class ArgoSchema:
    """Argo's schema, strict, with one validator per kind."""

    def __init__(self, path: Path) -> None:
        schema = json.loads(path.read_text())
        strict = copy.deepcopy(schema)
        _close_objects(strict.get("definitions", {}))
        self._validators = {
            kind: Draft202012Validator({"$ref": f"#/definitions/{name}", "definitions": strict["definitions"]})
            for kind, name in _DEFINITION.items()
            if name in strict.get("definitions", {})
        }

    def check(self, document: Document) -> list[Finding]:
        """Schema findings for one Argo object."""
        validator = self._validators.get(document.kind)
        if validator is None:
            return []
        return [
            Finding(
                document.file,
                document.label,
                ".".join(str(p) for p in error.absolute_path) or "<root>",
                f"Argo schema: {error.message}",
            )
            for error in sorted(validator.iter_errors(document.body), key=lambda e: list(map(str, e.absolute_path)))
        ]


__all__ = ["ArgoSchema"]
