"""DAG structure: known tasks and results in every ``depends``, no cycles, unique and existing templates.

Every ``depends`` names a known task with a known result, there are no cycles, template names are unique, and every
task, entrypoint and exit handler names a template that exists.

Argo reference: https://argo-workflows.readthedocs.io/en/latest/enhanced-depends-logic/.
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding

TASK_RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
_TERM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_OPERATORS = re.compile(r"&&|\|\||!|\(|\)|\s+")


def depends_terms(expression: str) -> tuple[list[tuple[str, str | None]], str]:
    """The (task, result) pairs an expression names, and whatever is left that is not an operator."""
    terms: list[tuple[str, str | None]] = []
    for word in _TERM.findall(expression):
        task, _, result = word.rpartition(".") if "." in word else (word, "", "")
        terms.append((task, result or None))
    leftover = _OPERATORS.sub("", _TERM.sub("", expression))
    return terms, leftover


def upstream(tasks: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Direct dependencies of each task, from ``depends`` or the older ``dependencies`` list."""
    graph: dict[str, set[str]] = {}
    for task in tasks:
        names = {name for name, _ in depends_terms(str(task.get("depends") or ""))[0]}
        names.update(task.get("dependencies") or [])
        graph[str(task.get("name"))] = names
    return graph


def ancestors(graph: dict[str, set[str]], task: str) -> set[str]:
    """Every task ``task`` transitively depends on."""
    seen: set[str] = set()
    stack = list(graph.get(task, ()))
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return seen


def _check_dag(document: Document, where: str, tasks: list[dict[str, Any]], templates: set[str]) -> list[Finding]:
    findings = []
    names = [str(task.get("name")) for task in tasks]
    for task in tasks:
        at = f"{where}.tasks[{task.get('name')}]"
        if "template" in task and task["template"] not in templates:
            findings.append(
                Finding(
                    document.file,
                    document.label,
                    f"{at}.template",
                    f"template {task['template']!r} is not defined in spec.templates",
                )
            )
        terms, leftover = depends_terms(str(task.get("depends") or ""))
        if leftover:
            findings.append(
                Finding(
                    document.file,
                    document.label,
                    f"{at}.depends",
                    f"cannot parse {task['depends']!r}: unexpected {leftover!r}",
                )
            )
        for name, result in terms:
            if name not in names:
                findings.append(
                    Finding(document.file, document.label, f"{at}.depends", f"depends on unknown task {name!r}")
                )
            if result is not None and result not in TASK_RESULTS:
                findings.append(
                    Finding(
                        document.file,
                        document.label,
                        f"{at}.depends",
                        f"{name}.{result}: unknown result; use one of {sorted(TASK_RESULTS)}",
                    )
                )
        for name in task.get("dependencies") or []:
            if name not in names:
                findings.append(
                    Finding(document.file, document.label, f"{at}.dependencies", f"depends on unknown task {name!r}")
                )
    try:
        tuple(TopologicalSorter(upstream(tasks)).static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        findings.append(Finding(document.file, document.label, where, f"dependency cycle: {cycle}"))
    return findings


def check(document: Document) -> list[Finding]:
    """DAG and template-reference findings for one Argo object."""
    found = document.workflow_spec()
    if found is None:
        return []
    path, spec = found
    templates_list = spec.get("templates") or []
    templates = {str(t.get("name")) for t in templates_list}
    findings = []
    seen: set[str] = set()
    for template in templates_list:
        name = str(template.get("name"))
        if name in seen:
            findings.append(
                Finding(
                    document.file,
                    document.label,
                    f"{path}.templates[{name}]",
                    f"template name {name!r} is defined twice; Argo would run only one of them",
                )
            )
        seen.add(name)
    if spec.get("workflowTemplateRef") is None:
        for field in ("entrypoint", "onExit"):
            target = spec.get(field)
            if target is not None and target not in templates:
                findings.append(
                    Finding(
                        document.file,
                        document.label,
                        f"{path}.{field}",
                        f"template {target!r} is not defined in spec.templates",
                    )
                )
    for template in templates_list:
        dag = template.get("dag")
        if dag:
            findings.extend(
                _check_dag(
                    document, f"{path}.templates[{template.get('name')}].dag", dag.get("tasks") or [], templates
                )
            )
        for group in template.get("steps") or []:
            for step in group:
                if "template" in step and step["template"] not in templates:
                    findings.append(
                        Finding(
                            document.file,
                            document.label,
                            f"{path}.templates[{template.get('name')}].steps[{step.get('name')}]",
                            f"template {step['template']!r} is not defined in spec.templates",
                        )
                    )
    return findings


__all__ = ["ancestors", "check", "depends_terms", "upstream"]
