"""Loading the YAML documents to lint, and finding the workflow spec inside each Argo kind.

YAML that a Kubernetes client would read differently from what its author meant is refused here, with the file and
line: a duplicate key (the later value silently wins), and a document that is not an object at all (an empty file,
a lone ``---``, a bare string or a list).
"""

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
    line: int = 1

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


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    f"while reading the mapping that starts on line {node.start_mark.line + 1}",
                    node.start_mark,
                    f"found duplicate key {key!r} (first on line {first_line[key]}); a YAML reader keeps only one "
                    "of them: remove the other",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(file: Path, error: yaml.YAMLError) -> str:
    """``file:line:column: problem``, without PyYAML's ``in "<unicode string>"`` lines."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        context = f" ({error.context})" if error.context else ""
        return f"{file}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {error.problem}{context}"
    return f"{file}: invalid YAML: {error}"


def _not_an_object(value: Any) -> str:
    if value is None:
        return "is empty"
    kind = "a list" if isinstance(value, list) else "text" if isinstance(value, str) else f"the value {value!r}"
    return f"is {kind}, not a Kubernetes object (a mapping with apiVersion, kind and metadata)"


def read_file(file: Path) -> tuple[list[Document], list[str]]:
    """The mapping documents of one file, each with its first line, and one error per thing that is not one."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        return [], [f"{file}: cannot read: {error}"]
    loader = _StrictLoader(text)
    documents: list[Document] = []
    errors: list[str] = []
    number = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said there is one
            number += 1
            line = node.start_mark.line + 1
            body = loader.construct_document(node)
            if isinstance(body, dict):
                documents.append(Document(str(file), body, line))
            else:
                errors.append(f"{file}:{line}: document {number} {_not_an_object(body)}")
    except yaml.YAMLError as error:
        return documents, [*errors, _describe_yaml_error(file, error)]
    finally:
        loader.dispose()
    if number == 0:
        errors.append(
            f"{file}:1: the file holds no YAML document; expected Kubernetes objects such as a BlueGreenDeployment"
        )
    return documents, errors


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
        found, problems = read_file(file)
        documents.extend(found)
        errors.extend(problems)
    return documents, errors


__all__ = ["ARGO_KINDS", "Document", "load", "read_file"]
