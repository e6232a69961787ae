"""Run safety: an exit handler that looks at ``workflow.status``, a per-service lock, and hardened containers.

These are the properties the pipeline's promises rest on: without the exit handler nothing rolls back, without the
mutex two deploys of one service interleave, and a container without a securityContext or resources is refused by
restricted namespaces or starves its neighbours.
"""

from __future__ import annotations

from typing import Any

from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding
from pipelines.lint.references import strings

_CONTAINER_KEYS = ("container", "script")


def _exit_template(spec: dict[str, Any]) -> str | None:
    if spec.get("onExit"):
        return str(spec["onExit"])
    exit_hook = (spec.get("hooks") or {}).get("exit") or {}
    return str(exit_hook["template"]) if exit_hook.get("template") else None


def _mentions_status(template_name: str, templates: dict[str, dict[str, Any]], seen: set[str]) -> bool:
    """Whether the exit template, or a template it runs, reads ``workflow.status``."""
    if template_name in seen or template_name not in templates:
        return False
    seen.add(template_name)
    template = templates[template_name]
    if any("workflow.status" in text for _, text in strings(template, "")):
        return True
    tasks = (template.get("dag") or {}).get("tasks") or []
    steps = [step for group in template.get("steps") or [] for step in group]
    return any(_mentions_status(str(t.get("template")), templates, seen) for t in [*tasks, *steps])


def _check_exit_handler(document: Document, path: str, spec: dict[str, Any]) -> list[Finding]:
    templates = {str(t.get("name")): t for t in spec.get("templates") or []}
    name = _exit_template(spec)
    if name is None:
        return [
            Finding(
                document.file,
                document.label,
                f"{path}.onExit",
                "no exit handler: a failed run would leave traffic and state as they were; set onExit",
            )
        ]
    if not _mentions_status(name, templates, set()):
        return [
            Finding(
                document.file,
                document.label,
                f"{path}.templates[{name}]",
                "the exit handler never looks at {{workflow.status}}, so it cannot tell failure from success",
            )
        ]
    return []


def _check_lock(document: Document, path: str, spec: dict[str, Any]) -> list[Finding]:
    synchronization = spec.get("synchronization") or {}
    if synchronization.get("mutexes"):
        return []
    if synchronization.get("mutex"):
        return [
            Finding(
                document.file,
                document.label,
                f"{path}.synchronization.mutex",
                "the singular mutex was removed in Argo v4 and is ignored; use mutexes: [{name: ...}]",
            )
        ]
    if document.kind == "CronWorkflow" and (document.body.get("spec") or {}).get("concurrencyPolicy") == "Forbid":
        return []
    return [
        Finding(
            document.file,
            document.label,
            f"{path}.synchronization.mutexes",
            "no mutex: two runs for one service could overlap; add a mutex keyed by namespace and service",
        )
    ]


def _check_container(document: Document, where: str, container: dict[str, Any]) -> list[Finding]:
    findings = []
    context = container.get("securityContext")
    if not context:
        findings.append(
            Finding(
                document.file,
                document.label,
                f"{where}.securityContext",
                "missing: set runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation: false, "
                "capabilities.drop [ALL] and seccompProfile RuntimeDefault",
            )
        )
    else:
        wanted = {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in wanted.items():
            if context.get(key) is not value:
                findings.append(
                    Finding(
                        document.file,
                        document.label,
                        f"{where}.securityContext.{key}",
                        f"must be {str(value).lower()}",
                    )
                )
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            findings.append(
                Finding(
                    document.file, document.label, f"{where}.securityContext.capabilities.drop", "must include ALL"
                )
            )
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                findings.append(
                    Finding(
                        document.file,
                        document.label,
                        f"{where}.resources.{kind}.{resource}",
                        "missing: every container needs requests and limits for cpu and memory",
                    )
                )
    return findings


def scheduled_templates(documents: list[Document]) -> set[str]:
    """The WorkflowTemplates that a CronWorkflow among ``documents`` starts by reference."""
    names = set()
    for document in documents:
        found = document.workflow_spec()
        if document.kind == "CronWorkflow" and found is not None:
            reference = found[1].get("workflowTemplateRef") or {}
            if reference.get("name") and not reference.get("clusterScope"):
                names.add(str(reference["name"]))
    return names


def exit_handler_findings(documents: list[Document]) -> list[Finding]:
    """A missing or status-blind exit handler, for every Argo object that runs a pipeline of its own.

    A scheduled sweep needs none, whether its templates sit in the CronWorkflow or in a WorkflowTemplate that a
    CronWorkflow of the same set starts: it changes traffic only to repair, and its next run is its retry.
    """
    swept = scheduled_templates(documents)
    findings = []
    for document in documents:
        found = document.workflow_spec()
        if found is None or document.kind == "CronWorkflow":
            continue
        path, spec = found
        name = str((document.body.get("metadata") or {}).get("name") or "")
        if spec.get("workflowTemplateRef") is None and not (document.kind == "WorkflowTemplate" and name in swept):
            findings.extend(_check_exit_handler(document, path, spec))
    return findings


def check(document: Document) -> list[Finding]:
    """Lock and container findings for one Argo object (the exit handler: :func:`exit_handler_findings`)."""
    found = document.workflow_spec()
    if found is None:
        return []
    path, spec = found
    findings = []
    if spec.get("workflowTemplateRef") is None:
        findings.extend(_check_lock(document, path, spec))
    for template in spec.get("templates") or []:
        base = f"{path}.templates[{template.get('name')}]"
        for key in _CONTAINER_KEYS:
            if key in template:
                findings.extend(_check_container(document, f"{base}.{key}", template[key]))
        for key in ("initContainers", "sidecars"):
            for container in template.get(key) or []:
                findings.extend(_check_container(document, f"{base}.{key}[{container.get('name')}]", container))
    return findings


__all__ = ["check", "exit_handler_findings", "scheduled_templates"]
