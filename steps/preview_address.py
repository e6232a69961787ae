"""Where probes and smoke tests reach the idle slot: its preview Service, on the port that leads to the container.

Inside the cluster that is ``<scheme>://<svc>-preview.<ns>.svc:<port>``. ``--base-url`` overrides it for runs from
outside the cluster (through an ingress or a port-forward) and for tests against local servers.
"""

from __future__ import annotations

import bluegreen_spec as spec
from steps.errors import BadInput
from steps.kube import Obj


def service_port_for(service: Obj, container_port: int) -> int:
    """The Service port whose targetPort is ``container_port`` (or that port itself when it is exposed as is)."""
    ports = service["spec"].get("ports") or []
    for port in ports:
        # A named targetPort is resolved by the endpoints controller from the pods; only numbers can be matched here.
        target = str(port.get("targetPort", port["port"]))
        if target.isdigit() and int(target) == container_port:
            return int(port["port"])
    for port in ports:
        if int(port["port"]) == container_port:
            return container_port
    raise BadInput(
        f"Service {service['metadata']['namespace']}/{service['metadata']['name']} exposes no port leading to "
        f"container port {container_port} (spec.healthCheck.httpGet.port); add one to the Service"
    )


def preview_base_url(resource: spec.BlueGreenDeployment, main_service: Obj, namespace: str) -> str:
    """The preview Service's base URL for the health check's scheme and port."""
    http_get = resource.spec.health_check.http_get
    port = service_port_for(main_service, http_get.port)
    return f"{http_get.scheme.lower()}://{resource.preview_service_name()}.{namespace}.svc:{port}"


__all__ = ["preview_base_url", "service_port_for"]
