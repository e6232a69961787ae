"""Loading the YAML documents to lint, and finding the workflow spec inside each Argo kind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ARGO_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


@dataclass(frozen=True)
class Document:
    """One YAML document and where it came from."""

    file: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """The document's kind, or empty."""
        return str(self.body.get("kind", ""))

    @property
    def label(self) -> str:
        """``Kind/name`` for messages."""
        metadata = self.body.get("metadata") or {}
        return f"{self.kind or '<no kind>'}/{metadata.get('name') or metadata.get('generateName') or '<unnamed>'}"

    def workflow_spec(self) -> tuple[str, dict[str, Any]] | None:
        """The WorkflowSpec of an Argo object and its path, or None for other kinds."""
        if self.kind not in ARGO_KINDS:
            return None
        spec = self.body.get("spec") or {}
        if self.kind == "CronWorkflow":
            return "spec.workflowSpec", spec.get("workflowSpec") or {}
        return "spec", spec


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"})
        else:
            yield path


def load(paths: list[Path]) -> tuple[list[Document], list[str]]:
    """Every mapping document under ``paths``; the second list has files that could not be read or parsed."""
    documents: list[Document] = []
    errors: list[str] = []
    for file in _files(paths):
        try:
            loaded = list(yaml.safe_load_all(file.read_text()))
        except (OSError, yaml.YAMLError) as error:
            errors.append(f"{file}: cannot read as YAML: {error}")
            continue
        documents.extend(Document(str(file), body) for body in loaded if isinstance(body, dict))
    return documents, errors


__all__ = ["ARGO_KINDS", "Document", "load"]
