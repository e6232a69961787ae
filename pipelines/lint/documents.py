"""Loading the YAML documents to lint, and finding the workflow spec inside each Argo kind.

YAML that a Kubernetes client would read differently from what its author meant is refused here, with the file and
line: a duplicate key (the later value silently wins), and a document that is not an object at all (an empty file,
a lone ``---``, a bare string or a list).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.settings_file import SETTINGS_FILE

ARGO_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}

#: A field's place in a document: the keys and list indices from the document's root, as in ``body``.
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """One YAML document and where it came from.

    ``positions`` holds the line and column (both from 1) where each field is written, for findings that send a
    person to the exact spot; documents built in code rather than read from a file have none.
    """

    file: str
    body: dict[str, Any]
    line: int = 1
    positions: Mapping[FieldPath, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)

    def where(self, path: Sequence[str | int] = ()) -> str:
        """``file:line:column`` of the field at ``path``, else of its nearest written parent, else ``file:line``.

        A missing field has no place of its own, so a finding about it points at the object that should hold it.
        """
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return f"{self.file}:{found[0]}:{found[1]}"
        return f"{self.file}:{self.line}"

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


def positions(root: yaml.Node) -> dict[FieldPath, tuple[int, int]]:
    """Where each field of a composed YAML document is written: a mapping key's own place, a list item's start."""
    found: dict[FieldPath, tuple[int, int]] = {(): (root.start_mark.line + 1, root.start_mark.column + 1)}
    pending: list[tuple[yaml.Node, FieldPath, frozenset[int]]] = [(root, (), frozenset())]
    while pending:
        node, path, parents = pending.pop()
        if id(node) in parents:
            continue  # an alias of one of its own parents: its fields are already placed
        inside = parents | {id(node)}
        children: list[tuple[str | int, yaml.Node, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            children = [(str(key.value), key, value) for key, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            children = [(index, item, item) for index, item in enumerate(node.value)]
        for name, marked, child in children:
            found.setdefault((*path, name), (marked.start_mark.line + 1, marked.start_mark.column + 1))
            pending.append((child, (*path, name), inside))
    return found


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
                # Placed after construction, which has flattened any merge keys (<<) into the mapping's own.
                documents.append(Document(str(file), body, line, positions(node)))
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
            # A render's settings file sits beside the objects it rendered but is no object; kustomize never reads
            # it either, and bluegreen-render itself checks it.
            yield from sorted(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.name != SETTINGS_FILE)
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


__all__ = ["ARGO_KINDS", "Document", "FieldPath", "load", "positions", "read_file"]
