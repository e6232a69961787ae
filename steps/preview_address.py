"""Where probes and smoke tests reach the idle slot: its preview Service, on the port that leads to the container.

Inside the cluster that is ``<scheme>://<svc>-preview.<ns>.svc:<port>``. ``--base-url`` overrides it for runs from
outside the cluster (through an ingress or a port-forward) and for tests against local servers.
"""

from __future__ import annotations

import bluegreen_spec as spec
from steps.errors import BadInput
from steps.kube import Obj


def container_port_numbers(template: Obj | None) -> dict[str, int]:
    """Named container ports of a pod template: what a Service's named ``targetPort`` resolves to."""
    names: dict[str, int] = {}
    for container in ((template or {}).get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name"):
                names[str(port["name"])] = int(port["containerPort"])
    return names


def target_number(port: Obj, template: Obj | None) -> int | None:
    """The container port a Service port leads to: its targetPort as a number, or resolved by name in the pods."""
    target = str(port.get("targetPort", port["port"]))
    if target.isdigit():
        return int(target)
    return container_port_numbers(template).get(target)


def service_port_for(service: Obj, container_port: int, template: Obj | None = None) -> int:
    """The Service port whose targetPort leads to ``container_port``.

    A named targetPort (Helm's ``http``) is resolved through ``template``'s container port names, as the endpoints
    controller does.
    """
    ports = service["spec"].get("ports") or []
    for port in ports:
        if target_number(port, template) == container_port:
            return int(port["port"])
    for port in ports:
        if int(port["port"]) == container_port:
            return container_port
    raise BadInput(
        f"Service {service['metadata']['namespace']}/{service['metadata']['name']} exposes no port leading to "
        f"container port {container_port} (spec.healthCheck.httpGet.port; named targetPorts resolved through the "
        f"pod template's ports {container_port_numbers(template)}); add one to the Service or fix the port"
    )


def preview_base_url(
    resource: spec.BlueGreenDeployment, main_service: Obj, namespace: str, template: Obj | None = None
) -> str:
    """The preview Service's base URL for the health check's scheme and port."""
    http_get = resource.spec.health_check.http_get
    port = service_port_for(main_service, http_get.port, template)
    return f"{http_get.scheme.lower()}://{resource.preview_service_name()}.{namespace}.svc:{port}"


def smoke_base_url(resource: spec.BlueGreenDeployment, namespace: str, routed_port: int) -> str:
    """Where smoke tests call the idle slot: the Service port users reach (the routed one), not the health port."""
    port = resource.spec.smoke_test_port or routed_port
    return f"{resource.spec.health_check.http_get.scheme.lower()}://{resource.preview_service_name()}.{namespace}.svc:{port}"


__all__ = ["container_port_numbers", "preview_base_url", "service_port_for", "smoke_base_url", "target_number"]
