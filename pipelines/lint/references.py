"""Parameter references: every one must point at something declared, or Argo fails the run at that step.

This covers ``{{inputs.parameters.X}}``, ``{{workflow.parameters.X}}`` and ``{{tasks.T.outputs.parameters.X}}``.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/variables/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pipelines.lint.dag import ancestors, upstream
from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding

_INPUT = re.compile(r"\{\{\s*inputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")
_WORKFLOW = re.compile(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")
_TASK_OUTPUT = re.compile(r"\{\{\s*tasks\.([A-Za-z0-9_-]+)\.outputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}")


def strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a YAML tree with its dotted path."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            label = value.get("name") if isinstance(value, dict) and "name" in value else index
            yield from strings(value, f"{path}[{label}]")


def _names(parameters: list[dict[str, Any]] | None) -> set[str]:
    return {str(p.get("name")) for p in parameters or []}


def check(document: Document) -> list[Finding]:
    """Undeclared-parameter findings for one Argo object."""
    found = document.workflow_spec()
    if found is None:
        return []
    path, spec = found
    findings = []
    if spec.get("workflowTemplateRef") is None:
        declared = _names((spec.get("arguments") or {}).get("parameters"))
        for where, text in strings(spec, path):
            for name in _WORKFLOW.findall(text):
                if name not in declared:
                    findings.append(
                        Finding(
                            document.file,
                            document.label,
                            where,
                            f"workflow parameter {name!r} is not declared in {path}.arguments",
                        )
                    )
    templates = {str(t.get("name")): t for t in spec.get("templates") or []}
    for name, template in templates.items():
        inputs = _names((template.get("inputs") or {}).get("parameters"))
        base = f"{path}.templates[{name}]"
        for where, text in strings(template, base):
            for parameter in _INPUT.findall(text):
                if parameter not in inputs:
                    findings.append(
                        Finding(
                            document.file,
                            document.label,
                            where,
                            f"input parameter {parameter!r} is not declared in {base}.inputs",
                        )
                    )
        tasks = (template.get("dag") or {}).get("tasks") or []
        graph = upstream(tasks)
        by_name = {str(t.get("name")): t for t in tasks}
        for task in tasks:
            for where, text in strings(task, f"{base}.dag.tasks[{task.get('name')}]"):
                for producer, output in _TASK_OUTPUT.findall(text):
                    findings.extend(
                        _check_task_output(
                            document, where, str(task.get("name")), producer, output, by_name, graph, templates
                        )
                    )
    return findings


def _check_task_output(
    document: Document,
    where: str,
    consumer: str,
    producer: str,
    output: str,
    tasks: dict[str, dict[str, Any]],
    graph: dict[str, set[str]],
    templates: dict[str, dict[str, Any]],
) -> list[Finding]:
    if producer not in tasks:
        return [Finding(document.file, document.label, where, f"task {producer!r} does not exist in this DAG")]
    if producer not in ancestors(graph, consumer):
        return [
            Finding(
                document.file,
                document.label,
                where,
                f"task {consumer!r} reads {producer!r}'s output but does not depend on it",
            )
        ]
    template = templates.get(str(tasks[producer].get("template")))
    if template is None:
        return []  # templateRef or an unknown template, which the DAG check reports
    if output not in _names((template.get("outputs") or {}).get("parameters")):
        return [
            Finding(
                document.file,
                document.label,
                where,
                f"template {template.get('name')!r} of task {producer!r} declares no output {output!r}",
            )
        ]
    return []


__all__ = ["check", "strings"]
