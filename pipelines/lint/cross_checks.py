"""A BlueGreenDeployment against the Deployment and Service it names, when they are in the same file.

Each object can be valid on its own and the three still not work together: a health check on a port the container
does not serve fails every probe, a Service that selects other pods routes the switched traffic nowhere, and a
health check on another path than the readiness probe's judges the pods by a different test than Kubernetes does.
Like the duplicate check, this looks within one file: one file is applied as a whole, while separate files may be
alternatives (the examples are). Every finding is a problem, as every other finding of the lint is.
"""

from __future__ import annotations

from typing import Any

import bluegreen_spec as spec
from pipelines.lint.documents import Document
from pipelines.lint.findings import Finding

_PORT = ("spec", "healthCheck", "httpGet", "port")
_PATH = ("spec", "healthCheck", "httpGet", "path")


def _namespace(document: Document) -> str:
    return str((document.body.get("metadata") or {}).get("namespace") or "")


def _find(documents: list[Document], near: Document, api_version: str, kind: str, name: str) -> Document | None:
    """The object of that kind and name in ``near``'s file and namespace, if the file has it."""
    for document in documents:
        metadata = document.body.get("metadata") or {}
        if (
            document.file == near.file
            and document.kind == kind
            and document.body.get("apiVersion") == api_version
            and metadata.get("name") == name
            and _namespace(document) == _namespace(near)
        ):
            return document
    return None


def _pod_template(deployment: Document) -> dict[str, Any]:
    template = (deployment.body.get("spec") or {}).get("template") or {}
    return template if isinstance(template, dict) else {}


def _containers(deployment: Document) -> list[dict[str, Any]]:
    containers = (_pod_template(deployment).get("spec") or {}).get("containers") or []
    return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []


def _container(deployment: Document, name: str | None) -> dict[str, Any] | None:
    """The container the steps change: the one ``spec.container`` names, else the first (as the steps choose)."""
    containers = _containers(deployment)
    if name is None:
        return containers[0] if containers else None
    return next((c for c in containers if c.get("name") == name), None)


def exposes(container: dict[str, Any], port: int | str) -> bool:
    """Whether the container declares ``port``: a number as its containerPort, a name as its port name."""
    for declared in container.get("ports") or []:
        if isinstance(declared, dict) and port in (declared.get("containerPort"), declared.get("name")):
            return True
    return False


def _port_list(container: dict[str, Any]) -> str:
    """``8080 (http), 9090 (metrics)``: what a person would pick the right port from."""
    ports = [p for p in container.get("ports") or [] if isinstance(p, dict)]
    return ", ".join(
        f"{p.get('containerPort')} ({p['name']})" if p.get("name") else str(p.get("containerPort")) for p in ports
    )


def _labels(labels: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in labels.items())


def _container_findings(
    document: Document, resource: spec.BlueGreenDeployment, deployment: Document
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The container the steps would change, or a finding that the Deployment has none of that name."""
    container = _container(deployment, resource.spec.container)
    if container is not None or resource.spec.container is None:
        return container, []
    names = ", ".join(str(c.get("name")) for c in _containers(deployment))
    message = f"{deployment.label} has no container {resource.spec.container!r}; its containers are {names}"
    return None, [Finding(document.where(("spec", "container")), document.label, "spec.container", message)]


def _probe_port_findings(
    document: Document, resource: spec.BlueGreenDeployment, deployment: Document, container: dict[str, Any]
) -> list[Finding]:
    """The health check's port must be one the container declares.

    A container that declares no ports may still listen on any (Kubernetes does not require the list), so only a
    declared list that lacks the port is a finding.
    """
    port = resource.spec.health_check.http_get.port
    if not container.get("ports") or exposes(container, port):
        return []
    message = (
        f"{port} is not a port of container {container.get('name')!r} of {deployment.label}, "
        f"which exposes {_port_list(container)}"
    )
    # Another container of the pod may answer on it, but the probe must test the container whose image changes.
    other = next((c for c in _containers(deployment) if c is not container and exposes(c, port)), None)
    if other is not None:
        message += (
            f"; container {other.get('name')!r} does: set spec.container to it if its image is the one to change"
        )
    return [Finding(document.where(_PORT), document.label, ".".join(_PORT), message)]


def _probe_path_findings(
    document: Document, resource: spec.BlueGreenDeployment, container: dict[str, Any]
) -> list[Finding]:
    """The health check's path should be the readiness probe's, when that probe is HTTP too."""
    readiness = (container.get("readinessProbe") or {}).get("httpGet")
    if not isinstance(readiness, dict):
        return []
    # Kubernetes asks for / when a probe names no path, as the health check does.
    readiness_path = str(readiness.get("path") or "/")
    path = resource.spec.health_check.http_get.path
    if path == readiness_path:
        return []
    message = (
        f"{path!r} differs from {readiness_path!r}, the readinessProbe path of container {container.get('name')!r}: "
        "the probe step would pass pods that Kubernetes keeps out of the Service, or fail pods it sends traffic to"
    )
    return [Finding(document.where(_PATH), document.label, ".".join(_PATH), message)]


def _selector_findings(document: Document, service: Document, deployment: Document) -> list[Finding]:
    """The Service must select the Deployment's pods, or the traffic it carries reaches none of them."""
    selector = (service.body.get("spec") or {}).get("selector")
    if not isinstance(selector, dict) or not selector:
        return []  # a Service without a selector has its endpoints set by hand
    labels = (_pod_template(deployment).get("metadata") or {}).get("labels") or {}
    # The slot label is the steps' own: they add it to the selector and to each slot's pods.
    wanted = {key: value for key, value in selector.items() if key != spec.SLOT_LABEL}
    if all(labels.get(key) == value for key, value in wanted.items()):
        return []
    message = (
        f"selects {_labels(selector)}, which the pods of {deployment.label} do not carry (their labels: "
        f"{_labels(labels)}), so {document.label}'s traffic would reach none of them"
    )
    return [Finding(service.where(("spec", "selector")), service.label, "spec.selector", message)]


def _check(documents: list[Document], document: Document) -> list[Finding]:
    """Every cross-object finding for one BlueGreenDeployment."""
    try:
        resource = spec.load_resource(document.body)
    except spec.SpecError:
        return []  # the spec's own findings come first; its fields cannot be trusted until they are fixed
    deployment = _find(documents, document, "apps/v1", "Deployment", resource.adopted_deployment_name())
    if deployment is None:
        return []  # it lives elsewhere, or in the cluster already
    findings: list[Finding] = []
    container, missing = _container_findings(document, resource, deployment)
    findings.extend(missing)
    if container is not None:
        findings.extend(_probe_port_findings(document, resource, deployment, container))
        findings.extend(_probe_path_findings(document, resource, container))
    service = _find(documents, document, "v1", "Service", resource.router_service_name())
    if service is not None:
        findings.extend(_selector_findings(document, service, deployment))
    return findings


def findings(documents: list[Document]) -> list[Finding]:
    """Cross-object findings for every BlueGreenDeployment among ``documents``."""
    found: list[Finding] = []
    for document in documents:
        if document.kind == spec.KIND:
            found.extend(_check(documents, document))
    return found


__all__ = ["exposes", "findings"]
